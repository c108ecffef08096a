"""A folder pushed as its files (one blob per file, titled `folder/sub/name`) against the real
registry: pulled back identical by Hoist (bytes, modes, empty folders) and by oras-py, with no
staging copy anywhere, and refused before anything is sent when it holds what a pull could not
restore."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from pushing import get_manifest, hoist_cli, push_paths
from support.registry import RegistryProcess
from test_download import make_bytes

from hoist.core.errors import FileChanged, SourceError
from hoist.core.oci.annotations import TITLE
from hoist.core.oci.manifest import BUNDLE_MEDIA_TYPE
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, BlobState, Event
from hoist.core.registry.client import RegistryClient
from hoist.core.sources import bundle
from hoist.core.sources.bundle import BUNDLE, BUNDLE_FILES, BundleSource
from hoist.core.sources.content import FileRange
from hoist.core.sources.folder import EMPTY_DIRS, FILE_MODE
from hoist.core.transfer.digest_cache import DigestCache
from hoist.core.transfer.download import pull
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import Push, TransferState
from hoist.core.transfer.push import TransferRun, plan_file_push, remember_digests
from hoist.core.transfer.queue import TransferItem

KiB = 1024
MiB = 1024 * KiB


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under root: ("dir", mode, b"") or ("file", mode, bytes); no links expected."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        assert not stat.S_ISLNK(st.st_mode), rel
        if stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return out


def make_model(root: Path, small_files: int = 2000) -> Path:
    """A nested model-like folder: shards, configs, an executable, an empty folder, and many
    small files in subfolders."""
    model = root / "model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "cache" / "empty").mkdir(parents=True)
    (model / "model-00001.safetensors").write_bytes(make_bytes(3 * MiB + 17, seed=1))
    (model / "model-00002.safetensors").write_bytes(make_bytes(2 * MiB, seed=2))
    (model / "config.json").write_text('{"layers": 2}\n')
    (model / "tokenizer" / "vocab.txt").write_bytes(make_bytes(300 * KiB, seed=3))
    (model / "empty.txt").write_bytes(b"")
    run = model / "run.sh"
    run.write_text("#!/bin/sh\necho hi\n")
    run.chmod(0o755)
    (model / "config.json").chmod(0o600)
    for i in range(small_files):
        sub = model / "data" / f"shard{i // 500:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"item-{i:05d}.txt").write_bytes(f"item {i}\n".encode() * (1 + i % 7))
    return model


@pytest.mark.slow  # 2,000 files each way, and oras-py pulls one at a time
async def test_folder_round_trip_hoist_and_oras(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    import oras.client

    model = make_model(tmp_path / "src")
    before = snapshot(model)
    digest, transfer = await push_paths(registry.host, "folders/files:v1", [model], parallel=4)
    manifest = get_manifest(registry.url, "folders/files", "v1")
    files = [rel for rel, (kind, _, _) in before.items() if kind == "file"]
    assert sorted(layer_files(transfer)) == sorted(f"model/{rel}" for rel in files)
    alone = {layer["annotations"][TITLE]: layer["annotations"].get(FILE_MODE)
             for layer in manifest["layers"] if BUNDLE not in layer["annotations"]}  # fmt: skip
    assert alone == {  # the large files go alone; 2,000 small ones in one bundle: few bytes
        "model/model-00001.safetensors": "0644", "model/model-00002.safetensors": "0644",
    }  # fmt: skip
    (bundled,) = [x for x in manifest["layers"] if BUNDLE in x["annotations"]]
    assert bundled["annotations"][TITLE] == "model"
    assert bundled["mediaType"] == BUNDLE_MEDIA_TYPE
    assert manifest["annotations"][EMPTY_DIRS] == '["model/cache/empty"]'

    out = tmp_path / "hoist-pulled"
    async with RegistryClient(registry.host, plain_http=True) as client:
        result = await pull(client, "folders/files", "v1", out, parallel=4)
    assert result.digest == digest
    assert snapshot(out / "model") == before  # paths, bytes, modes, the empty folder

    oras_out = tmp_path / "oras-pulled"
    oras = oras.client.OrasClient(hostname=registry.host, insecure=True)
    oras.pull(target=f"{registry.host}/folders/files:v1", outdir=str(oras_out))
    # As pulled, with no step of one's own: paths, bytes, modes; only the empty folder, which
    # Hoist names in an annotation no ORAS client reads, is not there.
    without_empty = {k: v for k, v in before.items() if not k.startswith("cache")}
    assert snapshot(oras_out / "model") == without_empty


async def test_folder_push_writes_no_staging_file(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "src", small_files=20)
    before = snapshot(tmp_path)
    temp_before = set(os.listdir(tempfile.gettempdir()))
    staged: list[Path] = []

    def watch(event: Event) -> None:  # during the push, at every event
        staged.extend(p for p in state_dir.rglob("*") if "staging" in p.parts)

    _, transfer = await push_paths(
        registry.host, "folders/nostaging:v1", [model], parallel=4, events=_Watching(watch)
    )
    assert staged == []
    assert not (state_dir / "staging").exists()
    after = snapshot(tmp_path)
    # The one file written: the digest cache (a path and a digest per file, not their bytes).
    cache = after.pop("state/digests.json")
    assert len(cache[2]) < 300 * len(transfer.blobs)
    assert after == before  # nothing else beside the folder or in it
    new_temp = set(os.listdir(tempfile.gettempdir())) - temp_before
    assert not [name for name in new_temp if "hoist" in name or transfer.id in name]
    assert all(b.source.path.is_relative_to(model) for b in transfer.blobs)


class _Watching(list[Event]):
    """An event list that calls `watch` on every append (the progress callback)."""

    def __init__(self, watch: object) -> None:
        super().__init__()
        self._watch = watch

    def append(self, event: Event) -> None:
        super().append(event)
        self._watch(event)  # type: ignore[operator]


def test_folder_with_unrestorable_entries_is_refused_naming_each(
    tmp_path: Path, state_dir: Path
) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "ok.txt").write_text("fine")
    os.mkfifo(model / "sub" / "pipe")
    (model / "out").symlink_to("/etc/passwd")
    (model / "up").symlink_to("../..")
    (model / "in").symlink_to("ok.txt")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(model / "sock"))
        with pytest.raises(SourceError) as info:
            plan_file_push(parse_reference("127.0.0.1:1/x/y:v1"), [model])
    text = info.value.sentence()
    assert f"{model / 'sub' / 'pipe'} is a FIFO" in text
    assert f"{model / 'out'} is a link leading outside the folder" in text
    assert f"{model / 'up'} is a link leading outside the folder" in text
    assert f"{model / 'in'} is a link (→ ok.txt), which a folder pushed as its files" in text
    assert f"{model / 'sock'} is a socket" in text
    assert "Nothing was sent" in text


def test_empty_folder_is_kept_as_an_empty_folder(tmp_path: Path, state_dir: Path) -> None:
    (tmp_path / "nothing").mkdir()
    transfer = plan_file_push(parse_reference("127.0.0.1:1/x/y:v1"), [tmp_path / "nothing"])
    assert transfer.blobs == []
    assert transfer.annotations == {EMPTY_DIRS: '["nothing"]'}


def test_cli_pushes_a_folder_as_files_and_pulls_it_back(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "src", small_files=30)
    env = {"HOIST_STATE_DIR": str(state_dir)}
    ref = f"{registry.host}/folders/cli:v1"
    pushed = hoist_cli("push", "--plain-http", ref, str(model), "--progress", "plain", env=env)
    assert pushed.returncode == 0, pushed.stderr
    manifest = get_manifest(registry.url, "folders/cli", "v1")
    bundles = [x for x in manifest["layers"] if BUNDLE in x["annotations"]]
    assert len(manifest["layers"]) == len(bundles) + 2  # the small files bundled, shards alone
    assert sum(int(x["annotations"][BUNDLE_FILES]) for x in bundles) == 34  # all but 2
    out = tmp_path / "out"
    pulled = hoist_cli("pull", "--plain-http", ref, "-o", str(out), env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert snapshot(out / "model") == snapshot(model)


def uploads(log: str, repo: str) -> int:
    """Blob upload sessions the registry opened for `repo` (POST .../blobs/uploads/)."""
    return log.count(f'"POST /v2/{repo}/blobs/uploads/')


async def test_repush_sends_only_the_changed_bundle_or_file(
    fresh_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "src", small_files=400)
    _, transfer = await push_paths(
        fresh_registry.host, "folders/again:v1", [model], parallel=4, chunk_size=MiB
    )  # the shards go in chunks, hashed as they are sent
    first = uploads(fresh_registry.log_text(), "folders/again")
    assert first == len(transfer.blobs) + 1  # + the empty config
    assert len(transfer.blobs) == 3  # the small files in one bundle (well under 16 MiB), the shards

    # One small file changes: its bundle goes again, nothing else is read or sent.
    for changed, repush in [
        (model / "config.json", "v2"),
        (model / "model-00002.safetensors", "v3"),
    ]:
        before = uploads(fresh_registry.log_text(), "folders/again")
        changed.write_bytes(changed.read_bytes()[:-1] + b"!\n")
        events: list[Event] = []
        _, transfer = await push_paths(
            fresh_registry.host, f"folders/again:{repush}", [model], parallel=4, events=events,
            chunk_size=MiB,
        )  # fmt: skip
        assert uploads(fresh_registry.log_text(), "folders/again") == before + 1
        name = holding(transfer, changed)
        assert {b.name for b in transfer.blobs if b.state == BlobState.DONE} == {name}
        count, size = transfer.already_there
        assert count == len(transfer.blobs) - 1
        (sent,) = [b for b in transfer.blobs if b.name == name]
        assert size == transfer.total - sent.size
        blob_events = [e for e in events if isinstance(e, BlobEvent)]
        assert {e.blob for e in blob_events if e.state == BlobState.EXISTS} == {
            b.name for b in transfer.blobs if b.name != name
        }
        # Only the changed blob was read: no other was hashed, none sent a byte.
        assert {e.blob for e in blob_events if e.state == BlobState.HASHING} <= {name}
        assert {e.blob for e in blob_events if e.sent} == {name}
        manifest = get_manifest(fresh_registry.url, "folders/again", repush)
        (layer,) = [x for x in manifest["layers"] if x["annotations"] == sent.annotations]
        assert layer["digest"] == sent.digest


def layer_files(transfer: Push) -> list[str]:
    """The file titles a pushed folder's layers hold: their own, or their bundle's members'."""
    out = []
    for blob in transfer.blobs:
        if isinstance(blob.source, BundleSource):
            out.extend(m.name for m in blob.source.members)
        else:
            out.append(blob.name)
    return out


