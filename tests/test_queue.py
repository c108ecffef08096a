"""The transfer queue on its own (the window's engine): failures are never left looking alive."""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.registry import RegistryProcess
from test_push import make_file

from core.journal import TransferJournal
from core.queue import TransferQueue
from core.reference import parse_reference
from core.retry import RetryPolicy
from core.transfer import TransferState, plan_file_push
from core.upload import UploadSettings


async def wait_for_end(item, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds * 20)):
        if item.state in (TransferState.DONE, TransferState.FAILED) and not item.running:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {item.state} after {seconds} s")


async def test_refused_credentials_fail_the_transfer_with_a_sentence(
    auth_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A 401 at the first contact used to leave the transfer 'running' for ever."""
    queue = TransferQueue(
        TransferJournal(), settings=lambda: UploadSettings(retry=RetryPolicy(give_up_after=3))
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
