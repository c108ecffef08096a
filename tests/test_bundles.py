"""Small files pushed in deterministic bundles (core/sources/bundle.py): gzip tars of stored
blocks titled by their directory, so `oras pull` unpacks them; their bytes, their stability, a
resume in the middle of a bundle or its trailer, and the pull that unpacks them safely."""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import io
import json
import os
import random
import tarfile
import zlib
from pathlib import Path

import pytest
from pushing import get_blob, get_manifest, hoist_cli, push_paths
from support.registry import RegistryProcess
from test_download import make_bytes
from test_folders import blob_bytes as whole
from test_folders import snapshot

from hoist.core.errors import ArtifactInvalid, FileChanged, SourceError, TransferPaused
from hoist.core.oci.annotations import ORAS_DIGEST, ORAS_UNPACK, TITLE
from hoist.core.oci.manifest import BUNDLE_MEDIA_TYPE, FILE_MEDIA_TYPE
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, BlobState, Event
from hoist.core.registry.client import RegistryClient
from hoist.core.sources import bundle
from hoist.core.sources.bundle import (
    BUNDLE,
    BUNDLE_FORMAT,
    BundleSource,
    plan_bundles,
    source_from_json,
    unpack_bundle,
)
from hoist.core.sources.content import FileIdentity, FileRange
from hoist.core.sources.folder import scan_folder
from hoist.core.transfer.digest_cache import DigestCache
from hoist.core.transfer.download import discard_partial_files, pull
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import (
    Download,
    DownloadPart,
    Push,
    TransferState,
    new_transfer_id,
)
from hoist.core.transfer.pull_jobs import target_path
from hoist.core.transfer.push import (
    TransferRun,
    plan_file_push,
    remember_digests,
    restart_changed_blobs,
)

KiB = 1024
MiB = 1024 * KiB


def small_folder(root: Path, count: int = 300, size: int = 700) -> Path:
    folder = root / "data"
    for i in range(count):
        sub = folder / f"d{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:04d}.txt").write_bytes(make_bytes(size + i % 50, seed=i))
    (folder / "d0" / "f0000.txt").chmod(0o755)
    return folder


def bundles_of(folder: Path) -> list[BundleSource]:
    found, _ = plan_bundles(folder.absolute(), scan_folder(folder).files)
    return found


