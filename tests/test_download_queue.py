"""Downloads as transfers of the queue: run, paused, journaled, resumed in a new queue, cancelled.

Against the real registry; the Recorder transport (from test_download) counts the blob bytes
each run fetches, so "resumed, not restarted" is checked on the wire.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pushing import hoist_cli, push_paths
from support.registry import RegistryProcess
from test_download import Recorder, make_bytes
from test_queue import pause_when, wait_for, wait_for_end

from hoist.core.errors import HoistError
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, BlobState
from hoist.core.registry.client import RegistryClient
from hoist.core.transfer import download, fetch
from hoist.core.transfer.download import DownloadRun, plan_download
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import (
    DOWNLOAD,
    Download,
    DownloadPart,
    TransferState,
    transfer_from_json,
)
from hoist.core.transfer.queue import TransferItem, TransferQueue

MiB = 1024 * 1024


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    yield rec
    await rec.aclose()


def queue_for(reg: RegistryProcess, recorder: Recorder | None = None) -> TransferQueue:
    return TransferQueue(
        TransferJournal(),
        client_factory=lambda t: RegistryClient(reg.host, plain_http=True, transport=recorder),
    )


def received(item: TransferItem, name: str) -> int:
    """Bytes on disk of one blob of a download (0 until the manifest is read)."""
    return next((p.received for p in item.transfer.parts if p.name == name), 0)


async def test_a_download_runs_in_the_queue_and_is_journaled(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "folder").mkdir(parents=True)
    (src / "model.bin").write_bytes(make_bytes(3 * MiB + 7, seed=11))
    (src / "folder" / "a.txt").write_bytes(b"inside a folder\n")
    digest, _ = await push_paths(
        registry.host, "dl/queue:v1", [src / "model.bin", src / "folder"], pack=True
    )
    source = parse_reference(f"{registry.host}/dl/queue:v1@{digest}")
    out = tmp_path / "out"
    queue = queue_for(registry)
    transfer = plan_download(source, out)
    assert transfer.kind == DOWNLOAD and transfer.total == 0  # sizes come from the manifest
    assert transfer.name == "queue:v1"
    seen: list[str] = []
    queue.listeners.append(lambda kind, item: seen.append(item.status_text()))
    item = queue.add(transfer)
    try:
        await wait_for_end(item)
    finally:
        await queue.aclose()
    assert item.state == TransferState.DONE, item.transfer.error
    assert item.transfer.result == digest
    assert (out / "model.bin").read_bytes() == (src / "model.bin").read_bytes()
    assert (out / "folder" / "a.txt").read_bytes() == b"inside a folder\n"
    assert sorted(p.name for p in out.iterdir()) == ["folder", "model.bin"]  # no .partial left
    names = {p.name for p in item.transfer.parts}
    assert names == {"model.bin", "folder"}
    assert item.total == item.acknowledged == item.transfer.total >= 3 * MiB + 7
    assert "downloading" in seen and seen[-1] == "done"
    saved = transfer_from_json(TransferJournal().load(item.id))
    assert isinstance(saved, Download) and saved.state == TransferState.DONE
    assert saved.destination == str(out) and saved.acknowledged == saved.total == item.total
    assert str(saved.source) == str(source)


async def test_a_paused_download_resumes_in_a_new_queue_from_its_partial_file(
    registry: RegistryProcess,
    state_dir: Path,
    tmp_path: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fetch, "PROGRESS_INTERVAL", 0.0)  # an event per MiB written
    data = make_bytes(48 * MiB + 3, seed=12)
    (tmp_path / "big.bin").write_bytes(data)
    digest, _ = await push_paths(registry.host, "dl/pause:v1", [tmp_path / "big.bin"])
    out = tmp_path / "out"
    partial = out / "big.bin.partial"

    queue = queue_for(registry)
    pause_when(queue, lambda i: i.state == TransferState.RUNNING and i.acknowledged >= 4 * MiB)
    item = queue.add(plan_download(parse_reference(f"{registry.host}/dl/pause@{digest}"), out))
    try:
        await wait_for(item, TransferState.PAUSED)
    finally:
        await queue.aclose()
    held = partial.stat().st_size
    assert 4 * MiB <= held < len(data)
    assert not (out / "big.bin").exists()
    saved = TransferJournal().load(item.id)
    assert saved["state"] == "paused"  # paused by the user: aclose keeps it paused
    [part] = saved["parts"]
    assert part["size"] == len(data) and 0 < part["received"] <= held

    # A new process: the download is listed paused, with its size and progress, before it runs.
    again = queue_for(registry, recorder)
    assert again.load_journal() == []
    [item] = again.items
    assert item.state == TransferState.PAUSED and not item.running
    assert item.total == len(data) and 0 < item.acknowledged <= held
    again.resume(item.id)
    try:
        await wait_for_end(item, seconds=60)
    finally:
        await again.aclose()
    assert item.state == TransferState.DONE, item.transfer.error
    assert (out / "big.bin").read_bytes() == data
    assert not partial.exists()
    [get] = recorder.blob_gets()
    assert get.headers["Range"] == f"bytes={held}-"  # continued, not started over
    assert recorder.blob_bytes == len(data) - held
    assert item.transfer.parts[0].state == BlobState.DONE


async def test_cancelling_a_download_removes_its_partial_files_and_entry(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetch, "PROGRESS_INTERVAL", 0.0)
    data = make_bytes(24 * MiB, seed=13)
    (tmp_path / "c.bin").write_bytes(data)
    (tmp_path / "kept.txt").write_bytes(b"complete before the cancel\n")
    digest, _ = await push_paths(
        registry.host, "dl/cancel:v1", [tmp_path / "kept.txt", tmp_path / "c.bin"]
    )
    out = tmp_path / "out"
    queue = queue_for(registry)
    pause_when(queue, lambda item: received(item, "c.bin") >= 2 * MiB)
    # One file at a time: kept.txt (the first layer) is complete before c.bin begins.
    source = parse_reference(f"{registry.host}/dl/cancel@{digest}")
    item = queue.add(plan_download(source, out, parallel=1))
    try:
        await wait_for(item, TransferState.PAUSED)
        assert (out / "c.bin.partial").exists()
        await queue.cancel(item.id)
    finally:
        await queue.aclose()
    assert not (out / "c.bin.partial").exists()
    assert not (out / "c.bin").exists()
    assert (out / "kept.txt").read_bytes() == b"complete before the cancel\n"
    assert queue.items == [] and TransferJournal().ids() == []


async def test_a_download_that_fails_says_why_and_retry_finishes_it(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A folder in the way of a file: failed with a sentence; moved away, Retry completes."""
    (tmp_path / "f.bin").write_bytes(make_bytes(100_000, seed=14))
    digest, _ = await push_paths(registry.host, "dl/fail:v1", [tmp_path / "f.bin"])
    out = tmp_path / "out"
    (out / "f.bin").mkdir(parents=True)
    queue = queue_for(registry)
    item = queue.add(plan_download(parse_reference(f"{registry.host}/dl/fail@{digest}"), out))
    try:
        await wait_for_end(item)
        assert item.state == TransferState.FAILED
        assert "is a folder" in item.transfer.error
        assert item.status_text().startswith("failed: ")
        (out / "f.bin").rmdir()
        queue.retry(item.id)
        await wait_for_end(item)
    finally:
        await queue.aclose()
    assert item.state == TransferState.DONE, item.transfer.error
    assert (out / "f.bin").read_bytes() == (tmp_path / "f.bin").read_bytes()


