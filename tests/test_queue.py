"""The transfer queue on its own (the window's engine): failures are never left looking alive."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pushing import hoist_cli, push_paths
from support.registry import RegistryFactory, RegistryProcess
from test_push import make_file

from core.bandwidth import BandwidthLimiter
from core.digest import SequentialHasher
from core.journal import TransferJournal
from core.progress import BlobEvent, BlobState, Event
from core.queue import TransferItem, TransferQueue
from core.reference import parse_reference
from core.retry import RetryPolicy
from core.transfer import DownloadPart, Transfer, TransferState, plan_download, plan_file_push
from core.units import MiB
from core.upload import UploadSettings


async def wait_for(item: TransferItem, *states: TransferState, seconds: float = 20) -> None:
    """Until the transfer is in one of `states` and its task has ended."""
    for _ in range(int(seconds * 20)):
        if item.state in states and not item.running:
            return
        await asyncio.sleep(0.05)
    wanted = ", ".join(states)
    raise AssertionError(f"still {item.state} after {seconds} s, wanted {wanted}")


async def wait_for_end(item: TransferItem, seconds: float = 20) -> None:
    await wait_for(item, TransferState.DONE, TransferState.FAILED, seconds=seconds)


def pause_when(queue: TransferQueue, condition: Callable[[TransferItem], bool]) -> list[float]:
    """Pause a transfer of `queue` the first time `condition(item)` holds on one of its
    events, as a user would. Returns a list that gets the pause's time.monotonic()."""
    paused_at: list[float] = []

    def listener(kind: str, item: TransferItem) -> None:
        if not paused_at and not item.pause_event.is_set() and condition(item):
            paused_at.append(time.monotonic())
            queue.pause(item.id)

    queue.listeners.append(listener)
    return paused_at


