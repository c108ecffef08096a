"""`hoist pull`: artifacts pushed with Hoist's engine, pulled back, resumed, verified.

The real distribution 2.8 registry serves everything it can: round trips, interrupted and
resumed downloads, split files, folders, images, blobs corrupted in its storage. Scripted
`httpx.MockTransport` registries only for what it can't be made to do: redirect a blob to
another host (object storage), ignore `Range`, answer with a wrong `Content-Range`, or hold a
manifest that is not JSON.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pushing import push_paths
from support.registry import RegistryProcess

from hoist.core.errors import (
    NotFound,
    RegistryError,
    ReplaceRefused,
    SourceError,
    VerificationFailed,
)
from hoist.core.oci.annotations import (
    ORAS_DIGEST,
    ORAS_UNPACK,
    SPLIT_FILE,
    SPLIT_FILE_DIGEST,
    TITLE,
)
from hoist.core.oci.manifest import FILE_MEDIA_TYPE, FOLDER_MEDIA_TYPE, OCI_INDEX, OCI_MANIFEST
from hoist.core.progress import BlobEvent, BlobState, Event
from hoist.core.registry.auth import Credentials
from hoist.core.registry.browse import ManifestKind
from hoist.core.registry.client import RegistryClient
from hoist.core.retry import RetryPolicy
from hoist.core.transfer import fetch
from hoist.core.transfer.download import pull, pull_blob
from hoist.core.transfer.pull_jobs import safe_parts, target_path

KiB = 1024
MiB = 1024 * 1024
EMPTY = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def make_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


def artifact(layers: list[dict[str, Any]], **extra: Any) -> bytes:
    return canonical({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.test",
        "config": desc(EMPTY_TYPE, EMPTY), "layers": layers, **extra,
    })  # fmt: skip


async def put_blob(c: httpx.AsyncClient, repo: str, data: bytes) -> str:
    r = await c.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    url = httpx.URL(str(c.base_url)).join(r.headers["Location"]).copy_add_param("digest", sha(data))
    r = await c.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return sha(data)


async def put_manifest(
    c: httpx.AsyncClient, repo: str, ref: str, data: bytes, media_type: str = OCI_MANIFEST
) -> str:
    headers = {"Content-Type": media_type}
    r = await c.put(f"/v2/{repo}/manifests/{ref}", content=data, headers=headers)
    assert r.status_code == 201, r.text
    return sha(data)


async def push_raw(
    reg: RegistryProcess, repo: str, ref: str, blobs: list[tuple[bytes, dict[str, str]]],
    media_type: str = FILE_MEDIA_TYPE, **extra: Any,
) -> str:  # fmt: skip
    """An artifact whose layers carry exactly the given annotations (crafted, unlike Hoist's)."""
    async with httpx.AsyncClient(base_url=reg.url) as c:
        await put_blob(c, repo, EMPTY)
        layers = []
        for data, annotations in blobs:
            await put_blob(c, repo, data)
            layers.append(desc(media_type, data, annotations=annotations))
        return await put_manifest(c, repo, ref, artifact(layers, **extra))


class Recorder(httpx.AsyncBaseTransport):
    """The real network; remembers requests and counts blob body bytes received."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []
        self.blob_bytes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        if "/blobs/sha256:" not in request.url.path:
            return response
        inner = response.stream
        assert isinstance(inner, httpx.AsyncByteStream)
        recorder = self

        class Counting(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in inner:
                    recorder.blob_bytes += len(chunk)
                    yield chunk

            async def aclose(self) -> None:
                await inner.aclose()

        return httpx.Response(
            response.status_code, headers=response.headers, stream=Counting(),
            extensions=response.extensions,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self.inner.aclose()

    def blob_gets(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "GET" and "/blobs/" in r.url.path]


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    yield rec
    await rec.aclose()


def client_for(
    reg: RegistryProcess, transport: httpx.AsyncBaseTransport | None = None
) -> RegistryClient:
    return RegistryClient(reg.host, plain_http=True, transport=transport)


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> RegistryClient:
    return RegistryClient(
        "registry.test", plain_http=True, transport=httpx.MockTransport(handler), **kw
    )


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: file bytes, or `-> target` for links, `/` for folders."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "/"
        else:
            out[rel] = path.read_bytes()
    return out


def blob_events(events: list[Event]) -> list[BlobEvent]:
    return [e for e in events if isinstance(e, BlobEvent)]


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    ["../evil", "a/../../evil", "/etc/passwd", "\\\\server\\share", "C:evil", "..\\evil", "",
     "   ", ".", "./", "a/..", "x\x00y"],
)  # fmt: skip
def test_unsafe_titles_are_refused(title: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        target_path(tmp_path, title)


@pytest.mark.parametrize(
    ("title", "parts"),
    [("model.bin", ("model.bin",)), ("dir/file.txt", ("dir", "file.txt")),
     ("./a//b", ("a", "b")), ("..hidden", ("..hidden",)), ("a..b", ("a..b",))],
)  # fmt: skip
def test_safe_titles(title: str, parts: tuple[str, ...]) -> None:
    assert safe_parts(title) == parts


def test_a_link_inside_the_target_leading_out_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(SourceError, match="through a link"):
        target_path(dest, "sub/x")


# -- round trips against distribution 2.8 ----------------------------------------------------


async def test_pull_round_trip(registry: RegistryProcess, state_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "data" / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(make_bytes(3 * MiB + 123, seed=1))
    (src / "note.txt").write_bytes(b"hello\n")
    (src / "empty.bin").write_bytes(b"")
    (src / "data" / "a.txt").write_bytes(b"a" * 1000)
    (src / "data" / "sub" / "b.bin").write_bytes(make_bytes(70 * KiB, seed=2))
    (src / "data" / "sub" / "link").symlink_to("../a.txt")
    paths = [src / "big.bin", src / "note.txt", src / "empty.bin", src / "data"]
    digest, _ = await push_paths(registry.host, "pull/round:v1", paths, pack=True)

    out = tmp_path / "out"
    events: list[Event] = []
    async with client_for(registry) as client:
        result = await pull(client, "pull/round", "v1", out, on_event=events.append)
    assert result.digest == digest
    assert result.kind == ManifestKind.ARTIFACT
    assert {f.path.name: f.kind for f in result.files} == {
        "big.bin": "file", "note.txt": "file", "empty.bin": "file", "data": "folder"
    }  # fmt: skip
    assert tree(out) == tree(src)  # nothing else: no .partial, no archive, no staging folder
    done = {e.blob for e in blob_events(events) if e.state == BlobState.DONE}
    assert done == {"big.bin", "note.txt", "empty.bin", "data"}
    last = {e.blob: e for e in blob_events(events)}
    assert last["big.bin"].acknowledged == last["big.bin"].total == 3 * MiB + 123


async def test_pull_again_keeps_verified_files(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, recorder: Recorder
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(make_bytes(200 * KiB, seed=3))
    await push_paths(registry.host, "pull/again:v1", [src])
    out = tmp_path / "out"
    async with client_for(registry) as client:
        await pull(client, "pull/again", "v1", out)
    events: list[Event] = []
    async with client_for(registry, recorder) as client:
        result = await pull(client, "pull/again", "v1", out, on_event=events.append)
    assert result.files[0].reused
    assert recorder.blob_gets() == []
    assert BlobState.EXISTS in {e.state for e in blob_events(events)}
    # A changed file is the user's own (issue 16 #5): refused, and replaced only when asked.
    (out / "f.bin").write_bytes(b"x" * (200 * KiB))
    async with client_for(registry) as client:
        with pytest.raises(ReplaceRefused):
            await pull(client, "pull/again", "v1", out)
        assert (out / "f.bin").read_bytes() == b"x" * (200 * KiB)
        result = await pull(client, "pull/again", "v1", out, overwrite=True)
    assert not result.files[0].reused
    assert (out / "f.bin").read_bytes() == src.read_bytes()


async def test_interrupted_download_resumes_with_range(
    registry: RegistryProcess,
    state_dir: Path,
    tmp_path: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fetch, "PROGRESS_INTERVAL", 0.0)  # an event for every MiB written
    data = make_bytes(6 * MiB + 5, seed=4)
    (tmp_path / "big.bin").write_bytes(data)
    await push_paths(registry.host, "pull/resume:v1", [tmp_path / "big.bin"])
    out = tmp_path / "out"

    async with client_for(registry) as client:
        task: asyncio.Task[Any] | None = None

        def stop_midway(event: Event) -> None:
            big_enough = isinstance(event, BlobEvent) and event.acknowledged >= 2 * MiB
            if big_enough and task and not task.cancelling():
                task.cancel()

        task = asyncio.create_task(pull(client, "pull/resume", "v1", out, on_event=stop_midway))
        with pytest.raises(asyncio.CancelledError):
            await task
    partial = out / "big.bin.partial"
    held = partial.stat().st_size
    assert 2 * MiB <= held < len(data)
    assert not (out / "big.bin").exists()
    assert partial.read_bytes() == data[:held]

    events: list[Event] = []
    async with client_for(registry, recorder) as client:
        result = await pull(client, "pull/resume", "v1", out, on_event=events.append)
    assert result.files[0].fetched == len(data) - held
    assert (out / "big.bin").read_bytes() == data
    assert not partial.exists()
    [get] = recorder.blob_gets()
    assert get.headers["Range"] == f"bytes={held}-"
    assert recorder.blob_bytes == len(data) - held  # only the rest was fetched
    states = [e.state for e in blob_events(events)]
    assert BlobState.HASHING in states  # the prefix on disk was checked first
    assert blob_events(events)[-1].sent == len(data) - held


async def test_damaged_partial_is_detected_and_fetched_again(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, recorder: Recorder
) -> None:
    data = make_bytes(300 * KiB, seed=5)
    (tmp_path / "f.bin").write_bytes(data)
    await push_paths(registry.host, "pull/damaged:v1", [tmp_path / "f.bin"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "f.bin.partial").write_bytes(b"\0" * (100 * KiB))  # not the blob's first bytes
    events: list[Event] = []
    async with client_for(registry, recorder) as client:
        await pull(client, "pull/damaged", "v1", out, on_event=events.append)
    assert (out / "f.bin").read_bytes() == data
    assert [r.headers.get("Range") for r in recorder.blob_gets()] == [f"bytes={100 * KiB}-", None]
    assert any("damaged" in e.message for e in blob_events(events))


async def test_split_artifact_is_joined_and_verified(
    registry: RegistryProcess,
    state_dir: Path,
    tmp_path: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = make_bytes(3 * MiB + 512 * KiB, seed=6)
    (tmp_path / "disk.img").write_bytes(data)
    _, transfer = await push_paths(
        registry.host, "pull/split:v1", [tmp_path / "disk.img"], split=MiB
    )
    names = [b.name for b in transfer.blobs]
    assert names == [f"disk.img.part000{i}" for i in range(1, 5)]

    # Stop in the middle of part 2, with small writes so that some of it is on disk.
    monkeypatch.setattr(fetch, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(fetch, "WRITE_BLOCK", 64 * KiB)
    out = tmp_path / "out"
    async with client_for(registry) as client:
        task: asyncio.Task[Any] | None = None

        def stop_in_part_two(event: Event) -> None:
            if (
                isinstance(event, BlobEvent)
                and event.blob == names[1]
                and event.acknowledged >= 300 * KiB
                and task
                and not task.cancelling()
            ):
                task.cancel()

        task = asyncio.create_task(pull(client, "pull/split", "v1", out, on_event=stop_in_part_two))
        with pytest.raises(asyncio.CancelledError):
            await task
    held = (out / "disk.img.partial").stat().st_size
    assert MiB + 300 * KiB <= held < 2 * MiB

    events: list[Event] = []
    async with client_for(registry, recorder) as client:
        result = await pull(client, "pull/split", "v1", out, on_event=events.append)
    assert (out / "disk.img").read_bytes() == data
    assert sorted(p.name for p in out.iterdir()) == ["disk.img"]  # no parts, no partial
    [file] = result.files
    assert file.kind == "split"
    assert file.digest == sha(data)
    gets = recorder.blob_gets()
    assert [r.url.path.rsplit("/", 1)[1] for r in gets] == [
        b.digest for b in transfer.blobs[1:]
    ]  # part 1 was not fetched again
    assert gets[0].headers["Range"] == f"bytes={held - MiB}-"
    assert recorder.blob_bytes == len(data) - held
    assert {e.blob for e in blob_events(events) if e.state == BlobState.DONE} == set(names)


async def test_split_file_with_a_wrong_whole_digest_is_refused(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    data = make_bytes(300 * KiB, seed=7)
    (tmp_path / "x.bin").write_bytes(data)
    await push_paths(registry.host, "pull/split-bad:v1", [tmp_path / "x.bin"], split=128 * KiB)
    async with httpx.AsyncClient(base_url=registry.url) as c:
        r = await c.get("/v2/pull/split-bad/manifests/v1", headers={"Accept": OCI_MANIFEST})
        doc = r.json()
        for layer in doc["layers"]:
            assert layer["annotations"][SPLIT_FILE_DIGEST] == sha(data)
            layer["annotations"][SPLIT_FILE_DIGEST] = sha(b"something else")
        await put_manifest(c, "pull/split-bad", "v2", canonical(doc))
    out = tmp_path / "out"
    async with client_for(registry) as client:
        with pytest.raises(VerificationFailed, match="joined file"):
            await pull(client, "pull/split-bad", "v2", out)
    assert not (out / "x.bin").exists()


@pytest.mark.parametrize("title", ["../evil", "/tmp/hoist-evil-absolute", "", "sub/../../evil"])
async def test_malicious_title_is_refused_before_writing(
    registry: RegistryProcess, tmp_path: Path, title: str
) -> None:
    repo = "pull/malicious"
    ref = f"t{abs(hash(title)) % 10_000}"
    await push_raw(registry, repo, ref, [
        (b"fine", {TITLE: "good.txt"}), (b"evil", {TITLE: title}),
    ])  # fmt: skip
    dest = tmp_path / "work" / "dest"
    async with client_for(registry) as client:
        with pytest.raises(SourceError) as info:
            await pull(client, repo, ref, dest)
    assert "Nothing was written" in info.value.sentence() or "not a file name" in str(info.value)
    assert not dest.exists()  # not even good.txt
    assert not (tmp_path / "work" / "evil").exists()
    assert not Path("/tmp/hoist-evil-absolute").exists()


async def test_malicious_split_file_name_is_refused(
    registry: RegistryProcess, tmp_path: Path
) -> None:
    await push_raw(registry, "pull/malicious-split", "v1", [
        (b"part", {TITLE: "x.part0001", SPLIT_FILE: "../escape", "app.hoist.split.index": "1",
                   "app.hoist.split.count": "1", "app.hoist.split.offset": "0"}),
    ])  # fmt: skip
    async with client_for(registry) as client:
        with pytest.raises(SourceError, match="escape"):
            await pull(client, "pull/malicious-split", "v1", tmp_path / "dest")
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "dest").exists()


def make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> tuple[bytes, str]:
    """(gzip bytes, digest of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, body in members:
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return gzip.compress(raw.getvalue(), mtime=0), sha(raw.getvalue())


def entry(name: str, body: bytes | None = None, *, kind: bytes = tarfile.REGTYPE,
          link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:  # fmt: skip
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, body


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([entry("data", kind=tarfile.DIRTYPE), entry("data/ok", b"ok"), entry("other.txt", b"x")],
         "outside the folder"),
        ([entry("data", kind=tarfile.DIRTYPE), entry("data/../../escape.txt", b"x")],
         "outside the folder"),
        ([entry("data", kind=tarfile.DIRTYPE), entry("/tmp/hoist-abs-escape", b"x")],
         "outside the folder"),
        ([entry("data", kind=tarfile.DIRTYPE),
          entry("data/link", kind=tarfile.SYMTYPE, link="../../../etc/passwd")], "link"),
        ([entry("data", kind=tarfile.DIRTYPE),
          entry("data/link", kind=tarfile.SYMTYPE, link="/etc/passwd")], "link"),
        ([entry("data", kind=tarfile.DIRTYPE),
          entry("data/sibling", kind=tarfile.SYMTYPE, link="../next-to-data")], "link"),
        ([entry("data", kind=tarfile.DIRTYPE), entry("data/dev", kind=tarfile.CHRTYPE)],
         "unsafe entry"),
    ],
)  # fmt: skip
async def test_unsafe_folder_archives_are_refused(
    registry: RegistryProcess, tmp_path: Path, members: list[Any], why: str
) -> None:
    blob, tar_digest = make_tar(members)
    ref = f"t{abs(hash(blob)) % 100_000}"
    await push_raw(registry, "pull/bad-folder", ref, [
        (blob, {TITLE: "data", ORAS_UNPACK: "true", ORAS_DIGEST: tar_digest}),
    ], media_type=FOLDER_MEDIA_TYPE)  # fmt: skip
    dest = tmp_path / "dest"
    async with client_for(registry) as client:
        with pytest.raises(SourceError, match=why):
            await pull(client, "pull/bad-folder", ref, dest)
    assert sorted(p.name for p in dest.iterdir()) == []  # no folder, archive, or staging
    assert not (tmp_path / "escape.txt").exists()
    assert not Path("/tmp/hoist-abs-escape").exists()


async def test_folder_whose_tar_digest_differs_is_refused(
    registry: RegistryProcess, tmp_path: Path
) -> None:
    blob, _ = make_tar([entry("data", kind=tarfile.DIRTYPE), entry("data/a", b"a")])
    await push_raw(registry, "pull/folder-digest", "v1", [
        (blob, {TITLE: "data", ORAS_UNPACK: "true", ORAS_DIGEST: sha(b"not the tar")}),
    ], media_type=FOLDER_MEDIA_TYPE)  # fmt: skip
    dest = tmp_path / "dest"
    async with client_for(registry) as client:
        with pytest.raises(VerificationFailed, match="tar whose sha256"):
            await pull(client, "pull/folder-digest", "v1", dest)
    assert not (dest / "data").exists()


async def test_existing_folder_is_kept_unless_overwrite(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src" / "data"
    src.mkdir(parents=True)
    (src / "a.txt").write_bytes(b"new")
    await push_paths(registry.host, "pull/folder-exists:v1", [src], pack=True)
    dest = tmp_path / "dest"
    (dest / "data").mkdir(parents=True)
    (dest / "data" / "mine.txt").write_bytes(b"the user's own")
    async with client_for(registry) as client:
        with pytest.raises(SourceError, match="already exists"):
            await pull(client, "pull/folder-exists", "v1", dest)
        assert (dest / "data" / "mine.txt").exists()
        await pull(client, "pull/folder-exists", "v1", dest, overwrite=True)
    assert tree(dest) == {"data": "/", "data/a.txt": b"new"}


async def test_blob_corrupted_in_the_registry_is_caught(
    fresh_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    data = make_bytes(150 * KiB, seed=8)
    (tmp_path / "f.bin").write_bytes(data)
    await push_paths(fresh_registry.host, "pull/corrupt:v1", [tmp_path / "f.bin"])
    hexpart = sha(data).split(":")[1]
    stored = fresh_registry.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart
    (stored / "data").write_bytes(b"X" + data[1:])  # same size, one byte off
    out = tmp_path / "out"
    async with client_for(fresh_registry) as client:
        with pytest.raises(VerificationFailed, match="don't match its digest"):
            await pull(client, "pull/corrupt", "v1", out)
    assert not (out / "f.bin").exists()
    assert (out / "f.bin.partial").stat().st_size == 0  # the bad bytes are not kept


async def push_image(
    c: httpx.AsyncClient, repo: str, ref: str, arch: str
) -> tuple[str, bytes, list[bytes]]:
    config = canonical({"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}})
    layers = [make_bytes(10 * KiB + i, seed=i + len(arch)) for i in range(2)]
    for blob in [config, *layers]:
        await put_blob(c, repo, blob)
    manifest = canonical({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", x) for x in layers],
    })  # fmt: skip
    digest = await put_manifest(c, repo, ref, manifest)
    return digest, manifest, [config, *layers]


async def test_pull_an_image_as_an_oci_layout(registry: RegistryProcess, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=registry.url) as c:
        digest, manifest, blobs = await push_image(c, "pull/image", "v1", "amd64")
    out = tmp_path / "out"
    async with client_for(registry) as client:
        result = await pull(client, "pull/image", "v1", out)
    assert result.kind == ManifestKind.OCI_IMAGE
    assert (out / "manifest.json").read_bytes() == manifest
    for blob in [manifest, *blobs]:
        assert (out / "blobs" / "sha256" / sha(blob).split(":")[1]).read_bytes() == blob
    index = json.loads((out / "index.json").read_bytes())
    assert index["manifests"][0]["digest"] == digest
    assert json.loads((out / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}


async def test_pull_one_platform_of_an_index(registry: RegistryProcess, tmp_path: Path) -> None:
    repo = "pull/multi"
    async with httpx.AsyncClient(base_url=registry.url) as c:
        children = {}
        for arch in ("amd64", "arm64"):
            digest, manifest, _ = await push_image(c, repo, f"only-{arch}", arch)
            children[arch] = (digest, manifest)
        index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            desc(OCI_MANIFEST, m, platform={"os": "linux", "architecture": a})
            for a, (_, m) in children.items()]})  # fmt: skip
        await put_manifest(c, repo, "multi", index, OCI_INDEX)
    async with client_for(registry) as client:
        with pytest.raises(SourceError, match="linux/amd64, linux/arm64"):
            await pull(client, repo, "multi", tmp_path / "none")
        assert not (tmp_path / "none").exists()
        result = await pull(client, repo, "multi", tmp_path / "arm", platform="linux/arm64")
    assert result.digest == children["arm64"][0]
    assert (tmp_path / "arm" / "manifest.json").read_bytes() == children["arm64"][1]


async def test_pull_blob_by_digest(registry: RegistryProcess, tmp_path: Path) -> None:
    data = make_bytes(90 * KiB, seed=9)
    async with httpx.AsyncClient(base_url=registry.url) as c:
        digest = await put_blob(c, "pull/blob", data)
    async with client_for(registry) as client:
        pulled = await pull_blob(client, "pull/blob", digest, tmp_path)
        named = await pull_blob(client, "pull/blob", digest, tmp_path, name="named.bin")
        with pytest.raises(NotFound):
            await pull_blob(client, "pull/blob", sha(b"absent"), tmp_path)
        with pytest.raises(SourceError):
            await pull_blob(client, "pull/blob", digest, tmp_path, name="../out.bin")
        (tmp_path / "a-file").write_bytes(b"")
        with pytest.raises(SourceError, match="not a folder"):
            await pull_blob(client, "pull/blob", digest, tmp_path / "a-file")
    assert pulled.path == tmp_path / digest.replace(":", "-")
    assert pulled.path.read_bytes() == data
    assert named.path.read_bytes() == data


# -- what distribution can't be made to do ---------------------------------------------------


BLOB = make_bytes(256 * KiB + 7, seed=10)
MANIFEST = artifact([desc(FILE_MEDIA_TYPE, BLOB, annotations={TITLE: "f.bin"})])


def serve(blob_handler: Callable[[httpx.Request], httpx.Response]) -> Callable[..., httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/r/manifests/v1":
            return httpx.Response(200, content=MANIFEST, headers={"Content-Type": OCI_MANIFEST})
        if request.url.path == f"/v2/r/blobs/{sha(BLOB)}":
            return blob_handler(request)
        return httpx.Response(404)

    return handler


def ranged(request: httpx.Request) -> httpx.Response:
    """What a well-behaved server answers: 206 from the asked offset."""
    value = request.headers.get("Range")
    if not value:
        return httpx.Response(200, content=BLOB)
    start = int(value.removeprefix("bytes=").rstrip("-"))
    return httpx.Response(
        206, content=BLOB[start:],
        headers={"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"},
    )  # fmt: skip


async def test_blob_redirect_to_storage_gets_no_credentials(tmp_path: Path) -> None:
    seen: list[tuple[str, str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("Authorization"),
                     request.headers.get("Range")))  # fmt: skip
        if request.url.host == "storage.test":
            assert request.url.params["X-Amz-Signature"] == "abc"
            return ranged(request)
        if "Authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if request.url.path.startswith("/v2/r/blobs/"):
            return httpx.Response(
                307, headers={"Location": "https://storage.test/b/1?X-Amz-Signature=abc"}
            )
        return serve(ranged)(request)

    out = tmp_path / "out"
    out.mkdir()
    (out / "f.bin.partial").write_bytes(BLOB[:1000])  # and the Range goes along
    async with mock_client(handler, credentials=Credentials("hoist", "s3cret-pass")) as client:
        await pull(client, "r", "v1", out)
    assert (out / "f.bin").read_bytes() == BLOB
    storage = [s for s in seen if s[0] == "storage.test"]
    assert storage == [("storage.test", None, "bytes=1000-")]
    assert all(auth and auth.startswith("Basic ") for host, auth, _ in seen[1:]
               if host == "registry.test")  # fmt: skip


async def test_registry_ignoring_range(tmp_path: Path) -> None:
    asked: list[str | None] = []

    def whole(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Range"))
        return httpx.Response(200, content=BLOB)  # Range ignored: 200 from byte 0

    out = tmp_path / "out"
    out.mkdir()
    (out / "f.bin.partial").write_bytes(BLOB[:100_000])
    events: list[Event] = []
    client = mock_client(serve(whole))
    async with client:
        await pull(client, "r", "v1", out, on_event=events.append)
    assert (out / "f.bin").read_bytes() == BLOB
    assert asked == ["bytes=100000-"]
    assert any("ignored the resume request" in e.message for e in blob_events(events))
    done = [e for e in blob_events(events) if e.state == BlobState.DONE][-1]
    assert done.sent == len(BLOB) and done.resent == 100_000


async def test_wrong_content_range_is_an_error(tmp_path: Path) -> None:
    def liar(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            206, content=BLOB, headers={"Content-Range": f"bytes 0-{len(BLOB) - 1}/*"}
        )

    out = tmp_path / "out"
    out.mkdir()
    (out / "f.bin.partial").write_bytes(BLOB[:10])
    async with mock_client(serve(liar)) as client:
        with pytest.raises(RegistryError, match="asked for bytes from 10"):
            await pull(client, "r", "v1", out)
    assert (out / "f.bin.partial").read_bytes() == BLOB[:10]


async def test_broken_connection_is_resumed_in_process(tmp_path: Path) -> None:
    calls: list[str | None] = []

    class Breaks(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield BLOB[:50_000]
            raise httpx.ReadError("connection reset")

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers.get("Range"))
        if len(calls) == 1:
            return httpx.Response(200, stream=Breaks())
        return ranged(request)

    async with mock_client(serve(flaky)) as client:
        await pull(client, "r", "v1", tmp_path, retry=RetryPolicy(first=0.01, cap=0.01))
    assert (tmp_path / "f.bin").read_bytes() == BLOB
    assert calls == [None, "bytes=50000-"]


async def test_pull_of_a_manifest_that_is_not_json(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=b"<html>proxy login</html>", headers={"Content-Type": OCI_MANIFEST}
        )

    async with mock_client(handler) as client:
        with pytest.raises(RegistryError, match="not valid JSON"):
            await pull(client, "r", "v1", tmp_path / "out")
    assert not (tmp_path / "out").exists()
