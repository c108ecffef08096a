"""Pause, Ctrl-C, SIGTERM and SIGHUP at any byte, and lose nothing (issue 15).

Each chunk goes as a streamed PATCH that a pause ends cleanly: distribution 2.8 keeps every
byte sent, and the resume sends only what it lacks. The link is a rate-limited FaultProxy, so
"the middle of a chunk" is a certainty, not a race; bytes are counted where they cross it.
Scripted registries (FakeRegistry) stand in for answers distribution can't be made to give:
streaming refused, a `Range` counting only the request's bytes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from faults_helpers import (
    EMPTY_CONFIG_SIZE,
    RESTARTED,
    FakeRegistry,
    MiB,
    Recorder,
    layer_digest,
    make_file,
    messages,
    push_fake,
    run_transfer,
    sha,
    upload_state,
    wait_until,
)
from pushing import ROOT, get_blob
from support.proxy import ProxyFactory, RequestHead
from support.registry import RegistryProcess
from test_queue import pause_when, wait_for

from hoist.core.errors import TransferPaused
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, BlobState, Event
from hoist.core.registry.profile import ProfileStore
from hoist.core.retry import RetryPolicy
from hoist.core.sources.artifact import SplitOptions
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import Push, TransferState
from hoist.core.transfer.push import plan_file_push
from hoist.core.transfer.queue import TransferQueue
from hoist.core.transfer.settings import apply_profile
from hoist.core.transfer.upload import UploadSettings

#: The uplink while a test pauses: slow enough that a chunk takes seconds.
RATE = 8 * MiB
SIZE = 24 * MiB + 4321


def streamed_patches(recorder: Recorder) -> int:
    return sum(1 for s in recorder.requests("PATCH") if s.streamed)


def sent_so_far(events: list[Event] | dict[str, BlobEvent]) -> int:
    blobs = events.values() if isinstance(events, dict) else events
    return sum(e.sent for e in blobs if isinstance(e, BlobEvent))


# -- the queue's Pause in the middle of a chunk ---------------------------------------------


@pytest.mark.parametrize("chunk", [16 * MiB, 1024 * MiB], ids=["16MiB", "1GiB"])
async def test_queue_pause_mid_chunk_keeps_every_byte_sent(
    registry: RegistryProcess,
    fault_proxy: ProxyFactory,
    state_dir: Path,
    tmp_path: Path,
    chunk: int,
) -> None:
    """Pause 6 MiB into the first chunk (16 MiB, or 1 GiB on a 24 MiB file): the stream ends
    there, the registry acknowledges what it got, the journal keeps it; the resume in a new
    queue sends the rest and not 1 MiB more, and the blob lands byte-exact."""
    proxy = fault_proxy(registry)
    proxy.limit_rate_up(RATE)
    recorder = Recorder(proxy)
    data = make_file(tmp_path / "p.bin", SIZE, seed=chunk // MiB).read_bytes()
    repo = f"pause/queue-{chunk // MiB}"

    def settings(_transfer: object = None) -> UploadSettings:
        return UploadSettings(chunk_size=chunk, adaptive=False)

    first = TransferQueue(TransferJournal(), settings=settings)
    pause_when(first, lambda item: sent_so_far(item.blobs) >= 6 * MiB)
    item = first.add(
        plan_file_push(parse_reference(f"{proxy.host}/{repo}:v1"), [tmp_path / "p.bin"])
    )
    try:
        await wait_for(item, TransferState.PAUSED, seconds=60)
    finally:
        await first.aclose()

    (blob,) = item.transfer.blobs
    assert 6 * MiB <= blob.acknowledged < min(chunk, SIZE)  # mid-chunk, kept
    assert streamed_patches(recorder) == 1, recorder.timeline()
    assert recorder.patch_bytes() == blob.acknowledged  # the registry got what went, no more
    saved = TransferJournal().load(item.id)
    assert saved["state"] == "paused" and saved["blobs"][0]["acknowledged"] == blob.acknowledged
    assert upload_state(blob.location or "")["Offset"] == blob.acknowledged  # newest Location
    status = httpx.get(blob.location or "")
    assert status.status_code == 204 and status.headers["Range"] == f"0-{blob.acknowledged - 1}"

    proxy.limit_rate_up(None)
    again = TransferQueue(TransferJournal(), settings=settings)
    again.load_journal()
    [item] = again.items
    again.resume(item.id)
    try:
        await wait_for(item, TransferState.DONE, seconds=60)
    finally:
        await again.aclose()
    assert item.state == TransferState.DONE, item.transfer.error
    resent = recorder.blob_bytes_up() - SIZE - EMPTY_CONFIG_SIZE
    assert 0 <= resent < 1 * MiB, recorder.timeline()
    assert layer_digest(registry.url, repo, "v1") == sha(data)
    assert get_blob(registry.url, repo, sha(data)) == data
    assert item.transfer.blobs[0].restarts == 0


# -- Ctrl-C, SIGTERM, SIGHUP of `hoist push` ------------------------------------------------


def spawn_push(ref: str, path: Path, log: Path, chunk: str) -> subprocess.Popen[bytes]:
    """`hoist push` as a foreground program gets it: SIGINT at its default (a background job
    of a script ignores it), in its own session so only it gets our signals."""
    with open(log, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "hoist.core", "push", ref, str(path), "--chunk-size", chunk,
             "--plain-http", "--progress", "plain"],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["ctrl-c", "sigterm", "sighup"],
)
def test_cli_signal_mid_chunk_pauses_and_resume_sends_only_the_rest(
    registry: RegistryProcess,
    fault_proxy: ProxyFactory,
    state_dir: Path,
    tmp_path: Path,
    sig: signal.Signals,
    code: int,
) -> None:
    """A signal 6 MiB into a 16 MiB chunk: `hoist push` ends the stream, writes the journal
    and exits 128 + the signal with one line saying how to resume; `hoist resume ID` sends the
    rest (not 1 MiB more) and the blob lands byte-exact."""
    proxy = fault_proxy(registry)
    proxy.limit_rate_up(RATE)
    recorder = Recorder(proxy)
    data = make_file(tmp_path / "s.bin", SIZE, seed=int(sig)).read_bytes()
    repo = f"pause/cli-{sig.name.lower()}"
    log = tmp_path / "push.log"
    proc = spawn_push(f"{proxy.host}/{repo}:v1", tmp_path / "s.bin", log, "16M")
    try:
        wait_until(lambda: recorder.patch_bytes() >= 6 * MiB, 30.0, "6 MiB sent")
        proc.send_signal(sig)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    said = log.read_text()
    assert proc.returncode == code, said
    resume_lines = [line for line in said.splitlines() if "hoist resume" in line]
    assert len(resume_lines) == 1, said
    (transfer_id,) = [
        p.name.removesuffix(".json") for p in (state_dir / "transfers").glob("*.json")
    ]
    assert resume_lines[0] == f"Paused. Resume with: hoist resume {transfer_id}"
    doc = TransferJournal().load(transfer_id)
    (blob,) = doc["blobs"]
    assert doc["state"] == "paused"
    assert 6 * MiB <= blob["acknowledged"] < 16 * MiB, said  # kept mid-chunk
    assert recorder.patch_bytes() == blob["acknowledged"]

    proxy.limit_rate_up(None)
    resumed = subprocess.run(
        [sys.executable, "-m", "hoist.core", "resume", transfer_id, "--plain-http"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    resent = recorder.blob_bytes_up() - SIZE - EMPTY_CONFIG_SIZE
    assert 0 <= resent < 1 * MiB, recorder.timeline()
    assert RESTARTED not in resumed.stderr
    assert layer_digest(registry.url, repo, "v1") == sha(data)
    assert get_blob(registry.url, repo, sha(data)) == data


def test_cli_second_ctrl_c_stops_at_once_and_says_what_it_costs(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """Ctrl-C, then Ctrl-C again before the stream could end (the link is stalled): `hoist`
    stops at once, says what that costs, and still says how to resume."""
    proxy = fault_proxy(registry)
    proxy.limit_rate_up(RATE)
    recorder = Recorder(proxy)
    make_file(tmp_path / "c.bin", SIZE, seed=77)
    log = tmp_path / "push.log"
    proc = spawn_push(f"{proxy.host}/pause/twice:v1", tmp_path / "c.bin", log, "16M")
    try:
        wait_until(lambda: recorder.patch_bytes() >= 2 * MiB, 30.0, "2 MiB sent")
        proxy.limit_rate_up(1024)  # the stream can't end for minutes now
        proc.send_signal(signal.SIGINT)
        wait_until(lambda: "Pausing" in log.read_text(), 30.0, "the CLI to say Pausing")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.limit_rate_up(None)
    said = log.read_text()
    assert proc.returncode == 130, said
    assert "Stopping at once: the chunk in flight is cut" in said
    assert "starts that blob over" in said
    assert len([line for line in said.splitlines() if "hoist resume" in line]) == 1, said


# -- several blobs in flight ----------------------------------------------------------------


async def test_two_blobs_at_once_pause_cleanly_and_resume_to_the_right_digests(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """ "Blobs at once: 2", paused while both stream: one TransferPaused (no exception group),
    each blob keeps what it sent, and the resume sends the rest of each."""
    proxy = fault_proxy(registry)
    proxy.limit_rate_up(RATE)
    recorder = Recorder(proxy)
    files = [tmp_path / "a.bin", tmp_path / "b.bin"]
    datas = [make_file(f, 12 * MiB + i, seed=40 + i).read_bytes() for i, f in enumerate(files)]
    target = parse_reference(f"{proxy.host}/pause/two:v1")
    transfer = plan_file_push(target, files, chunk_size=16 * MiB, parallel=2)
    journal = TransferJournal()
    pause = asyncio.Event()
    events: list[Event] = []

    def on_event(event: Event) -> None:
        latest = {e.blob: e for e in events if isinstance(e, BlobEvent)}
        if len(latest) == 2 and all(e.sent >= 2 * MiB for e in latest.values()):
            pause.set()

    with pytest.raises(TransferPaused):
        await run_transfer(
            transfer, pause=pause, journal=journal, events=events, on_event=on_event,
            settings=UploadSettings(chunk_size=16 * MiB),
        )  # fmt: skip
    assert all(2 * MiB <= b.acknowledged < b.size for b in transfer.blobs), transfer.blobs
    assert TransferJournal().load(transfer.id)["state"] == "paused"

    proxy.limit_rate_up(None)
    resumed = Push.from_json(journal.load(transfer.id))
    await run_transfer(resumed, journal=journal, settings=UploadSettings(chunk_size=16 * MiB))
    total = sum(len(d) for d in datas)
    resent = recorder.blob_bytes_up() - total - EMPTY_CONFIG_SIZE
    assert 0 <= resent < 1 * MiB, recorder.timeline()
    for blob, data in zip(resumed.blobs, datas, strict=True):
        assert blob.digest == sha(data) and blob.restarts == 0
        assert get_blob(registry.url, "pause/two", sha(data)) == data


async def test_one_blob_failing_never_cuts_its_sibling(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """A blob whose file changed fails the transfer; the other blob, mid-stream, is never cut
    (no cut reaches the registry): it goes on to its commit, so a retry only sends the
    failed one. What reaches the caller is the failure itself, not an exception group."""
    proxy = fault_proxy(registry)
    proxy.limit_rate_up(RATE)
    good = make_file(tmp_path / "good.bin", 12 * MiB, seed=50)
    gone = make_file(tmp_path / "gone.bin", 12 * MiB, seed=51)
    transfer = plan_file_push(
        parse_reference(f"{proxy.host}/pause/sibling:v1"), [good, gone],
        chunk_size=16 * MiB, parallel=2,
    )  # fmt: skip
    events: list[Event] = []

    def on_event(event: Event) -> None:
        mid_stream = isinstance(event, BlobEvent) and event.sent >= 2 * MiB
        if mid_stream and event.blob == "good.bin" and gone.stat().st_size > 7:
            gone.write_bytes(b"changed")  # the other blob's file changes under it

    with pytest.raises(Exception) as failed:
        await run_transfer(transfer, events=events, on_event=on_event)
    assert not isinstance(failed.value, BaseExceptionGroup)
    assert "gone.bin" in str(failed.value)
    good_blob = next(b for b in transfer.blobs if b.name == "good.bin")
    assert good_blob.finished and good_blob.digest == sha(good.read_bytes())
    assert not [e for e in proxy.events if e.startswith("cut")]
    assert get_blob(registry.url, "pause/sibling", good_blob.digest) == good.read_bytes()


# -- progress during a chunk ----------------------------------------------------------------


async def test_sent_grows_several_times_a_second_during_a_chunk(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """One 16 MiB chunk at 8 MiB/s: `sent` moves several times a second meanwhile, and
    `acknowledged` only when the registry answers, and never backwards."""
    proxy = fault_proxy(registry)
    proxy.limit_rate_up(RATE)
    make_file(tmp_path / "g.bin", 16 * MiB + 1, seed=60)
    transfer = plan_file_push(
        parse_reference(f"{proxy.host}/pause/progress:v1"), [tmp_path / "g.bin"],
        chunk_size=16 * MiB,
    )  # fmt: skip
    events: list[Event] = []
    await run_transfer(transfer, events=events, settings=UploadSettings(chunk_size=16 * MiB))
    blob_events = [e for e in events if isinstance(e, BlobEvent)]
    first_chunk = [e for e in blob_events if e.state == BlobState.UPLOADING and e.acknowledged == 0]
    assert len({e.sent for e in first_chunk}) >= 6  # ≥ 2 s of sending, coalesced at 0.2 s
    acked = [e.acknowledged for e in blob_events]
    assert acked == sorted(acked)
    assert set(acked) <= {0, 16 * MiB, 16 * MiB + 1}


# -- streaming refused: sized chunks, learned per host --------------------------------------


@pytest.mark.parametrize("linger", [5.0, 0.0], ids=["reads-the-body", "closes-at-once"])
async def test_a_proxy_refusing_streamed_patch_gets_sized_chunks_learned_per_host(
    registry: RegistryProcess,
    fault_proxy: ProxyFactory,
    state_dir: Path,
    tmp_path: Path,
    linger: float,
) -> None:
    """A proxy answering 411 to a chunked body (old nginx), reading the body first or closing
    at once: the upload goes on with sized chunks, the host's profile says so, and the next
    push sends no streamed PATCH."""
    proxy = fault_proxy(registry)
    proxy.linger_timeout = linger
    recorder = Recorder(proxy)

    def chunked_patch(req: RequestHead) -> bool:
        return req.method == "PATCH" and req.chunked

    proxy.respond_instead(chunked_patch, 411, body="Length Required", times=None)
    data = make_file(tmp_path / "f.bin", 3 * MiB + 7, seed=70).read_bytes()
    store = ProfileStore()
    settings = apply_profile(UploadSettings(chunk_size=MiB), proxy.host, store)
    transfer = plan_file_push(
        parse_reference(f"{proxy.host}/pause/refused:v1"), [tmp_path / "f.bin"], chunk_size=MiB
    )
    events: list[Event] = []
    await run_transfer(transfer, events=events, settings=settings)
    assert transfer.blobs[0].digest == sha(data)
    assert get_blob(registry.url, "pause/refused", sha(data)) == data
    assert streamed_patches(recorder) == 1  # refused once, then sized
    assert any("sending sized chunks" in m for m in messages(events))
    assert store.get(proxy.host).streamed is False

    recorder.reset()
    settings = apply_profile(UploadSettings(chunk_size=MiB), proxy.host, store)
    # Other bytes: the same file would be found in the registry (the digest cache knows it).
    make_file(tmp_path / "g.bin", 3 * MiB + 7, seed=71)
    again = plan_file_push(
        parse_reference(f"{proxy.host}/pause/refused-again:v1"), [tmp_path / "g.bin"],
        chunk_size=MiB,
    )  # fmt: skip
    await run_transfer(again, settings=settings)
    assert streamed_patches(recorder) == 0 and len(recorder.requests("PATCH")) == 4


@pytest.mark.parametrize("status", [400, 411, 413, 416])
async def test_streaming_refused_falls_back_without_losing_the_blob(
    state_dir: Path, tmp_path: Path, status: int
) -> None:
    """Each refusal a proxy or registry gives a streamed PATCH (a 400 from a middlebox, old
    nginx's 411, a body limit's 413, a 416): sized chunks from where the registry stands."""
    data = make_file(tmp_path / "r.bin", 5 * 64 * 1024 + 9, seed=status).read_bytes()
    fake = FakeRegistry(refuse_streamed=status)
    events: list[Event] = []
    transfer = await push_fake(fake, tmp_path / "r.bin", events=events)
    assert fake.blobs[sha(data)] == data
    assert transfer.blobs[0].restarts == 0
    streamed = [e for e in fake.log if e.method == "PATCH" and "Content-Range" not in e.headers]
    sized = [e for e in fake.log if e.method == "PATCH" and "Content-Range" in e.headers]
    assert len(streamed) == 1 and streamed[0].status == status
    assert len(sized) == 6 and any("sending sized chunks" in m for m in messages(events))


async def test_a_range_counting_only_the_request_is_confirmed_by_get(
    state_dir: Path, tmp_path: Path
) -> None:
    """zot's `Range` after a second streamed PATCH counts only that request's bytes: a GET
    confirms the true size, and streaming goes on."""
    data = make_file(tmp_path / "z.bin", 5 * 64 * 1024 + 9, seed=80).read_bytes()
    fake = FakeRegistry(streamed_range=lambda held, n: f"0-{n - 1}")
    transfer = await push_fake(fake, tmp_path / "z.bin")
    assert fake.blobs[sha(data)] == data and transfer.blobs[0].restarts == 0
    patches = [e for e in fake.log if e.method == "PATCH"]
    assert patches and all("Content-Range" not in e.headers for e in patches)


async def test_a_second_streamed_patch_refused_restarts_the_blob_in_sized_chunks(
    state_dir: Path, tmp_path: Path
) -> None:
    """A registry that takes one streamed PATCH per session and loses the session at the
    second (BLOB_UPLOAD_UNKNOWN): the blob starts again in sized chunks, and lands."""
    data = make_file(tmp_path / "o.bin", 5 * 64 * 1024 + 9, seed=81).read_bytes()
    fake = FakeRegistry(one_streamed_patch=True)
    events: list[Event] = []
    transfer = await push_fake(fake, tmp_path / "o.bin", events=events)
    assert fake.blobs[sha(data)] == data
    assert transfer.blobs[0].restarts == 1
    patches = [e for e in fake.log if e.method == "PATCH"]
    assert ["Content-Range" in e.headers for e in patches] == [False, False] + [True] * 6


async def test_a_range_nothing_confirms_is_trusted_once_then_sized_chunks(
    state_dir: Path, tmp_path: Path
) -> None:
    """ECR's `Range` stays at the first PATCH's value, and its upload status can't say more:
    the 202 is trusted as for a sized chunk (the registry verifies the digest at the end),
    and the rest goes in sized chunks."""
    data = make_file(tmp_path / "e.bin", 5 * 64 * 1024 + 9, seed=82).read_bytes()
    fake = FakeRegistry(streamed_range=lambda held, n: "0-65535", status_range=lambda held: "junk")
    events: list[Event] = []
    transfer = await push_fake(fake, tmp_path / "e.bin", events=events)
    assert fake.blobs[sha(data)] == data and transfer.blobs[0].restarts == 0
    patches = [e for e in fake.log if e.method == "PATCH"]
    assert ["Content-Range" in e.headers for e in patches] == [False, False] + [True] * 4
    assert any("sending sized chunks" in m for m in messages(events))


# -- Cancel after a pause -------------------------------------------------------------------


async def test_cancel_mid_chunk_deletes_the_session_by_its_newest_location(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """Cancel in the middle of a chunk: the stream ends cleanly first, so the DELETE names
    the session's newest Location and distribution 2.8 removes it."""
    proxy = fault_proxy(registry)
    proxy.limit_rate_up(RATE)
    recorder = Recorder(proxy)
    make_file(tmp_path / "x.bin", SIZE, seed=90)
    queue = TransferQueue(
        TransferJournal(),
        settings=lambda _transfer: UploadSettings(chunk_size=16 * MiB, adaptive=False),
    )
    item = queue.add(
        plan_file_push(parse_reference(f"{proxy.host}/pause/cancel:v1"), [tmp_path / "x.bin"])
    )
    try:
        for _ in range(600):
            if sent_so_far(item.blobs) >= 4 * MiB:
                break
            await asyncio.sleep(0.05)
        await queue.cancel(item.id)
    finally:
        await queue.aclose()
    deletes = [r for r in proxy.requests if r.method == "DELETE"]
    assert [r.status for r in deletes] == [204], recorder.timeline()
    assert not [e for e in proxy.events if e.startswith("cut")]
    assert upload_state(recorder.requests("DELETE")[0].target)["Offset"] >= 4 * MiB


