"""One owner per transfer (issue 15): a Hoist working on a transfer holds an OS lock on it;
other Hoists (the command line, a window's queue) leave it alone and say so, and a transfer
whose Hoist was SIGKILLed is interrupted, not running. Against the real registry, with bytes
counted where they cross the FaultProxy."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults_helpers import (
    EMPTY_CONFIG_SIZE,
    KiB,
    MiB,
    Recorder,
    make_file,
    plan,
    sha,
    wait_until,
)
from pushing import ROOT, get_blob, hoist_cli
from support.proxy import ProxyFactory
from support.registry import RegistryProcess

from hoist.core.bandwidth import BandwidthLimiter
from hoist.core.errors import TransferBusy
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import TransferState
from hoist.core.transfer.queue import TransferQueue

SIZE = 2 * MiB + 333


def spawn_push(ref: str, path: Path, log: Path, rate: str) -> subprocess.Popen[bytes]:
    """`hoist push` held slow by its own rate cap, so others can meet it mid-way."""
    with open(log, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "hoist.core", "push", ref, str(path), "--chunk-size", "64KiB",
             "--limit-rate", rate, "--progress", "json"],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip


def only_entry(state_dir: Path) -> dict[str, Any] | None:
    files = list((state_dir / "transfers").glob("*.json"))
    if len(files) != 1:
        return None
    try:
        doc: dict[str, Any] = json.loads(files[0].read_text())
    except ValueError:
        return None
    return doc


def acknowledged(state_dir: Path) -> int:
    doc = only_entry(state_dir)
    return int(doc["blobs"][0]["acknowledged"]) if doc else 0


@pytest.fixture
def live_push(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Recorder, Path, str]]:
    """A `hoist push` of SIZE bytes at 512 KiB/s through a counting proxy, a chunk in."""
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    path = make_file(tmp_path / "owned.bin", SIZE, seed=15)
    repo = f"own/{tmp_path.name[-20:].lower().strip('_')}"
    proc = spawn_push(f"{proxy.host}/{repo}:v1", path, tmp_path / "push.log", "512KiB/s")
    try:
        wait_until(
            lambda: acknowledged(state_dir) > 0 or proc.poll() is not None, 60, "a first chunk"
        )
        assert proc.poll() is None, (tmp_path / "push.log").read_text()
        yield proc, recorder, path, repo
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_resume_beside_a_live_push_leaves_it_alone(
    live_push: tuple[subprocess.Popen[bytes], Recorder, Path, str],
    registry: RegistryProcess,
    state_dir: Path,
    tmp_path: Path,
) -> None:
    """`hoist resume --all`, `hoist resume ID` and `hoist cancel ID` beside a live `hoist push`
    of the same transfer leave it alone and name its pid; `hoist transfers` says it is running
    and by whom; the bytes reaching the registry stay under 1.1x the file."""
    proc, recorder, path, repo = live_push
    doc = only_entry(state_dir)
    assert doc is not None
    transfer_id = doc["id"]
    left_alone = f"{transfer_id} is being uploaded by another Hoist (pid {proc.pid}); left alone"

    every = hoist_cli("resume", "--all", "--progress", "json")
    assert every.returncode == 0, every.stderr
    assert left_alone in every.stderr
    one = hoist_cli("resume", transfer_id, "--progress", "json")
    assert one.returncode == 1 and left_alone in one.stderr
    cancel = hoist_cli("cancel", transfer_id)
    assert cancel.returncode == 1 and left_alone in cancel.stderr
    listing = hoist_cli("transfers", "--json")
    assert listing.returncode == 0, listing.stderr
    (row,) = json.loads(listing.stdout)
    assert (row["id"], row["state"], row["owner"]) == (transfer_id, "running", proc.pid)
    assert proc.poll() is None  # still pushing: nothing above ran it to its end

    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, (tmp_path / "push.log").read_text()
    data = path.read_bytes()
    assert f"/{repo}@sha256:" in out.decode()
    assert get_blob(registry.url, repo, sha(data)) == data
    sent = recorder.blob_bytes_up() - EMPTY_CONFIG_SIZE
    assert SIZE <= sent < 1.1 * SIZE, recorder.timeline()
    assert list((state_dir / "transfers").iterdir()) == []  # no entry, no lock file left


async def test_a_queue_leaves_a_live_push_alone(
    live_push: tuple[subprocess.Popen[bytes], Recorder, Path, str],
    state_dir: Path,
    tmp_path: Path,
) -> None:
    """A window's queue (resume on start-up) beside a live `hoist push`: the transfer comes in
    paused, says who owns it, is not run when resumed, and its journal entry is not
    overwritten with the queue's older copy."""
    proc, recorder, _path, _repo = live_push
    queue = TransferQueue(TransferJournal())
    try:
        assert queue.load_journal(resume=True) == []
        (item,) = queue.items
        assert item.state == TransferState.PAUSED and item.owner == proc.pid
        assert item.status_text() == (
            f"being uploaded by another Hoist (pid {proc.pid}); left alone"
        )
        before = acknowledged(state_dir)
        queue.resume(item.id)
        assert item.task is not None
        await item.task
        await queue.flush()
        assert item.state == TransferState.PAUSED and item.owner == proc.pid
        assert acknowledged(state_dir) >= before  # never rolled back by the queue's copy
        with pytest.raises(TransferBusy):
            await queue.cancel(item.id)
        assert proc.poll() is None
    finally:
        await queue.aclose()
    proc.communicate(timeout=60)
    assert proc.returncode == 0, (tmp_path / "push.log").read_text()
    sent = recorder.blob_bytes_up() - EMPTY_CONFIG_SIZE
    assert SIZE <= sent < 1.1 * SIZE, recorder.timeline()


