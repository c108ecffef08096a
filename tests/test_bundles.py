"""Small files pushed in deterministic tar bundles (core/sources/bundle.py): the bytes, their
stability, a resume in the middle of a bundle, and the pull that unpacks them safely."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import tarfile
from pathlib import Path

import pytest
from hoist.core.errors import ArtifactInvalid, FileChanged, SourceError, TransferPaused
from hoist.core.oci.annotations import ORAS_UNPACK, TITLE
from hoist.core.oci.manifest import FILE_MEDIA_TYPE
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, Event
from hoist.core.registry.client import RegistryClient
from hoist.core.sources import bundle
from hoist.core.sources.bundle import (
    BUNDLE,
    BUNDLE_CAP,
    BundleSource,
    plan_bundles,
    source_from_json,
    unpack_bundle,
)
from hoist.core.sources.content import FileRange
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
from hoist.core.transfer.push import TransferRun, plan_file_push, restart_changed_blobs
from pushing import get_blob, get_manifest, hoist_cli, push_paths
from support.registry import RegistryProcess
from test_download import make_bytes
from test_folders import blob_bytes as whole
from test_folders import snapshot

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


def test_a_bundle_is_a_plain_tar_of_its_files_with_nothing_but_names_sizes_and_modes(
    tmp_path: Path,
) -> None:
    folder = small_folder(tmp_path)
    sources = bundles_of(folder)
    assert sources and all(s.length % tarfile.RECORDSIZE == 0 for s in sources)
    names = []
    for source in sources:
        data = whole(source)
        assert len(data) == source.length
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                names.append(info.name)
                path = tmp_path / info.name
                assert info.isreg() and info.mtime == 0 and info.uid == info.gid == 0
                assert info.uname == info.gname == "" and info.pax_headers == {}
                assert info.mode == (path.stat().st_mode & 0o777)
                extracted = tar.extractfile(info)
                assert extracted is not None and extracted.read() == path.read_bytes()
    assert names == sorted(names)  # sorted within and across bundles
    assert sorted(names) == sorted(p.relative_to(tmp_path).as_posix()
                                   for p in folder.rglob("*") if p.is_file())  # fmt: skip


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
    loaded = source_from_json(source.to_json())
    assert loaded == source and whole(loaded) == whole(source)
    old = {"path": "/x/model.bin", "offset": 0, "length": 5}  # a file range, as before bundles
    assert source_from_json(old) == FileRange(Path("/x/model.bin"), 0, 5)


def test_grouping_changes_only_the_bundle_of_a_changed_file(tmp_path: Path) -> None:
    folder = small_folder(tmp_path, count=2000, size=300)
    before = bundles_of(folder)
    assert len(before) > 5
    victim = before[len(before) // 2].members[3]
    victim.path.write_bytes(b"changed, and of another size")
    after = bundles_of(folder)
    changed = {s.fingerprint() for s in after} - {s.fingerprint() for s in before}
    assert len(changed) == 1 and len(after) == len(before)
    (new,) = [s for s in after if s.fingerprint() in changed]
    assert victim.path in {m.path for m in new.members}
    (folder / "d1" / "f0500-new.txt").write_bytes(b"a new file")  # one more file
    added = bundles_of(folder)
    assert len({s.fingerprint() for s in added} - {s.fingerprint() for s in after}) <= 2


def test_a_bundle_never_passes_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "BUNDLE_CAP", 64 * KiB)
    sources = bundles_of(small_folder(tmp_path, count=200, size=2000))
    assert all(s.length <= 64 * KiB + tarfile.RECORDSIZE for s in sources)
    assert 64 * MiB == BUNDLE_CAP


def test_unchanged_bundles_are_not_read_again(tmp_path: Path, state_dir: Path) -> None:
    folder = small_folder(tmp_path)
    cache = DigestCache(tmp_path / "digests.json")
    target = parse_reference("127.0.0.1:1/x/y:v1")
    first = plan_file_push(target, [folder], digest_cache=cache)
    assert first.blobs and all(isinstance(b.source, BundleSource) for b in first.blobs)
    for blob in first.blobs:
        blob.digest = "sha256:" + hashlib.sha256(whole(blob.source)).hexdigest()
        cache.remember_bundle(blob.source.fingerprint(), blob.digest)  # type: ignore[attr-defined]
    cache.save()
    again = plan_file_push(target, [folder], digest_cache=DigestCache(tmp_path / "digests.json"))
    assert [b.digest for b in again.blobs] == [b.digest for b in first.blobs]
    touched = first.blobs[0].source.members[0].path  # type: ignore[attr-defined]
    os.utime(touched, ns=(1, 2))
    third = plan_file_push(target, [folder], digest_cache=DigestCache(tmp_path / "digests.json"))
    assert third.blobs[0].digest is None
    assert [b.digest for b in third.blobs[1:]] == [b.digest for b in first.blobs[1:]]


async def test_a_bundle_paused_mid_upload_resumes_to_the_same_digest(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle, "BOUNDARY_EVERY", 10**9)  # one bundle of all the files
    monkeypatch.setattr(bundle, "BUNDLE_TARGET", 10**15)
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


async def test_pull_unpacks_bundles_and_oras_py_gets_tars_that_tar_unpacks(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    import oras.client

    folder = small_folder(tmp_path / "src", count=400)
    (folder / "big.bin").write_bytes(make_bytes(2 * MiB + 3, seed=99))
    await push_paths(registry.host, "bundles/pull:v1", [folder], parallel=4)
    ref = f"{registry.host}/bundles/pull:v1"
    manifest = get_manifest(registry.url, "bundles/pull", "v1")
    bundles = [x for x in manifest["layers"] if BUNDLE in x["annotations"]]
    assert bundles and all(x["mediaType"] == FILE_MEDIA_TYPE for x in bundles)
    assert not any(ORAS_UNPACK in x["annotations"] for x in bundles)  # oras-go would gunzip
    assert [x["annotations"][TITLE] for x in manifest["layers"]][-1] == "data/big.bin"

    out = tmp_path / "hoist"
    async with RegistryClient(registry.host, plain_http=True) as client:
        await pull(client, "bundles/pull", "v1", out, parallel=4)
    assert snapshot(out / "data") == snapshot(folder)

    oras_out = tmp_path / "oras"
    oras.client.OrasClient(hostname=registry.host, insecure=True).pull(
        target=ref, outdir=str(oras_out)
    )
    for layer in bundles:  # what the README says to do with them
        tar_path = oras_out / layer["annotations"][TITLE]
        with tarfile.open(tar_path) as tar:
            tar.extractall(oras_out, filter="data")
        tar_path.unlink()
    assert snapshot(oras_out / "data") == snapshot(folder)


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
    ],
)
def test_an_unsafe_bundle_writes_nothing(
    tmp_path: Path, entries: list[tarfile.TarInfo], error: type[Exception], text: str
) -> None:
    archive = tmp_path / "bundle.tar"
    archive.write_bytes(_tar(entries))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(error, match=text):
        unpack_bundle(archive, lambda name: target_path(dest, name))
    assert list(dest.iterdir()) == []


def test_a_bundle_that_is_not_a_tar_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.tar"
    archive.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ArtifactInvalid):
        unpack_bundle(archive, lambda name: target_path(tmp_path, name))


@pytest.mark.parametrize("limit", ["MAX_BUNDLE_FILES", "MAX_BUNDLE_BYTES"])
def test_a_bundle_larger_than_any_hoist_makes_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    """A pull holds a bundle's member list in memory (and tarfile a pax header whole)."""
    monkeypatch.setattr(bundle, limit, 10 if limit == "MAX_BUNDLE_FILES" else 8 * KiB)
    archive = tmp_path / "bundle.tar"
    archive.write_bytes(_tar([_file(f"ok/f{i}") for i in range(11)]))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArtifactInvalid, match="more than"):
        unpack_bundle(archive, lambda name: target_path(dest, name))
    assert list(dest.iterdir()) == []


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


def test_a_new_file_among_files_that_fill_bundles_changes_few_bundles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bundles that end at their cap shift every later cut when one file comes in early (cut by
    names alone, one new file changed up to 29 of 51 bundles here); cutting by a name's hash
    weighed by size keeps them clear of the cap. Scaled down: 4 KiB files against a 64 KiB
    cap stand for 1 MiB files against 64 MiB."""
    monkeypatch.setattr(bundle, "BUNDLE_CAP", 64 * KiB)
    monkeypatch.setattr(bundle, "BUNDLE_TARGET", 16 * KiB)
    folder = small_folder(tmp_path, count=600, size=4 * KiB)
    before = bundles_of(folder)
    assert sum(s.length > 60 * KiB for s in before) <= len(before) // 20  # few reach the cap
    known = {s.fingerprint() for s in before}
    for d in range(3):
        for k in range(0, 600, 60):
            new = folder / f"d{d}" / f"f{k:04d}-new.txt"
            new.write_bytes(make_bytes(4 * KiB, seed=k))
            changed = {s.fingerprint() for s in bundles_of(folder)} - known
            assert len(changed) <= 2, new
            new.unlink()
