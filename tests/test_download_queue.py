"""Downloads as transfers of the queue: run, paused, journaled, resumed in a new queue, cancelled.

Against the real registry; the Recorder transport (from test_download) counts the blob bytes
each run fetches, so "resumed, not restarted" is checked on the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pushing import hoist_cli, push_paths
from support.registry import RegistryProcess
from test_download import Recorder, make_bytes
from test_queue import wait_for_end

from core import download
from core.journal import TransferJournal
from core.progress import BlobState
from core.queue import TransferItem, TransferQueue
from core.reference import parse_reference
from core.registry import RegistryClient
from core.transfer import DOWNLOAD, Transfer, TransferState, plan_download

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


async def wait_for_state(item: TransferItem, state: TransferState, seconds: float = 20) -> None:
    for _ in range(int(seconds * 20)):
        if item.state == state and not item.running:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {item.state} after {seconds} s, wanted {state}")


async def test_a_download_runs_in_the_queue_and_is_journaled(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "folder").mkdir(parents=True)
    (src / "model.bin").write_bytes(make_bytes(3 * MiB + 7, seed=11))
    (src / "folder" / "a.txt").write_bytes(b"inside a folder\n")
    digest, _ = await push_paths(registry.host, "dl/queue:v1", [src / "model.bin", src / "folder"])
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
    saved = Transfer.from_json(TransferJournal().load(item.id))
    assert saved.is_download and saved.state == TransferState.DONE
    assert saved.destination == str(out) and saved.acknowledged == saved.total == item.total
    assert str(saved.target) == str(source)


async def test_a_paused_download_resumes_in_a_new_queue_from_its_partial_file(
    registry: RegistryProcess,
    state_dir: Path,
    tmp_path: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(download, "PROGRESS_INTERVAL", 0.0)  # an event per MiB written
    data = make_bytes(48 * MiB + 3, seed=12)
    (tmp_path / "big.bin").write_bytes(data)
    digest, _ = await push_paths(registry.host, "dl/pause:v1", [tmp_path / "big.bin"])
    out = tmp_path / "out"
    partial = out / "big.bin.partial"

    queue = queue_for(registry)

    def pause_after_4_mib(kind: str, item: TransferItem) -> None:
        running = item.state == TransferState.RUNNING and not item.pause_event.is_set()
        if running and item.acknowledged >= 4 * MiB:
            queue.pause(item.id)

    queue.listeners.append(pause_after_4_mib)
    item = queue.add(plan_download(parse_reference(f"{registry.host}/dl/pause@{digest}"), out))
    try:
        await wait_for_state(item, TransferState.PAUSED)
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
    monkeypatch.setattr(download, "PROGRESS_INTERVAL", 0.0)
    data = make_bytes(24 * MiB, seed=13)
    (tmp_path / "c.bin").write_bytes(data)
    (tmp_path / "kept.txt").write_bytes(b"complete before the cancel\n")
    digest, _ = await push_paths(
        registry.host, "dl/cancel:v1", [tmp_path / "kept.txt", tmp_path / "c.bin"]
    )
    out = tmp_path / "out"
    queue = queue_for(registry)

    def pause_midway(kind: str, item: TransferItem) -> None:
        part = next((p for p in item.transfer.parts if p.name == "c.bin"), None)
        if part is not None and part.received >= 2 * MiB and not item.pause_event.is_set():
            queue.pause(item.id)

    queue.listeners.append(pause_midway)
    # One file at a time: kept.txt (the first layer) is complete before c.bin begins.
    source = parse_reference(f"{registry.host}/dl/cancel@{digest}")
    item = queue.add(plan_download(source, out, parallel=1))
    try:
        await wait_for_state(item, TransferState.PAUSED)
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