async def test_sigkilled_push_is_interrupted_not_running(
    live_push: tuple[subprocess.Popen[bytes], Recorder, Path, str],
    registry: RegistryProcess,
    state_dir: Path,
) -> None:
    """After SIGKILL of `hoist push` its journal still says running, but nobody owns it:
    `hoist transfers` and a window's queue say interrupted, and `hoist resume --all` takes it
    over and ends it."""
    proc, _recorder, path, repo = live_push
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    doc = only_entry(state_dir)
    assert doc is not None and doc["state"] == "running"

    listing = hoist_cli("transfers", "--json")
    assert listing.returncode == 0, listing.stderr
    (row,) = json.loads(listing.stdout)
    assert (row["state"], row["owner"]) == ("interrupted", None)
    text = hoist_cli("transfers")
    assert f"{doc['id']}  " in text.stdout and "interrupted" in text.stdout
    assert "running" not in text.stdout
    queue = TransferQueue(TransferJournal())
    try:
        assert queue.load_journal() == []
        (item,) = queue.items
        assert item.state == TransferState.PAUSED and item.owner is None
        assert item.status_text() == "interrupted"
    finally:
        await queue.aclose()

    resumed = await asyncio.to_thread(hoist_cli, "resume", "--all", "--progress", "json")
    assert resumed.returncode == 0, resumed.stderr
    assert "left alone" not in resumed.stderr
    data = path.read_bytes()
    assert get_blob(registry.url, repo, sha(data)) == data


def test_claim_is_one_per_process_and_dies_with_it(state_dir: Path) -> None:
    """The lock is the kernel's: a second claim fails while a process holds it (naming its
    pid), and succeeds at once after that process is SIGKILLed."""
    journal = TransferJournal()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from hoist.core.transfer.journal import TransferJournal\n"
         "c = TransferJournal().claim('t1'); print('held', flush=True); sys.stdin.read()"],
        cwd=ROOT, env=dict(os.environ), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        assert journal.owner("t1") == holder.pid
        with pytest.raises(TransferBusy) as info:
            journal.claim("t1")
        assert info.value.pid == holder.pid
        with pytest.raises(TransferBusy):
            journal.remove("t1")
    finally:
        holder.kill()
        holder.communicate()
    assert journal.owner("t1") is None
    with journal.claim("t1") as claim:
        assert journal.owner("t1") == os.getpid()
        with pytest.raises(TransferBusy):
            journal.claim("t1")  # this process already works on it
        assert claim.held
    assert journal.owner("t1") is None
    assert list(journal.root.iterdir()) == []


async def test_cli_leaves_a_queue_run_alone(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """The other way round: a window's queue is pushing (held at 512 KiB/s); `hoist resume
    --all` and `hoist cancel` leave it alone and name this process; it ends once."""
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    path = make_file(tmp_path / "queued.bin", SIZE, seed=25)
    queue = TransferQueue(TransferJournal(), limiter=BandwidthLimiter(512 * KiB))
    try:
        item = queue.add(plan(proxy.host, "own/queued:v1", path))
        while acknowledged(state_dir) == 0:
            assert item.state in (TransferState.QUEUED, TransferState.RUNNING), item.transfer.error
            await asyncio.sleep(0.01)
        left_alone = f"{item.id} is being uploaded by another Hoist (pid {os.getpid()}); left alone"
        every = await asyncio.to_thread(hoist_cli, "resume", "--all", "--progress", "json")
        assert every.returncode == 0 and left_alone in every.stderr, every.stderr
        cancel = await asyncio.to_thread(hoist_cli, "cancel", item.id)
        assert cancel.returncode == 1 and left_alone in cancel.stderr, cancel.stderr
        assert item.running
        assert item.task is not None
        await item.task
        assert item.state == TransferState.DONE, item.transfer.error
    finally:
        await queue.aclose()
    assert get_blob(registry.url, "own/queued", sha(path.read_bytes())) == path.read_bytes()
    sent = recorder.blob_bytes_up() - EMPTY_CONFIG_SIZE
    assert SIZE <= sent < 1.1 * SIZE, recorder.timeline()