async def test_the_cli_lists_and_resumes_a_download_the_window_queued(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    data = make_bytes(2 * MiB + 1, seed=15)
    (tmp_path / "w.bin").write_bytes(data)
    digest, _ = await push_paths(registry.host, "dl/cli:v1", [tmp_path / "w.bin"])
    out = tmp_path / "out"
    transfer = plan_download(parse_reference(f"{registry.host}/dl/cli:v1@{digest}"), out)
    transfer.state = TransferState.PAUSED
    TransferJournal().save(transfer.id, transfer.to_json())
    env = {"HOIST_STATE_DIR": str(state_dir)}

    listed = hoist_cli("transfers", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["kind"] == "download" and row["destination"] == str(out)
    assert row["state"] == "paused"

    resumed = await asyncio.to_thread(hoist_cli, "resume", transfer.id, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == str(out)
    assert (out / "w.bin").read_bytes() == data
    assert TransferJournal().ids() == []  # finished: the entry goes, as for a push


async def test_a_file_another_download_is_writing_is_left_to_it(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Two downloads writing the same file (one folder twice, two versions of a file) must not
    interleave: the `.partial` is locked; the second fails with a sentence, and its cancel
    leaves the other's bytes alone. Retry, once the other is done, finishes it."""
    import fcntl

    (tmp_path / "m.bin").write_bytes(make_bytes(3 * MiB, seed=16))
    digest, _ = await push_paths(registry.host, "dl/locked:v1", [tmp_path / "m.bin"])
    out = tmp_path / "out"
    out.mkdir()
    partial = out / "m.bin.partial"
    partial.write_bytes(b"another download's bytes")
    other = os.open(partial, os.O_WRONLY)
    fcntl.flock(other, fcntl.LOCK_EX)  # as the other download (or `hoist pull`) holds it
    queue = queue_for(registry)
    item = queue.add(plan_download(parse_reference(f"{registry.host}/dl/locked@{digest}"), out))
    try:
        await wait_for_end(item)
        assert item.state == TransferState.FAILED
        assert "another download is writing m.bin" in item.transfer.error
        assert partial.read_bytes() == b"another download's bytes"  # untouched
        os.close(other)  # the other one ended
        queue.retry(item.id)
        await wait_for_end(item)
    finally:
        await queue.aclose()
    assert item.state == TransferState.DONE, item.transfer.error
    assert (out / "m.bin").read_bytes() == (tmp_path / "m.bin").read_bytes()


async def test_cancel_leaves_a_partial_file_another_download_holds(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    partial = out / "shared.bin.partial"
    partial.write_bytes(b"x" * 100)
    transfer = plan_download(parse_reference(f"{registry.host}/dl/x@sha256:{'0' * 64}"), out)
    transfer.parts = [DownloadPart("shared.bin", 1000, str(out / "shared.bin"), 100)]
    transfer.state = TransferState.PAUSED
    other = os.open(partial, os.O_WRONLY)
    fcntl.flock(other, fcntl.LOCK_EX)
    queue = queue_for(registry)
    item = queue.add(transfer, start=False)
    try:
        await queue.cancel(item.id)
    finally:
        os.close(other)
        await queue.aclose()
    assert partial.exists() and queue.items == []


async def test_a_folder_unpacked_before_a_pause_is_kept_on_resume(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder this download unpacked is not refused as "already exists" when it resumes."""
    monkeypatch.setattr(fetch, "PROGRESS_INTERVAL", 0.0)
    src = tmp_path / "src"
    (src / "folder").mkdir(parents=True)
    (src / "folder" / "a.txt").write_bytes(b"in the folder\n")
    (src / "big.bin").write_bytes(make_bytes(32 * MiB, seed=17))
    digest, _ = await push_paths(
        registry.host, "dl/folder:v1", [src / "folder", src / "big.bin"], pack=True
    )
    out = tmp_path / "out"
    queue = queue_for(registry)
    pause_when(queue, lambda item: received(item, "big.bin") >= 2 * MiB)
    source = parse_reference(f"{registry.host}/dl/folder@{digest}")
    item = queue.add(plan_download(source, out, parallel=1))  # the folder first, then big.bin
    try:
        await wait_for(item, TransferState.PAUSED)
    finally:
        await queue.aclose()
    assert (out / "folder" / "a.txt").exists() and (out / "big.bin.partial").exists()
    assert TransferJournal().load(item.id)["completed"] == [str(out / "folder")]

    again = queue_for(registry)
    again.load_journal()
    [item] = again.items
    again.resume(item.id)
    try:
        await wait_for_end(item)
    finally:
        await again.aclose()
    assert item.state == TransferState.DONE, item.transfer.error
    assert (out / "folder" / "a.txt").read_bytes() == b"in the folder\n"
    assert (out / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["big.bin", "folder"]


async def test_cancelling_twice_never_brings_the_entry_back(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's last journal write outlives a second cancel; it must land before the queue
    forgets the entry, or the cancelled download comes back at the next start."""
    (tmp_path / "s.bin").write_bytes(make_bytes(16 * MiB, seed=18))
    digest, _ = await push_paths(registry.host, "dl/twice:v1", [tmp_path / "s.bin"])
    save = TransferJournal.save

    def slow_save(self: TransferJournal, transfer_id: str, doc: dict[str, object]) -> None:
        time.sleep(0.3)  # a busy disk's fsync
        save(self, transfer_id, doc)

    monkeypatch.setattr(TransferJournal, "save", slow_save)
    queue = queue_for(registry)
    item = queue.add(plan_download(parse_reference(f"{registry.host}/dl/twice@{digest}"),
                                   tmp_path / "out"))  # fmt: skip
    await asyncio.sleep(0.5)  # running (its first save took 0.3 s)
    try:
        await asyncio.gather(queue.cancel(item.id), queue.cancel(item.id))
        await asyncio.sleep(1.0)  # any write still in flight would land by now
    finally:
        await queue.aclose()
    assert queue.items == [] and TransferJournal().ids() == []


async def test_a_cancel_that_cannot_delete_says_so_and_still_forgets(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "f.bin.partial").write_bytes(b"x")
    transfer = plan_download(parse_reference(f"{registry.host}/dl/x@sha256:{'0' * 64}"), out)
    transfer.parts = [DownloadPart("f.bin", 10, str(out / "f.bin"), 1)]
    transfer.state = TransferState.PAUSED

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(download, "_remove_unless_locked", refuse)
    queue = queue_for(registry)
    item = queue.add(transfer, start=False)
    try:
        with pytest.raises(HoistError) as caught:
            await queue.cancel(item.id)
    finally:
        await queue.aclose()
    assert "can't delete" in caught.value.sentence() and "Permission denied" in str(caught.value)
    assert queue.items == [] and TransferJournal().ids() == []


async def test_the_recheck_of_a_resumed_file_keeps_its_progress(tmp_path: Path) -> None:
    """Resuming re-hashes the `.partial` from 0; the journal must not record 0 meanwhile."""
    transfer = plan_download(parse_reference(f"r.example/a@sha256:{'0' * 64}"), tmp_path)
    transfer.parts = [DownloadPart("f.bin", 100 * MiB, str(tmp_path / "f.bin"), 60 * MiB)]
    run = DownloadRun(transfer, RegistryClient("r.example"))
    run._on_event(BlobEvent(transfer.id, "f.bin", BlobState.HASHING, 0, 0, 100 * MiB))
    assert transfer.parts[0].received == 60 * MiB
    run._on_event(BlobEvent(transfer.id, "f.bin", BlobState.DOWNLOADING, 0, 61 * MiB, 100 * MiB))
    assert transfer.parts[0].received == 61 * MiB


async def test_a_pause_during_the_recheck_of_a_big_partial_is_prompt(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming re-hashes the `.partial` (about 1 s per GB): a pause meanwhile must not wait
    for the whole re-check, and the bytes on disk stay for the next resume."""
    data = make_bytes(24 * MiB, seed=19)
    (tmp_path / "r.bin").write_bytes(data)
    digest, _ = await push_paths(registry.host, "dl/recheck:v1", [tmp_path / "r.bin"])
    out = tmp_path / "out"
    out.mkdir()
    partial = out / "r.bin.partial"
    partial.write_bytes(data[: 20 * MiB])
    feed = fetch.FileCursor.feed

    def slow_feed(self: fetch.FileCursor, block: bytes | memoryview) -> None:
        time.sleep(0.1)  # a slow disk: 20 blocks of 1 MiB take 2 s to re-check
        feed(self, block)

    monkeypatch.setattr(fetch.FileCursor, "feed", slow_feed)
    queue = queue_for(registry)
    checking = pause_when(
        queue, lambda item: any(e.state == BlobState.HASHING for e in item.blobs.values())
    )
    item = queue.add(plan_download(parse_reference(f"{registry.host}/dl/recheck@{digest}"), out))
    try:
        await wait_for(item, TransferState.PAUSED)
        took = time.monotonic() - checking[0]
    finally:
        await queue.aclose()
    assert took < 1.0, took  # not the 2 s of the whole re-check
    assert partial.read_bytes() == data[: 20 * MiB]  # nothing cut