def test_discard_says_what_could_not_be_removed_without_the_wrong_hint(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """`hoist cancel` of a transfer whose session the registry no longer has: one line saying
    the session could not be removed and that it expires, not "Check the repository name"."""
    journal = TransferJournal()
    make_file(tmp_path / "y.bin", 1000, seed=91)
    transfer = plan_file_push(
        parse_reference(f"{registry.host}/pause/gone:v1"), [tmp_path / "y.bin"]
    )
    transfer.blobs[
        0
    ].location = f"{registry.url}/v2/pause/gone/blobs/uploads/0a1b2c3d-0000-4000-8000-000000000000"
    transfer.state = TransferState.PAUSED
    journal.save(transfer.id, transfer.to_json())
    done = subprocess.run(
        [sys.executable, "-m", "hoist.core", "cancel", transfer.id, "--plain-http"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "could not remove its upload session" in done.stderr
    assert "expires" in done.stderr
    assert "Check the repository name" not in done.stderr
    assert json.dumps(transfer.id) and transfer.id not in journal.ids()


# -- pausing where nothing streams ----------------------------------------------------------


async def test_a_pause_while_waiting_to_retry_stops_at_once(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """The registry answers 503 and the upload waits 30 s before trying again: a pause ends
    the wait at once instead of after it (Ctrl-C used to sit out the countdown)."""
    proxy = fault_proxy(registry)
    make_file(tmp_path / "w.bin", 3 * MiB, seed=92)
    transfer = plan_file_push(
        parse_reference(f"{proxy.host}/pause/waiting:v1"), [tmp_path / "w.bin"], chunk_size=MiB
    )
    proxy.fail_every(1, 503, match=lambda req: req.method == "PATCH")
    pause = asyncio.Event()
    events: list[Event] = []

    def on_event(event: Event) -> None:
        if isinstance(event, BlobEvent) and event.state == BlobState.WAITING:
            pause.set()

    settings = UploadSettings(chunk_size=MiB, retry=RetryPolicy(first=30, cap=30))
    push = run_transfer(transfer, pause=pause, events=events, on_event=on_event, settings=settings)
    with pytest.raises(TransferPaused):
        await asyncio.wait_for(push, 15)  # not the 30 s wait
    assert transfer.state == TransferState.PAUSED
    assert [e.state for e in events if isinstance(e, BlobEvent)][-1] == BlobState.PAUSED


async def test_a_pause_during_a_sized_chunk_says_what_finishing_it_costs(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """Where only sized chunks work, a sized PATCH can't end early without being lost: the
    pause waits for its end, and says at once how much is left to send and how long."""
    proxy = fault_proxy(registry)
    proxy.limit_rate_up(RATE)
    make_file(tmp_path / "z.bin", 24 * MiB, seed=93)
    transfer = plan_file_push(
        parse_reference(f"{proxy.host}/pause/sized:v1"), [tmp_path / "z.bin"],
        chunk_size=16 * MiB,
    )  # fmt: skip
    pause = asyncio.Event()
    events: list[Event] = []
    said_at: list[int] = []

    def on_event(event: Event) -> None:
        if not isinstance(event, BlobEvent):
            return
        if event.sent >= 4 * MiB:
            pause.set()
        if pause.is_set() and event.message.startswith("pausing after this chunk") and not said_at:
            said_at.append(event.sent)

    settings = UploadSettings(chunk_size=16 * MiB, streamed=False)
    with pytest.raises(TransferPaused):
        await run_transfer(
            transfer, pause=pause, events=events, on_event=on_event, settings=settings
        )
    assert said_at and said_at[0] < 16 * MiB  # said while the chunk still had MiBs to go
    said = [m for m in messages(events) if m.startswith("pausing after this chunk")]
    assert "left to send" in said[0] and not said[0].startswith("pausing after this chunk: 0 ")
    assert transfer.blobs[0].acknowledged == 16 * MiB  # the chunk finished, then paused


async def test_queue_pause_of_a_split_push_with_two_parts_at_once_is_no_internal_error(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """The window's case: a split push, two parts at once, paused while both stream. It used
    to end "Failed: internal error: ExceptionGroup(TransferPaused)" with Resume greyed out;
    now it is paused, each part keeps what it sent, and Resume finishes it to the digest."""
    proxy = fault_proxy(registry)
    proxy.limit_rate_up(RATE)
    recorder = Recorder(proxy)
    data = make_file(tmp_path / "split.bin", 24 * MiB, seed=94).read_bytes()

    def settings(_transfer: object = None) -> UploadSettings:
        return UploadSettings(chunk_size=16 * MiB, adaptive=False)

    queue = TransferQueue(TransferJournal(), settings=settings)
    pause_when(
        queue,
        lambda item: sum(1 for e in item.blobs.values() if e.sent >= 2 * MiB) >= 2,
    )
    target = parse_reference(f"{proxy.host}/pause/split:v1")
    transfer = plan_file_push(
        target, [tmp_path / "split.bin"], split=SplitOptions(8 * MiB), parallel=2
    )
    item = queue.add(transfer)
    try:
        await wait_for(item, TransferState.PAUSED, TransferState.FAILED, seconds=60)
        assert item.state == TransferState.PAUSED, item.transfer.error
        assert item.transfer.error == ""
        started = [b for b in item.transfer.blobs if b.acknowledged]
        assert len(started) == 2 and all(2 * MiB <= b.acknowledged < b.size for b in started)
        proxy.limit_rate_up(None)
        queue.resume(item.id)
        await wait_for(item, TransferState.DONE, TransferState.FAILED, seconds=60)
    finally:
        await queue.aclose()
    assert item.state == TransferState.DONE, item.transfer.error
    resent = recorder.blob_bytes_up() - len(data) - EMPTY_CONFIG_SIZE
    assert 0 <= resent < 1 * MiB, recorder.timeline()
    assert [b.digest for b in item.transfer.blobs] == [
        sha(data[i : i + 8 * MiB]) for i in range(0, len(data), 8 * MiB)
    ]


class LosesTheSessionWith413(FakeRegistry):
    """A proxy's 413 to the first sized chunk, after which the registry no longer knows the
    session (it had been idle too long): the smaller chunks need a new session."""

    refused = False

    def _session(
        self, request: httpx.Request, repo: str, session: str, body: bytes
    ) -> httpx.Response:
        if request.method == "PATCH" and "Content-Range" in request.headers and not self.refused:
            self.refused = True
            del self.sessions[session]
            return httpx.Response(413, text="<title>413 Request Entity Too Large</title>")
        return super()._session(request, repo, session, body)


async def test_a_413_that_loses_the_session_goes_on_in_a_new_one(
    state_dir: Path, tmp_path: Path
) -> None:
    """Sized chunks (streaming refused), a 413, and the status GET says the session is gone:
    the blob starts again in a new session with smaller chunks (it used to stop on an
    assertion: no session to send them to)."""
    data = make_file(tmp_path / "l.bin", 5 * MiB, seed=95).read_bytes()
    fake = LosesTheSessionWith413(refuse_streamed=411)
    transfer = await push_fake(fake, tmp_path / "l.bin", chunk=4 * MiB)
    assert fake.blobs[sha(data)] == data
    assert transfer.blobs[0].restarts == 1