def holding(transfer: Push, path: Path) -> str:
    """The name of the blob that holds the file `path` (itself, or its bundle)."""
    (name,) = [
        b.name for b in transfer.blobs
        if b.source.path == path
        or (isinstance(b.source, BundleSource) and path in {m.path for m in b.source.members})
    ]  # fmt: skip
    return name


def blob_bytes(source: FileRange) -> bytes:
    reader = source.open_reader()
    try:
        return reader.pread(source.length, 0)
    finally:
        reader.close()


def test_unchanged_files_are_not_read_again(tmp_path: Path, state_dir: Path) -> None:
    """The cache gives a digest only for the identity it saw; deleting it costs a re-hash."""
    model = make_model(tmp_path / "src", small_files=3)
    cache = DigestCache(tmp_path / "digests.json")
    transfer = plan_file_push(parse_reference("127.0.0.1:1/x/y:v1"), [model], digest_cache=cache)
    assert all(b.digest is None for b in transfer.blobs)
    for blob in transfer.blobs:
        blob.digest = "sha256:" + hashlib.sha256(blob_bytes(blob.source)).hexdigest()
        blob.state = BlobState.DONE
    remember_digests(transfer, cache)
    (model / "config.json").write_text("changed")
    again = plan_file_push(
        parse_reference("127.0.0.1:1/x/y:v1"), [model],
        digest_cache=DigestCache(tmp_path / "digests.json"),
    )  # fmt: skip
    known = {b.name: b.digest for b in again.blobs}
    name = holding(transfer, model / "config.json")
    assert known.pop(name) is None
    assert known == {b.name: b.digest for b in transfer.blobs if b.name != name}
    (tmp_path / "digests.json").unlink()
    fresh = plan_file_push(
        parse_reference("127.0.0.1:1/x/y:v1"), [model],
        digest_cache=DigestCache(tmp_path / "digests.json"),
    )  # fmt: skip
    assert all(b.digest is None for b in fresh.blobs)


