"""The transfer queue on its own (the window's engine): failures are never left looking alive."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pushing import hoist_cli, push_paths
from support.registry import RegistryFactory, RegistryProcess
from test_push import make_file

from hoist.core.bandwidth import BandwidthLimiter
from hoist.core.oci.digest import SequentialHasher
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, BlobState, Event, RateEstimator
from hoist.core.retry import RetryPolicy
from hoist.core.transfer.download import plan_download
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import DownloadPart, Transfer, TransferState
from hoist.core.transfer.push import plan_file_push
from hoist.core.transfer.queue import TransferItem, TransferQueue
from hoist.core.transfer.upload import UploadSettings
from hoist.core.units import MiB


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


def throttled_queue(rate: int, chunk: int) -> TransferQueue:
    """A queue whose uploads go through the shared rate limit, so a chunk takes a known time."""
    return TransferQueue(
        TransferJournal(),
        settings=lambda _transfer: UploadSettings(chunk_size=chunk, adaptive=False),
        limiter=BandwidthLimiter(rate),
    )


async def test_pause_shows_pausing_until_the_run_stopped_and_the_journal_is_written(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Pause answers at once with "pausing" (listeners told); "paused" only once the run has
    stopped and the journal on disk says so, never a flash of "running" in between."""
    MiB = 1024 * 1024
    path = make_file(tmp_path / "p.bin", 8 * MiB, seed=31)
    queue = throttled_queue(2 * MiB, MiB)
    item = queue.add(plan_file_push(parse_reference(f"{registry.host}/q/pausing:v1"), [path]))
    seen: list[tuple[TransferState, bool, str]] = []

    def listener(kind: str, changed: TransferItem) -> None:
        if changed is item and item.pause_event.is_set():
            seen.append((item.state, item.running, TransferJournal().load(item.id)["state"]))

    try:
        for _ in range(400):
            if item.acknowledged >= MiB:
                break
            await asyncio.sleep(0.05)
        queue.listeners.append(listener)
        queue.pause(item.id)
        assert item.state == TransferState.PAUSING
        assert item.status_text() == "pausing…"
        assert seen and seen[0][0] == TransferState.PAUSING, "listeners hear of it at once"
        await wait_for(item, TransferState.PAUSED)
    finally:
        await queue.aclose()
    states = [state for state, _, _ in seen]
    assert set(states) == {TransferState.PAUSING, TransferState.PAUSED}, states
    first_paused = states.index(TransferState.PAUSED)
    assert all(s == TransferState.PAUSING for s in states[:first_paused])
    for state, running, on_disk in seen[first_paused:]:
        assert state == TransferState.PAUSED and not running and on_disk == "paused"
    assert 0 < item.transfer.acknowledged < item.total