async def test_refused_credentials_fail_the_transfer_with_a_sentence(
    auth_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A 401 at the first contact used to leave the transfer 'running' for ever."""
    queue = TransferQueue(
        TransferJournal(),
        settings=lambda _transfer: UploadSettings(retry=RetryPolicy(give_up_after=3)),
    )
    path = make_file(tmp_path / "a.bin", 10_000)
    item = queue.add(plan_file_push(parse_reference(f"{auth_registry.host}/q/a:v1"), [path]))
    try:
        await wait_for_end(item)
    finally:
        await queue.aclose()
    assert item.state == TransferState.FAILED
    assert "hoist login" in item.transfer.error and "401" in item.transfer.error
    saved = TransferJournal().load(item.id)
    assert saved["state"] == "failed" and "hoist login" in saved["error"]


async def test_queue_runs_two_at_once_and_keeps_order(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    queue = TransferQueue(TransferJournal(), max_active=2)
    items = []
    for i in range(4):
        path = make_file(tmp_path / f"f{i}.bin", 50_000, seed=i)
        target = parse_reference(f"{registry.host}/q/many-{i}:v1")
        items.append(queue.add(plan_file_push(target, [path])))
    assert sum(1 for item in items if item.running) == 2  # the others wait their turn
    try:
        for item in items:
            await wait_for_end(item)
    finally:
        await queue.aclose()
    assert [item.state for item in items] == [TransferState.DONE] * 4
    assert queue.counts() == {"all": 4, "active": 0, "paused": 0, "failed": 0, "done": 4}


async def test_a_pause_during_the_rehash_of_a_resumed_upload_is_prompt(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming in a new process re-hashes the prefix the registry holds (about 1 s per GB): a
    pause meanwhile stops it at once, and the next resume still finishes the blob."""

    def settings(_transfer: Transfer) -> UploadSettings:
        return UploadSettings(chunk_size=MiB, adaptive=False)

    path = make_file(tmp_path / "r.bin", 24 * MiB, seed=21)
    first = TransferQueue(TransferJournal(), settings=settings)
    pause_when(first, lambda item: item.acknowledged >= 20 * MiB)
    target = parse_reference(f"{registry.host}/q/rehash:v1")
    item = first.add(plan_file_push(target, [path]))
    try:
        await wait_for(item, TransferState.PAUSED)
    finally:
        await first.aclose()
    assert item.state == TransferState.PAUSED and item.transfer.acknowledged >= 20 * MiB

    update = SequentialHasher.update

    def slow_update(self: SequentialHasher, offset: int, data: bytes | memoryview) -> None:
        time.sleep(0.1)  # a slow disk: 20 MiB take 2 s to re-hash
        update(self, offset, data)

    monkeypatch.setattr(SequentialHasher, "update", slow_update)
    again = TransferQueue(TransferJournal(), settings=settings)
    again.load_journal()
    [item] = again.items
    hashing = pause_when(
        again, lambda item: item.status_text() == "checking the part already uploaded"
    )
    again.resume(item.id)
    try:
        await wait_for(item, TransferState.PAUSED)
        took = time.monotonic() - hashing[0]
        assert took < 1.0, took  # not the 2 s of the whole re-hash
        monkeypatch.setattr(SequentialHasher, "update", update)
        again.resume(item.id)  # pause_when pauses once
        await wait_for_end(item, seconds=60)
    finally:
        await again.aclose()
    assert item.state == TransferState.DONE, item.transfer.error
    [blob] = item.transfer.blobs
    assert blob.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


async def test_hoist_cancel_discards_a_push_s_session_and_a_download_s_partial_files(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """`hoist cancel ID` throws away what the transfer holds, as the window's Cancel does:
    the registry's upload session (DELETE) or a download's `.partial` files."""
    MiB = 1024 * 1024
    path = make_file(tmp_path / "c.bin", 6 * MiB, seed=22)
    queue = TransferQueue(
        TransferJournal(), settings=lambda _transfer: UploadSettings(chunk_size=MiB, adaptive=False)
    )
    pause_when(queue, lambda item: item.acknowledged >= 2 * MiB)
    push = queue.add(plan_file_push(parse_reference(f"{registry.host}/q/cli-cancel:v1"), [path]))
    try:
        await wait_for(push, TransferState.PAUSED)
    finally:
        await queue.aclose()
    [blob] = push.transfer.blobs
    assert blob.location and httpx.get(blob.location).status_code == 204  # still open

    out = tmp_path / "out"
    out.mkdir()
    (out / "f.bin.partial").write_bytes(b"x" * 100)
    (out / "kept.txt").write_bytes(b"done before the cancel\n")
    fetch = plan_download(parse_reference(f"{registry.host}/q/x@sha256:{'0' * 64}"), out)
    fetch.parts = [
        DownloadPart("f.bin", 1000, str(out / "f.bin"), 100),
        DownloadPart("kept.txt", 23, str(out / "kept.txt"), 23, BlobState.DONE),
    ]
    fetch.state = TransferState.PAUSED
    TransferJournal().save(fetch.id, fetch.to_json())

    for transfer_id in (push.id, fetch.id):
        done = await asyncio.to_thread(hoist_cli, "cancel", transfer_id)
        assert done.returncode == 0, done.stderr
        assert f"cancelled {transfer_id}" in done.stderr
    assert TransferJournal().ids() == []
    assert httpx.get(blob.location).status_code == 404  # the session was deleted
    assert sorted(p.name for p in out.iterdir()) == ["kept.txt"]


async def test_reordered_transfers_start_in_their_new_order(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Move to top / up / down, as download managers allow: queued ones start in list order."""
    queue = TransferQueue(TransferJournal(), max_active=1)
    items = []
    for i in range(3):
        path = make_file(tmp_path / f"o{i}.bin", 20_000, seed=i)
        target = parse_reference(f"{registry.host}/q/order-{i}:v1")
        items.append(queue.add(plan_file_push(target, [path]), start=False))
    moved: list[str] = []
    queue.listeners.append(lambda kind, item: moved.append(item.id) if kind == "moved" else None)
    first, second, third = items
    queue.move(third.id, "top")
    assert queue.items == [third, first, second]
    queue.move(first.id, "down")
    assert queue.items == [third, second, first]
    queue.move(first.id, "down")  # already last: nothing moves
    queue.move(second.id, "up")
    assert queue.items == [second, third, first]
    assert moved == [third.id, first.id, second.id]
    try:
        queue.resume_all()
        assert second.running and not third.running and not first.running
        for item in items:
            await wait_for_end(item)
    finally:
        await queue.aclose()
    assert [item.state for item in items] == [TransferState.DONE] * 3


async def test_a_transfer_s_own_rate_limit_caps_it(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """One transfer may have its own cap below the window's (none here): 3 MiB at 1 MiB/s
    takes at least 2 s however fast the machine is."""
    queue = TransferQueue(
        TransferJournal(), settings=lambda _transfer: UploadSettings(chunk_size=MiB, adaptive=False)
    )
    path = make_file(tmp_path / "capped.bin", 3 * MiB, seed=5)
    item = queue.add(
        plan_file_push(parse_reference(f"{registry.host}/q/capped:v1"), [path]), start=False
    )
    queue.set_rate_limit(item.id, MiB)
    started = time.monotonic()
    try:
        queue.resume(item.id)
        await wait_for_end(item)
    finally:
        await queue.aclose()
    assert item.state == TransferState.DONE
    assert time.monotonic() - started >= 2.0
    assert queue.limiter.rate == 0  # the window's cap is untouched


async def test_pausing_blobs_sent_in_parallel_pauses_the_transfer(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Each blob in flight stops with TransferPaused: the transfer is paused, not failed
    with "internal error: ExceptionGroup(...)"."""
    queue = TransferQueue(
        TransferJournal(),
        settings=lambda _transfer: UploadSettings(chunk_size=MiB, adaptive=False),
        limiter=BandwidthLimiter(2 * MiB),
    )
    paths = [make_file(tmp_path / f"p{i}.bin", 4 * MiB, seed=30 + i) for i in range(2)]
    target = parse_reference(f"{registry.host}/q/parallel-pause:v1")
    item = queue.add(plan_file_push(target, paths, parallel=2))
    pause_when(queue, lambda item: item.acknowledged >= MiB)
    try:
        await wait_for(item, TransferState.PAUSED, TransferState.FAILED)
    finally:
        await queue.aclose()
    assert item.state == TransferState.PAUSED, item.transfer.error


def test_status_line_says_re_sent_bytes_in_sizes_and_why_progress_went_back(
    state_dir: Path, tmp_path: Path
) -> None:
    """ "re-sent 1 MiB", not "re-sent 1048576 bytes"; a bar that moves backwards says why."""
    path = make_file(tmp_path / "s.bin", 4 * MiB, seed=40)
    transfer = plan_file_push(parse_reference("localhost:5000/q/status:v1"), [path])
    transfer.state = TransferState.RUNNING
    queue = TransferQueue(TransferJournal())
    item = TransferItem(transfer)
    why = "the registry dropped the upload session: starting this blob again from the beginning"
    events = [
        BlobEvent(transfer.id, "s.bin", BlobState.UPLOADING, 2 * MiB, 2 * MiB, 4 * MiB),
        BlobEvent(transfer.id, "s.bin", BlobState.UPLOADING, 2 * MiB, 0, 4 * MiB, message=why),
        BlobEvent(transfer.id, "s.bin", BlobState.UPLOADING, 3 * MiB, MiB, 4 * MiB, resent=MiB),
    ]
    for event in events:
        queue._on_event(item, event)
    assert item.status_text() == f"uploading (re-sent 1 MiB; {why})"


class KillOnceAcknowledged(list[Event]):
    """Events, kept as they come; the first time MiB is acknowledged the registry is killed
    and brought back half a second later (nothing listens on its port meanwhile)."""

    def __init__(self, registry: RegistryProcess) -> None:
        super().__init__()
        self.registry = registry
        self.killed = threading.Event()

    def append(self, event: Event) -> None:
        super().append(event)
        if isinstance(event, BlobEvent) and event.acknowledged >= MiB and not self.killed.is_set():
            self.killed.set()
            self.registry.kill()

            def restart() -> None:
                time.sleep(0.5)
                self.registry.restart()

            threading.Thread(target=restart, daemon=True).start()


async def test_a_registry_refusing_connections_is_not_answering_not_a_lost_network(
    registry_factory: RegistryFactory, state_dir: Path, tmp_path: Path
) -> None:
    """ "Waiting for network" only when the network is gone: a refused connection (nothing
    listens at the address) says the registry is not answering."""
    registry = registry_factory(http_secret="window-test")
    path = make_file(tmp_path / "r.bin", 3 * MiB, seed=50)
    events = KillOnceAcknowledged(registry)
    settings = UploadSettings(
        chunk_size=MiB, adaptive=False, retry=RetryPolicy(first=0.2, cap=0.5, give_up_after=30)
    )
    await push_paths(registry.host, "q/refused:v1", [path], events=events, settings=settings)
    assert events.killed.is_set()
    said = [e.message for e in events if e.message]
    # (The PATCH in flight when it died broke mid-way: that one reads as the network.)
    refused = said.index("the registry is not answering")
    assert not any("network" in m for m in said[refused:]), said


async def test_a_download_s_own_rate_limit_caps_it_and_the_upload_cap_does_not(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Download managers let one download have its own cap: 3 MiB at 1 MiB/s takes at least
    2 s; the window's upload cap (set very low here) does not slow a download."""
    path = make_file(tmp_path / "d.bin", 3 * MiB, seed=60)
    digest, _ = await push_paths(registry.host, "q/capped-download:v1", [path])
    queue = TransferQueue(TransferJournal(), limiter=BandwidthLimiter(1))  # 1 B/s for uploads
    plan = plan_download(
        parse_reference(f"{registry.host}/q/capped-download@{digest}"), tmp_path / "out"
    )
    item = queue.add(plan, start=False)
    queue.set_rate_limit(item.id, MiB)
    started = time.monotonic()
    try:
        queue.resume(item.id)
        await wait_for_end(item, seconds=30)
    finally:
        await queue.aclose()
    assert item.state == TransferState.DONE, item.transfer.error
    assert time.monotonic() - started >= 2.0
    assert (tmp_path / "out" / "d.bin").read_bytes() == path.read_bytes()
