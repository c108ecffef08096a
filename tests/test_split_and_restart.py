"""Split mode under a real fault, and restarting a file that changed while paused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from faults_helpers import RESTARTED, Recorder, messages, run_transfer
from pushing import get_manifest, hoist_cli
from support.registry import RegistryProcess
from test_push import make_file, sha

from hoist.core.errors import FileChanged, TransferPaused
from hoist.core.oci.annotations import SPLIT_FILE_DIGEST
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, Event
from hoist.core.sources.artifact import SplitOptions
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import Push, TransferState
from hoist.core.transfer.push import plan_file_push, restart_changed_blobs

KiB = 1024
PART = 256 * KiB
CHUNK = 64 * KiB


async def test_a_cut_in_split_mode_costs_one_part(
    registry: RegistryProcess, fault_proxy, state_dir: Path, tmp_path: Path
) -> None:
    """distribution 2.8 drops the session of the part in flight; the other parts stay done."""
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    size = 4 * PART + 5000  # five parts, the last one short
    path = make_file(tmp_path / "disk.img", size, seed=11)
    # The 11th PATCH is the 3rd chunk of part 3 (4 chunks a part): cut 20,000 bytes into it.
    recorder.cut_in("PATCH", 11, 20_000)
    transfer = plan_file_push(
        parse_reference(f"{proxy.host}/split/disk:v1"), [path], chunk_size=CHUNK,
        split=SplitOptions(PART),
    )  # fmt: skip
    events: list[Event] = []
    await run_transfer(transfer, events=events)

    restarted = [b for b in transfer.blobs if b.restarts]
    assert [b.name for b in restarted] == ["disk.img.part0003"]
    resent = recorder.blob_bytes_up() - size - 2  # 2: the empty config
    assert 0 < resent <= PART  # at most one part again, never the file
    assert any(RESTARTED in m for m in messages(events))
    manifest = get_manifest(registry.url, "split/disk", "v1")
    assert len(manifest["layers"]) == 5
    assert {layer["annotations"][SPLIT_FILE_DIGEST] for layer in manifest["layers"]} == {
        sha(path.read_bytes())
    }


async def test_changed_file_is_refused_then_restarted_with_its_new_content(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "model.bin", 10 * CHUNK, seed=3)
    journal = TransferJournal()
    transfer = plan_file_push(
        parse_reference(f"{registry.host}/restart/model:v1"), [path], chunk_size=CHUNK
    )
    pause = asyncio.Event()

    def pause_after_three(event: Event) -> None:
        if isinstance(event, BlobEvent) and event.acknowledged >= 3 * CHUNK:
            pause.set()

    with pytest.raises(TransferPaused):
        await run_transfer(transfer, on_event=pause_after_three, pause=pause, journal=journal)

    new = make_file(tmp_path / "model.bin", 12 * CHUNK, seed=4)  # changed while paused
    resumed = Push.from_json(journal.load(transfer.id))
    with pytest.raises(FileChanged) as info:
        await run_transfer(resumed, journal=journal)
    assert "restart" in info.value.sentence()
    assert Push.from_json(journal.load(transfer.id)).state == TransferState.FAILED

    again = Push.from_json(journal.load(transfer.id))
    assert restart_changed_blobs(again) == ["model.bin"]
    digest = await run_transfer(again, journal=journal)
    layer = get_manifest(registry.url, "restart/model", "v1")["layers"][0]
    assert layer["digest"] == sha(new.read_bytes()) and layer["size"] == 12 * CHUNK
    assert digest.startswith("sha256:")


def test_cli_resume_restart_changed(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """The CLI's one action for it: `hoist resume ID --restart-changed`."""
    path = make_file(tmp_path / "data.bin", 6 * CHUNK, seed=5)
    transfer = plan_file_push(
        parse_reference(f"{registry.host}/restart/cli:v1"), [path], chunk_size=CHUNK
    )
    transfer.state = TransferState.PAUSED
    TransferJournal().save(transfer.id, transfer.to_json())
    make_file(tmp_path / "data.bin", 7 * CHUNK, seed=6)

    plain = hoist_cli("resume", transfer.id)
    assert plain.returncode == 1 and "--restart-changed" in plain.stderr
    fixed = hoist_cli("resume", transfer.id, "--restart-changed", "--progress", "json")
    assert fixed.returncode == 0, fixed.stderr
    assert "pushing its new content" in fixed.stderr
    done = [json.loads(line) for line in fixed.stderr.splitlines() if line.startswith("{")]
    assert done[-1]["state"] == "done"