async def test_a_pause_right_after_adding_is_kept(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """The run used to clear the pause asked before its task first ran: the push went on."""
    path = make_file(tmp_path / "early.bin", 3 * 1024 * 1024, seed=32)
    queue = throttled_queue(1024 * 1024, 1024 * 1024)
    item = queue.add(plan_file_push(parse_reference(f"{registry.host}/q/early:v1"), [path]))
    queue.pause(item.id)
    try:
        await wait_for(item, TransferState.PAUSED, TransferState.DONE)
    finally:
        await queue.aclose()
    assert item.state == TransferState.PAUSED
    assert item.transfer.acknowledged < item.total


async def test_a_transfer_caught_while_pausing_loads_paused_and_lists_as_paused(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A crash while pausing leaves "pausing" in the journal: that is a paused transfer."""
    path = make_file(tmp_path / "crash.bin", 100_000, seed=33)
    transfer = plan_file_push(parse_reference(f"{registry.host}/q/crash:v1"), [path])
    transfer.state = TransferState.PAUSING
    TransferJournal().save(transfer.id, transfer.to_json())
    for resume in (False, True):
        queue = TransferQueue(TransferJournal())
        queue.load_journal(resume=resume)
        [item] = queue.items
        try:
            assert item.state == TransferState.PAUSED and not item.running
        finally:
            await queue.aclose()
    listed = await asyncio.to_thread(hoist_cli, "transfers", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [row["state"] for row in json.loads(listed.stdout)] == ["paused"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Busy:
    """A task that is still running, as far as the item can tell."""

    def done(self) -> bool:
        return False


class SyntheticUpload:
    """Events of one blob as BlobUpload emits them: `sent` (bytes sent by this run, from 0)
    grows every 0.2 s during a chunk, `acknowledged` at each chunk's end."""

    def __init__(self, item: TransferItem, clock: FakeClock, chunk: int) -> None:
        [self.blob] = item.transfer.blobs
        self.item, self.clock, self.chunk = item, clock, chunk
        self.sent = self.acked = self.sent_at_ack = 0

    def new_run(self) -> None:
        self.sent = self.sent_at_ack = 0
        self.emit(BlobState.HASHING)  # re-hashing the acknowledged prefix first

    def emit(self, state: BlobState) -> None:
        self.item.observe(
            BlobEvent(self.item.id, self.blob.name, state, self.sent, self.acked, self.blob.size)
        )

    def play(self, *, rate: int, seconds: float) -> list[tuple[int, int]]:
        """Returns (item.sent, item.acknowledged) after each event."""
        seen = []
        for _ in range(int(seconds / 0.2)):
            self.clock.now += 0.2
            self.sent += int(rate * 0.2)
            if self.sent - self.sent_at_ack >= self.chunk:
                self.acked += self.chunk
                self.sent_at_ack += self.chunk
            self.emit(BlobState.UPLOADING)
            seen.append((self.item.sent, self.item.acknowledged))
        return seen


def test_bytes_sent_move_smoothly_and_speed_is_right_within_2_s_of_a_resume(
    state_dir: Path, tmp_path: Path
) -> None:
    """Progress follows bytes sent (several updates a second, not one per chunk), the
    acknowledged count stays beside it, and the speed after a resume is the new speed within
    2 s (the estimator used to count the resumed offset, and the pause, in its window)."""
    MiB = 1024 * 1024
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        f.truncate(256 * MiB)
    transfer = plan_file_push(parse_reference("127.0.0.1:5999/q/smooth:v1"), [path])
    clock = FakeClock()
    item = TransferItem(transfer, rate_estimator=RateEstimator(clock=clock))
    item.task = Busy()  # type: ignore[assignment]
    upload = SyntheticUpload(item, clock, 16 * MiB)
    item.run_started()
    seen = upload.play(rate=2 * MiB, seconds=20)
    sent = [s for s, _ in seen]
    assert sent == sorted(set(sent)), "bytes sent grow at every event (5 a second)"
    assert all(s >= a for s, a in seen)
    assert {a for _, a in seen} == {0, 16 * MiB, 32 * MiB}, "acknowledged moves per chunk"
    assert item.rate == pytest.approx(2 * MiB, rel=0.05)
    assert item.eta == pytest.approx((256 * MiB - item.sent) / (2 * MiB), rel=0.05)

    # Paused for a minute, then resumed on a link four times as fast.
    held = item.acknowledged
    item.task = None
    assert item.sent == held, "nothing is in flight while paused"
    clock.now += 60
    item.task = Busy()  # type: ignore[assignment]
    item.run_started()
    upload.new_run()
    clock.now += 3  # re-hashing the acknowledged prefix: no bytes go out meanwhile
    upload.play(rate=8 * MiB, seconds=2)
    assert item.rate == pytest.approx(8 * MiB, rel=0.15)
    assert item.acknowledged >= held
    item.task = None


async def test_closing_with_a_grace_waits_for_the_chunk_in_flight_but_no_longer(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """aclose(grace=...) pauses as Pause does and waits for it; a chunk that can't end
    within the grace is stopped then (the window's Quit must end), and the transfer is
    written back as queued with what the registry had acknowledged."""
    MiB = 1024 * 1024
    path = make_file(tmp_path / "g.bin", 12 * MiB, seed=34)
    queue = throttled_queue(MiB, 4 * MiB)  # a 4 MiB chunk takes 4 s
    item = queue.add(plan_file_push(parse_reference(f"{registry.host}/q/grace:v1"), [path]))
    for _ in range(400):
        if item.acknowledged >= 4 * MiB and item.sent > item.acknowledged:
            break
        await asyncio.sleep(0.05)
    queue.limiter.rate = 64 * 1024  # the rest of this chunk now takes about a minute
    await asyncio.wait_for(queue.aclose(grace=0.3), timeout=10)
    assert not item.running
    saved = TransferJournal().load(item.id)
    assert saved["state"] == "queued"
    assert saved["blobs"][0]["acknowledged"] == 4 * MiB


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