def test_a_bundle_is_a_gzip_tar_that_any_gzip_reader_reads(tmp_path: Path) -> None:
    """Stored deflate blocks: Python's gzip and tarfile read it; each member holds nothing but
    its name, size and mode; each folder below the title has its entry, before its files
    (oras-go creates no parent folder)."""
    folder = small_folder(tmp_path)
    sources = bundles_of(folder)
    assert [s.title for s in sources] == ["data"]  # 300 small files: under the target
    names = []
    for source in sources:
        data = whole(source)
        assert len(data) == source.length
        tar_bytes = gzip.decompress(data)
        assert len(tar_bytes) % tarfile.RECORDSIZE == 0
        assert len(data) - len(tar_bytes) == 18 + 5 * -(-len(tar_bytes) // 65535)
        assert source.summary.digest == _sha(tar_bytes)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            made: set[str] = set()
            for info in tar:
                assert info.mtime == 0 and info.uid == info.gid == 0
                assert info.uname == info.gname == "" and info.pax_headers == {}
                if info.isdir():
                    assert info.mode == 0o755
                    made.add(info.name)
                    continue
                names.append(info.name)
                assert info.isreg() and info.name.rsplit("/", 1)[0] in made | {"data"}
                path = tmp_path / info.name
                assert info.mode == (path.stat().st_mode & 0o777)
                extracted = tar.extractfile(info)
                assert extracted is not None and extracted.read() == path.read_bytes()
            assert made == {"data/d0", "data/d1", "data/d2"}
    assert names == sorted(names)
    assert sorted(names) == sorted(p.relative_to(tmp_path).as_posix()
                                   for p in folder.rglob("*") if p.is_file())  # fmt: skip


def test_a_bundle_longer_than_one_stored_block_reads_back(tmp_path: Path) -> None:
    """Several 65,535-byte stored blocks, the last one marked final: gzip reads it whole."""
    (source,) = bundles_of(small_folder(tmp_path, count=80, size=40 * KiB))
    data = whole(source)
    tar_bytes = gzip.decompress(data)
    assert len(tar_bytes) > 40 * 65535
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        assert len([m for m in tar if m.isreg()]) == 80


def test_bundle_bytes_are_the_same_across_runs_mtimes_and_owners(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    first = [hashlib.sha256(whole(s)).hexdigest() for s in bundles_of(folder)]
    for path in folder.rglob("*.txt"):
        os.utime(path, ns=(1, 1_000_000_000 * random.randrange(1, 10**6)))
        if os.geteuid() == 0:
            os.chown(path, 1234, 5678)
    again = [hashlib.sha256(whole(s)).hexdigest() for s in bundles_of(folder)]
    assert again == first


def test_any_byte_range_of_a_bundle_is_the_same_bytes(tmp_path: Path) -> None:
    (source,) = bundles_of(small_folder(tmp_path, count=40, size=3000))
    data = whole(source)
    rng = random.Random(7)
    reader = source.open_reader()
    try:
        for _ in range(300):
            pos = rng.randrange(source.length)
            n = rng.randrange(1, min(70_000, source.length - pos) + 1)
            assert reader.pread(n, pos) == data[pos : pos + n], (pos, n)
    finally:
        reader.close()
    assert source.hash_prefix(12345).prefix_digest() == _sha(data[:12345])
    assert source.hash_prefix(source.length).digest() == _sha(data)


def test_a_bundle_survives_the_journal_and_an_old_journal_still_loads(tmp_path: Path) -> None:
    (source,) = bundles_of(small_folder(tmp_path, count=20))
    loaded = source_from_json(json.loads(json.dumps(source.to_json())))
    assert loaded == source and whole(loaded) == whole(source)
    assert isinstance(loaded, BundleSource) and loaded.title == "data"
    earlier = {**source.to_json(), "length": 0}  # a bundle journaled before gzip bundles
    for key in ("title", "tar"):
        earlier.pop(key)
    plain = source_from_json(earlier)
    assert isinstance(plain, BundleSource) and plain.title == ""
    plain = BundleSource.of(plain.path, list(plain.members))  # the plain tar it was
    with tarfile.open(fileobj=io.BytesIO(whole(plain)), mode="r:") as tar:
        assert [m.name for m in tar] == [m.name for m in source.members]
    old = {"path": "/x/model.bin", "offset": 0, "length": 5}  # a file range, as before bundles
    assert source_from_json(old) == FileRange(Path("/x/model.bin"), 0, 5)


def tree_folder(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Folders of small files, several of them past a (scaled-down) target."""
    monkeypatch.setattr(bundle, "BUNDLE_TARGET", 40 * KiB)
    monkeypatch.setattr(bundle, "BUNDLE_CAP", 160 * KiB)
    folder = root / "data"
    layout = {"a": 30, "a/x": 50, "a/x/deep": 5, "a/y": 10, "b": 3, "c/z": 60, "": 4}
    for sub, count in layout.items():
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (folder / sub / f"f{i:03d}.txt").write_bytes(make_bytes(300 + i, seed=i))
    return folder


def test_bundles_are_titled_by_distinct_directories_holding_only_what_is_under_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oras-go refuses two layers of one title and extracts a layer titled D only from
    members under D/: each directory makes at most one bundle, of files under it."""
    folder = tree_folder(tmp_path, monkeypatch)
    sources = bundles_of(folder)
    titles = [s.title for s in sources]
    assert len(titles) == len(set(titles)) > 2
    assert "data" in titles and "data/a/x" in titles and "data/c/z" in titles
    for source in sources:
        assert all(m.name.startswith(source.title + "/") for m in source.members)
    named = sorted(m.name for s in sources for m in s.members)
    assert named == sorted(p.relative_to(tmp_path).as_posix()
                           for p in folder.rglob("*") if p.is_file())  # fmt: skip
    (deep,) = [s for s in sources if any("/deep/" in m.name for m in s.members)]
    assert deep.title == "data/a/x"  # the deep folder's few files went up with its parent's


def test_a_changed_file_changes_only_its_directorys_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tree_folder(tmp_path, monkeypatch)
    before = {s.title: s.fingerprint() for s in bundles_of(folder)}
    (folder / "a" / "x" / "f007.txt").write_bytes(b"changed, and of another size")
    (folder / "c" / "z" / "f999-new.txt").write_bytes(b"a new file")
    after = {s.title: s.fingerprint() for s in bundles_of(folder)}
    assert after.keys() == before.keys()
    assert {t for t in after if after[t] != before[t]} == {"data/a/x", "data/c/z"}


def test_a_folder_gathering_past_the_cap_leaves_its_subfolders_their_own_bundles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle, "BUNDLE_TARGET", 1 * MiB)
    monkeypatch.setattr(bundle, "BUNDLE_CAP", 100 * KiB)
    folder = tmp_path / "data"
    for sub in ("p", "q", "r"):
        (folder / sub).mkdir(parents=True)
        for i in range(40):  # 40 KiB of tar each: under the target, 120 KiB together
            (folder / sub / f"f{i:02d}.txt").write_bytes(b"x" * 100)
    sources = bundles_of(folder)
    assert sorted(s.title for s in sources) == ["data", "data/p"]  # the largest share, by name
    assert all(s.layout.length <= 100 * KiB + tarfile.RECORDSIZE for s in sources)


def test_a_flat_folder_is_one_bundle_up_to_the_file_limit_and_the_rest_go_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder's own files are not cut into several bundles (one title each): past what a
    pull accepts in one bundle, the rest go as their own layers."""
    monkeypatch.setattr(bundle, "MAX_BUNDLE_FILES", 10)
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(15):
        (folder / f"f{i:02d}.txt").write_bytes(b"x" * (100 + i))
    sources, alone = plan_bundles(folder.absolute(), scan_folder(folder).files)
    assert [(s.title, len(s.members)) for s in sources] == [("flat", 10)]
    assert [f.title for f in alone] == [f"flat/f{i:02d}.txt" for i in range(10, 15)]


def test_unchanged_bundles_get_their_digest_without_hashing(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged bundle's files are not read at all on a re-push: its digest and the tar's
    summary (CRC32 and sha256: the gzip trailer and the ORAS annotation) come from the cache."""
    folder = small_folder(tmp_path)
    cache = DigestCache(tmp_path / "digests.json")
    target = parse_reference("127.0.0.1:1/x/y:v1")
    first = plan_file_push(target, [folder], digest_cache=cache)
    assert first.blobs and all(isinstance(b.source, BundleSource) for b in first.blobs)
    for blob in first.blobs:
        blob.digest = "sha256:" + hashlib.sha256(whole(blob.source)).hexdigest()
        blob.state = BlobState.DONE  # as a finished push leaves them
    remember_digests(first, cache)

    class NoReading(bundle._TarReader):
        def pread(self, n: int, pos: int) -> bytes:
            raise AssertionError(f"{self.source.title}: an unchanged bundle's files were read")

    with monkeypatch.context() as patched:
        patched.setattr(bundle, "_TarReader", NoReading)
        again = plan_file_push(
            target, [folder], digest_cache=DigestCache(tmp_path / "digests.json")
        )
    assert [b.digest for b in again.blobs] == [b.digest for b in first.blobs]
    assert [b.annotations[ORAS_DIGEST] for b in again.blobs] == [
        b.annotations[ORAS_DIGEST] for b in first.blobs
    ]
    assert [whole(b.source) for b in again.blobs] == [whole(b.source) for b in first.blobs]
    touched = first.blobs[0].source.members[0].path  # type: ignore[attr-defined]
    os.utime(touched, ns=(1, 2))
    third = plan_file_push(target, [folder], digest_cache=DigestCache(tmp_path / "digests.json"))
    assert third.blobs[0].digest is None
    assert [b.digest for b in third.blobs[1:]] == [b.digest for b in first.blobs[1:]]


async def test_a_bundle_paused_mid_upload_resumes_to_the_same_digest(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = small_folder(tmp_path, count=60, size=60 * KiB)
    target = parse_reference(f"{registry.host}/bundles/paused:v1")
    transfer = plan_file_push(target, [folder], chunk_size=MiB)
    (blob,) = transfer.blobs
    assert isinstance(blob.source, BundleSource) and blob.size > 3 * MiB
    expected = _sha(whole(blob.source))
    journal = TransferJournal()
    pause = asyncio.Event()

    def pause_mid_bundle(event: Event) -> None:
        if isinstance(event, BlobEvent) and event.acknowledged >= MiB:
            pause.set()

    async with RegistryClient(registry.host, plain_http=True) as client:
        with pytest.raises(TransferPaused):
            await TransferRun(
                transfer, client, journal=journal, pause=pause, on_event=pause_mid_bundle
            ).run()
    assert 0 < transfer.blobs[0].acknowledged < blob.size
    resumed = Push.from_json(journal.load(transfer.id))
    assert resumed.blobs[0].source == blob.source  # the bundle, from the journal
    async with RegistryClient(registry.host, plain_http=True) as client:
        await TransferRun(resumed, client, journal=journal).run()
    assert resumed.state == TransferState.DONE
    assert resumed.blobs[0].digest == expected
    assert _sha(get_blob(registry.url, "bundles/paused", expected)) == expected


async def test_a_bundle_whose_file_changed_while_paused_is_refused(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    folder = small_folder(tmp_path, count=30)
    transfer = plan_file_push(parse_reference(f"{registry.host}/bundles/changed:v1"), [folder])
    member = transfer.blobs[0].source.members[5]  # type: ignore[attr-defined]
    member.path.write_bytes(b"other bytes")
    async with RegistryClient(registry.host, plain_http=True) as client:
        with pytest.raises(Exception, match="changed size"):
            await TransferRun(transfer, client).run()


def test_a_resume_inside_the_trailer_sends_the_same_bytes(tmp_path: Path) -> None:
    """A resumed upload may start anywhere, the trailer too: the CRC32 comes with the journal
    form, or again from the members when a journal lacks it; a changed member is refused."""
    (source,) = bundles_of(small_folder(tmp_path, count=30))
    data = whole(source)
    doc = json.loads(json.dumps(source.to_json()))
    without = {k: v for k, v in doc.items() if k != "tar"}
    for journaled in (doc, without):
        resumed = source_from_json(journaled)
        assert isinstance(resumed, BundleSource)
        reader = resumed.open_reader()
        try:
            for start in (source.length - 8, source.length - 5, source.length - 1):
                assert reader.pread(source.length - start, start) == data[start:]
        finally:
            reader.close()
        assert resumed.hash_prefix(source.length).digest() == _sha(data)
    member = source.members[4]
    member.path.write_bytes(b"x" * member.size)  # same size, a new mtime
    os.utime(member.path, ns=(1, member.identity.mtime_ns + 10**9))
    with pytest.raises(FileChanged):
        source_from_json(doc).check_unchanged(FileIdentity.of(source.path))


def nested_folder(root: Path) -> Path:
    """Small files in nested folders, an executable, and one large file."""
    folder = small_folder(root, count=400)
    (folder / "d1" / "deeper" / "still").mkdir(parents=True)
    (folder / "d1" / "deeper" / "still" / "x.txt").write_bytes(b"deep")
    (folder / "big.bin").write_bytes(make_bytes(2 * MiB + 3, seed=99))
    return folder


async def test_a_nested_folder_pulled_by_hoist_and_by_oras_py_is_the_same_tree(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """The bundle is a gzip tar marked for unpacking as oras marks a directory: oras-py (no
    step of its own) and hoist pull both give the pushed tree, modes included."""
    import oras.client

    folder = nested_folder(tmp_path / "src")
    await push_paths(registry.host, "bundles/pull:v1", [folder], parallel=4)
    ref = f"{registry.host}/bundles/pull:v1"
    manifest = get_manifest(registry.url, "bundles/pull", "v1")
    (layer, big) = manifest["layers"]
    assert layer["mediaType"] == BUNDLE_MEDIA_TYPE == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert layer["annotations"][TITLE] == "data" and layer["annotations"][ORAS_UNPACK] == "true"
    assert layer["annotations"][BUNDLE] == BUNDLE_FORMAT
    blob = get_blob(registry.url, "bundles/pull", layer["digest"])
    assert layer["annotations"][ORAS_DIGEST] == _sha(gzip.decompress(blob))
    assert big["annotations"][TITLE] == "data/big.bin" and big["mediaType"] == FILE_MEDIA_TYPE

    out = tmp_path / "hoist"
    async with RegistryClient(registry.host, plain_http=True) as client:
        await pull(client, "bundles/pull", "v1", out, parallel=4)
    assert snapshot(out / "data") == snapshot(folder)
    assert sorted(p.name for p in out.iterdir()) == ["data"]  # the archive is gone

    oras_out = tmp_path / "oras"
    oras.client.OrasClient(hostname=registry.host, insecure=True).pull(
        target=ref, outdir=str(oras_out)
    )
    assert snapshot(oras_out / "data") == snapshot(folder)


async def test_oras_py_writes_a_subfolders_bundle_one_folder_deeper_as_the_readme_says(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oras-py unpacks a layer titled `data/d1` into `out/data`: its members `data/d1/...`
    land at `out/data/data/d1/...` (oras-go would strip the title). hoist pull gives the tree."""
    import oras.client

    monkeypatch.setattr(bundle, "BUNDLE_TARGET", 100 * KiB)  # d0..d2 each past it
    folder = small_folder(tmp_path / "src", count=300)
    (folder / "top.txt").write_bytes(b"at the top")
    await push_paths(registry.host, "bundles/deep:v1", [folder], parallel=4)
    titles = [
        x["annotations"][TITLE] for x in get_manifest(registry.url, "bundles/deep", "v1")["layers"]
    ]
    assert titles == ["data", "data/d0", "data/d1", "data/d2"]
    out = tmp_path / "hoist"
    async with RegistryClient(registry.host, plain_http=True) as client:
        await pull(client, "bundles/deep", "v1", out)
    assert snapshot(out / "data") == snapshot(folder)
    oras_out = tmp_path / "oras"
    oras.client.OrasClient(hostname=registry.host, insecure=True).pull(
        target=f"{registry.host}/bundles/deep:v1", outdir=str(oras_out)
    )
    assert (oras_out / "data" / "top.txt").read_bytes() == b"at the top"
    deep = oras_out / "data" / "data" / "d1" / "f0004.txt"
    assert deep.read_bytes() == (folder / "d1" / "f0004.txt").read_bytes()
    assert not (oras_out / "data" / "d1").exists()


async def test_pull_refuses_to_replace_a_different_file_unless_asked(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    folder = small_folder(tmp_path / "src", count=20)
    ref = f"{registry.host}/bundles/replace:v1"
    env = {"HOIST_STATE_DIR": str(state_dir)}
    assert hoist_cli("push", "--plain-http", ref, str(folder), env=env).returncode == 0
    out = tmp_path / "out"
    mine = out / "data" / "d1" / "f0004.txt"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own file")
    async with RegistryClient(registry.host, plain_http=True) as client:
        with pytest.raises(SourceError, match="would replace files that differ"):
            await pull(client, "bundles/replace", "v1", out)
        assert mine.read_bytes() == b"my own file"
        await pull(client, "bundles/replace", "v1", out, overwrite=True)
    assert snapshot(out / "data") == snapshot(folder)


def _tar(entries: list[tarfile.TarInfo], data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _file(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 1
    return info


def _link(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    return info


@pytest.mark.parametrize(
    ("entries", "error", "text"),
    [
        ([_file("ok/a"), _file("../evil")], SourceError, "escape the target folder"),
        ([_file("/etc/evil")], SourceError, "absolute path"),
        ([_file("ok/a"), _link("ok/link")], SourceError, "not a regular file"),
        ([_file("ok/a"), _file("ok/a")], SourceError, "twice"),
        ([_file("ok/a"), _file("elsewhere/b")], SourceError, "not under 'ok'"),
        ([_file("ok")], SourceError, "not under 'ok'"),
    ],
)
def test_an_unsafe_bundle_writes_nothing(
    tmp_path: Path, entries: list[tarfile.TarInfo], error: type[Exception], text: str
) -> None:
    archive = tmp_path / "bundle.tar"
    archive.write_bytes(_stored_gzip(_tar(entries)))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(error, match=text):
        unpack_bundle(archive, "ok", lambda name: target_path(dest, name))
    assert list(dest.iterdir()) == []


def test_a_bundle_that_is_not_a_tar_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.tar"
    archive.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ArtifactInvalid):
        unpack_bundle(archive, "ok", lambda name: target_path(tmp_path, name))
    archive.write_bytes(gzip.compress(b"not a tar at all" * 100))
    with pytest.raises(ArtifactInvalid):
        unpack_bundle(archive, "ok", lambda name: target_path(tmp_path, name))


def test_a_bundle_of_the_earlier_plain_tar_form_still_unpacks(tmp_path: Path) -> None:
    """Bundles were plain tars titled `folder/.hoist-bundle-0001.tar` before: pulled, their
    files land under the folder."""
    archive = tmp_path / "bundle.tar"
    archive.write_bytes(_tar([_file("data/a"), _file("data/sub/b")]))
    dest = tmp_path / "dest"
    dest.mkdir()
    where = functools.partial(target_path, dest)
    written = unpack_bundle(archive, "data/.hoist-bundle-0001.tar", where)
    assert written == [dest / "data" / "a", dest / "data" / "sub" / "b"]
    assert (dest / "data" / "sub" / "b").read_bytes() == b"x" and not archive.exists()


@pytest.mark.parametrize("limit", ["MAX_BUNDLE_FILES", "bytes", "MAX_NAME_HEADER"])
def test_a_bundle_larger_than_any_hoist_makes_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    """A pull holds a bundle's member list in memory (and tarfile a pax header whole); a
    gzip that unpacks to more than it holds is no Hoist bundle (stored blocks only add)."""
    data = _tar([_file(f"ok/f{i}") for i in range(11)])
    if limit == "MAX_BUNDLE_FILES":
        monkeypatch.setattr(bundle, limit, 10)
    elif limit == "MAX_NAME_HEADER":
        monkeypatch.setattr(bundle, limit, 100)
        data = _tar([_file("ok/" + "n" * 200)])
    archive = tmp_path / "bundle.tar"
    archive.write_bytes(gzip.compress(data, compresslevel=9))  # deflated: smaller than the tar
    if limit != "bytes":
        archive.write_bytes(_stored_gzip(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArtifactInvalid, match=r"more (bytes )?than|name header"):
        unpack_bundle(archive, "ok", lambda name: target_path(dest, name))
    assert list(dest.iterdir()) == []


def _stored_gzip(data: bytes) -> bytes:
    """`data` gzipped without compression (zlib level 0: stored blocks, as Hoist's bundles)."""
    packer = zlib.compressobj(0, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def test_pack_tar_pushes_one_uncompressed_tar(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    folder = small_folder(tmp_path / "src", count=10)
    env = {"HOIST_STATE_DIR": str(state_dir)}
    for flag, media_type, mode in [
        ("--pack=tar", FILE_MEDIA_TYPE, "r:"),
        ("--pack", "application/vnd.oci.image.layer.v1.tar+gzip", "r:gz"),
    ]:
        ref = f"{registry.host}/bundles/packed:{flag.strip('-').replace('=', '-')}"
        pushed = hoist_cli("push", "--plain-http", ref, str(folder), flag, env=env)
        assert pushed.returncode == 0, pushed.stderr
        tag = ref.rsplit(":", 1)[1]
        (layer,) = get_manifest(registry.url, "bundles/packed", tag)["layers"]
        assert layer["mediaType"] == media_type
        blob = get_blob(registry.url, "bundles/packed", layer["digest"])
        with tarfile.open(fileobj=io.BytesIO(blob), mode=mode) as tar:  # type: ignore[call-overload]
            assert "data/d0/f0000.txt" in tar.getnames()
        out = tmp_path / f"out-{tag}"
        pulled = hoist_cli("pull", "--plain-http", ref, "-o", str(out), env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert snapshot(out / "data") == snapshot(folder)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_restarting_changed_blobs_asks_for_the_folder_again_when_a_bundled_file_changed(
    tmp_path: Path, state_dir: Path
) -> None:
    """A bundle's members are planned with the folder (a changed file may move between
    bundles): "restart changed" can't rebuild one alone, and says what to do."""
    folder = small_folder(tmp_path, count=30)
    transfer = plan_file_push(parse_reference("127.0.0.1:1/x/y:v1"), [folder])
    assert restart_changed_blobs(transfer) == []
    transfer.blobs[0].source.members[2].path.write_bytes(b"new")  # type: ignore[attr-defined]
    with pytest.raises(FileChanged, match="changed since the push began") as info:
        restart_changed_blobs(transfer)
    assert "Push the folder again" in info.value.sentence()


def test_a_cancelled_download_removes_a_fetched_bundle_not_yet_unpacked(tmp_path: Path) -> None:
    archive = tmp_path / "data" / ".f.hoist-bundle"
    archive.parent.mkdir()
    archive.write_bytes(b"a whole bundle, fetched, not yet unpacked")
    transfer = Download(
        id=new_transfer_id(), source=parse_reference("127.0.0.1:1/x/y:v1"),
        destination=str(tmp_path), parts=[DownloadPart("data/f", 41, str(archive), kind="bundle")],
    )  # fmt: skip
    assert discard_partial_files(transfer) == []
    assert not archive.exists()