async def test_a_failing_blob_among_several_at_once_fails_the_push_with_its_sentence(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Several blobs at once (the default for folders) must fail as one blob does: with the
    blob's own error, not an ExceptionGroup that no caller catches; the others still finish."""
    model = make_model(tmp_path / "src", small_files=10)
    transfer = plan_file_push(
        parse_reference(f"{registry.host}/folders/fails:v1"), [model], parallel=4
    )
    (model / "config.json").write_text("changed after planning, and longer than before")
    async with RegistryClient(registry.host, plain_http=True) as client:
        with pytest.raises(FileChanged, match=r"config\.json changed size"):
            await TransferRun(transfer, client).run()
    assert transfer.state == TransferState.FAILED
    unfinished = [b.name for b in transfer.blobs if not b.finished]
    assert unfinished == [holding(transfer, model / "config.json")]


class _CountingJournal(TransferJournal):
    """A real journal that counts its writes."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes = 0

    def save(self, transfer_id: str, doc: dict[str, Any]) -> None:
        self.writes += 1
        super().save(transfer_id, doc)


async def test_many_small_files_do_not_cost_a_journal_write_each(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write serializes every blob: one per file made a 2,000-file push quadratic (165 s
    for 256 MiB in bench/folder_push.py). Settled small blobs share deferred writes; the last
    write still holds every blob's final state. (Small files are bundled now: here each goes
    alone, as a folder of many files just over the bundling limit would.)"""
    monkeypatch.setattr(bundle, "SMALL_FILE_LIMIT", 0)
    model = make_model(tmp_path / "src", small_files=200)
    transfer = plan_file_push(
        parse_reference(f"{registry.host}/folders/journal:v1"), [model], parallel=4
    )
    journal = _CountingJournal(tmp_path / "journal")
    async with RegistryClient(registry.host, plain_http=True) as client:
        await TransferRun(transfer, client, journal=journal).run()
    assert journal.writes < len(transfer.blobs) // 4
    saved = Push.from_json(journal.load(transfer.id))
    assert saved.state == TransferState.DONE
    assert all(b.state == BlobState.DONE and b.digest for b in saved.blobs)


async def test_a_file_touched_while_it_is_sent_is_refused_at_commit(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Same size, new mtime, after its first chunk was taken: the commit checks the file's
    identity again, and the push fails with its path instead of pushing what may be a mix."""
    model = make_model(tmp_path / "src", small_files=2)
    shard = model / "model-00001.safetensors"
    touched: list[bool] = []

    def touch_once(event: Event) -> None:
        if (
            isinstance(event, BlobEvent)
            and event.blob == "model/model-00001.safetensors"
            and event.acknowledged > 0
            and not touched
        ):
            st = shard.stat()
            os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
            touched.append(True)

    with pytest.raises(FileChanged, match="was modified since the upload began"):
        await push_paths(
            registry.host, "folders/touched:v1", [model], chunk_size=256 * KiB,
            parallel=4, events=_Watching(touch_once),
        )  # fmt: skip
    assert touched
    status = httpx.get(
        f"{registry.url}/v2/folders/touched/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).status_code
    assert status == 404  # no manifest names a file that changed under the push


@pytest.mark.parametrize(
    ("there", "text"),
    [(0, "done"), (2, "done; 2 of 4 (16 B) already in the registry"),
     (4, "done; 4 of 4 (32 B) already in the registry")],
)  # fmt: skip
def test_a_done_push_says_how_much_was_already_there(
    tmp_path: Path, state_dir: Path, there: int, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle, "SMALL_FILE_LIMIT", 0)  # four blobs, not one bundle
    folder = tmp_path / "model"
    folder.mkdir()
    for i in range(4):
        (folder / f"f{i}.bin").write_bytes(b"x" * 8)
    transfer = plan_file_push(parse_reference("127.0.0.1:1/x/y:v1"), [folder])
    transfer.state = TransferState.DONE
    for i, blob in enumerate(transfer.blobs):
        blob.state = BlobState.EXISTS if i < there else BlobState.DONE
    assert TransferItem(transfer).status_text() == text


def test_a_damaged_digest_cache_only_costs_a_rehash(tmp_path: Path, state_dir: Path) -> None:
    model = make_model(tmp_path / "src", small_files=1)
    (state_dir / "digests.json").write_bytes(b'{"version": 1, "files": {"x": ')
    transfer = plan_file_push(parse_reference("127.0.0.1:1/x/y:v1"), [model])
    assert all(b.digest is None for b in transfer.blobs)


def test_httpcore_does_not_search_for_a_missing_sniffio_on_every_request() -> None:
    """httpcore runs `import sniffio` six times a request to tell asyncio from trio; when it
    isn't installed, each failed import walks sys.path again (65-255 µs each here: 0.4-1.5 ms
    a request, seconds over a folder's thousands of requests)."""
    script = """
import asyncio, importlib.machinery, importlib.util, sys
import hoist.core.registry.client
from httpcore._synchronization import current_async_library
searched = []
find = importlib.machinery.PathFinder.find_spec
def counting(name, *args, **kwargs):
    searched.append(name)
    return find(name, *args, **kwargs)
importlib.machinery.PathFinder.find_spec = counting
async def main():
    for _ in range(100):
        assert current_async_library() == "asyncio"
asyncio.run(main())
print(searched.count("sniffio"), "sniffio" in sys.modules and sys.modules["sniffio"] is not None)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    searches, installed = out.stdout.split()
    assert searches == "0", f"sniffio looked for {searches} times (installed: {installed})"
