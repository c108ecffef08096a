"""A state folder that never crashes Hoist (issue 16 #12, #13): a bad journal entry is skipped
with a sentence naming the file and can be removed; a bad profiles.json costs re-learning, not
the push; a journal that can't be written says resume won't be possible and asks to go on."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from faults_helpers import MiB, make_file, sha
from pushing import ISOLATED_ENV, ROOT, get_blob, hoist_cli, push_paths
from support.proxy import ProxyFactory, html_error_page, match
from support.registry import RegistryProcess

from hoist.core.registry.profile import ProfileStore
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import TransferState
from hoist.core.transfer.queue import TransferQueue
from hoist.core.transfer.settings import apply_profile
from hoist.core.transfer.upload import UploadSettings

CLI_TIMEOUT = 60  # a FIFO read blindly would block until this ends the test


@pytest.fixture
def bad_entries(state_dir: Path) -> dict[str, Path]:
    """A valid-JSON entry that is not a transfer, a FIFO, and a file that is not JSON."""
    folder = state_dir / "transfers"
    folder.mkdir()
    entries = {
        "bare": folder / "bare.json",
        "fifo": folder / "fifo.json",
        "junk": folder / "junk.json",
    }
    entries["bare"].write_text('{"version":2}')
    os.mkfifo(entries["fifo"])
    entries["junk"].write_bytes(b"\x00\xffnot json")
    return entries


def test_cli_skips_bad_entries_and_cancel_removes_them(bad_entries: dict[str, Path]) -> None:
    listing = hoist_cli("transfers", "--json", timeout=CLI_TIMEOUT)
    assert listing.returncode == 0, listing.stderr
    rows = {row["id"]: row for row in json.loads(listing.stdout)}
    assert set(rows) == set(bad_entries)
    for name, path in bad_entries.items():
        assert rows[name]["state"] == "unreadable" and str(path) in rows[name]["error"]
    assert "'id' is missing" in rows["bare"]["error"]
    assert "not a regular file" in rows["fifo"]["error"]
    text = hoist_cli("transfers", timeout=CLI_TIMEOUT)
    assert text.returncode == 0 and str(bad_entries["bare"]) in text.stdout

    every = hoist_cli("resume", "--all", timeout=CLI_TIMEOUT)
    assert every.returncode == 0, every.stderr
    assert "Traceback" not in every.stderr
    for path in bad_entries.values():
        assert f"hoist: skipped: {path}" in every.stderr
    one = hoist_cli("resume", "bare", timeout=CLI_TIMEOUT)
    assert one.returncode == 1 and str(bad_entries["bare"]) in one.stderr
    assert "Traceback" not in one.stderr

    for name, path in bad_entries.items():
        cancel = hoist_cli("cancel", name, timeout=CLI_TIMEOUT)
        assert cancel.returncode == 0, cancel.stderr
        assert f"removed {path}" in cancel.stderr
        assert not os.path.lexists(path)
    assert list(bad_entries["bare"].parent.iterdir()) == []
    gone = hoist_cli("cancel", "bare")
    assert gone.returncode == 1 and "no transfer 'bare'" in gone.stderr


async def test_queue_loads_around_bad_entries(bad_entries: dict[str, Path]) -> None:
    """The window's start-up path: one sentence per bad entry, naming the file, and a failed
    row for each that never runs, is never written over, and Remove or Cancel deletes."""
    queue = TransferQueue(TransferJournal())
    try:
        problems = queue.load_journal(resume=True)
        assert len(problems) == 3
        for path in bad_entries.values():
            assert any(str(path) in p for p in problems), problems
        rows = {item.id: item for item in queue.items}
        assert set(rows) == set(bad_entries)
        for name, item in rows.items():
            assert item.unreadable and item.state == TransferState.FAILED
            assert item.transfer.name == f"{name}.json"
            assert item.status_text().startswith(f"failed: {bad_entries[name]}")
            assert not item.running
        queue.resume("bare")
        assert queue.retry("junk") == []
        assert not any(item.running for item in queue.items)
        await queue.flush()
        assert bad_entries["bare"].read_text() == '{"version":2}'  # never written over
        queue.remove("bare")
        await queue.cancel("fifo")
        await queue.flush()
        assert not os.path.lexists(bad_entries["bare"])
        assert not os.path.lexists(bad_entries["fifo"])
        assert [item.id for item in queue.items] == ["junk"]
    finally:
        await queue.aclose()
    assert bad_entries["junk"].read_bytes() == b"\x00\xffnot json"


@pytest.mark.parametrize(
    "content",
    ["{HOST: 'junk'}", "{HOST: {'max_chunk': 'big', 'chunked': 5}}", "[1, 2]", "not json", "dir"],
)
def test_bad_profiles_json_never_stops_a_push(
    registry: RegistryProcess, config_dir: Path, tmp_path: Path, content: str
) -> None:
    profiles = config_dir / "profiles.json"
    if content == "dir":
        profiles.mkdir()
    elif content == "not json":
        profiles.write_text("{not json")
    else:
        profiles.write_text(json.dumps(eval(content, {"HOST": registry.host})))
    path = make_file(tmp_path / "small.bin", 200_000, seed=16)
    ref = f"{registry.host}/state/profiles:v1"
    result = hoist_cli("push", ref, str(path), "--chunk-size", "64KiB", timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith(f"{ref.rsplit(':', 1)[0]}@sha256:")
    if content in ("[1, 2]", "not json", "dir"):
        assert f"ignoring {profiles}" in result.stderr


def test_push_with_a_full_state_folder_warns_and_goes_on(
    registry: RegistryProcess, full_state_dir: Path, tmp_path: Path
) -> None:
    """stdin is not a terminal: say the transfer can't be resumed, and push anyway."""
    path = make_file(tmp_path / "full.bin", MiB, seed=17)
    ref = f"{registry.host}/state/full:v1"
    result = hoist_cli("push", ref, str(path), "--chunk-size", "256KiB", timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "OSError" not in result.stderr
    assert "Hoist cannot save the state of transfer" in result.stderr
    assert "If this transfer is interrupted it cannot be resumed" in result.stderr
    assert "going on without resume" in result.stderr
    assert result.stdout.startswith(f"{registry.host}/state/full@sha256:")
    assert list((full_state_dir / "transfers").glob("*.json")) == []


def test_push_with_a_full_state_folder_asks_on_a_terminal(
    registry: RegistryProcess, full_state_dir: Path, tmp_path: Path
) -> None:
    """stdin is a terminal: ask; "n" stops before anything is sent, with the sentence."""
    path = make_file(tmp_path / "asked.bin", MiB, seed=18)
    ref = f"{registry.host}/state/asked:v1"
    main, tty = pty.openpty()
    try:
        os.write(main, b"n\n")
        result = subprocess.run(
            [sys.executable, "-m", "hoist.core", "push", ref, str(path), "--progress", "plain"],
            cwd=ROOT, env={**os.environ, **ISOLATED_ENV}, stdin=tty, capture_output=True,
            text=True, timeout=CLI_TIMEOUT,
        )  # fmt: skip
    finally:
        os.close(main)
        os.close(tty)
    assert result.returncode == 1, result.stderr
    assert "Go on without resume? [y/N]" in result.stderr
    assert "hoist: Hoist cannot save the state of transfer" in result.stderr
    assert "Traceback" not in result.stderr
    tags = httpx.get(f"{registry.url}/v2/state/asked/tags/list")
    assert tags.status_code == 404  # nothing was pushed


def test_folder_push_with_a_full_state_folder_is_a_sentence(
    registry: RegistryProcess, full_state_dir: Path, tmp_path: Path
) -> None:
    """A folder pushed `--pack` is packed into the state folder first (so a resume sends the
    same bytes); when that folder is full the push stops with a sentence, not an OSError.
    (Pushed as its files, the default, a folder needs no room there.)"""
    folder = tmp_path / "model"
    folder.mkdir()
    make_file(folder / "weights.bin", 300_000, seed=19)
    result = hoist_cli("push", f"{registry.host}/state/folder:v1", str(folder), "--pack")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"hoist: Hoist cannot pack {folder} in its state folder" in result.stderr
    assert list(full_state_dir.glob("staging/**/*.tar.gz")) == []  # no half-written tar


def test_profile_command_says_when_it_cannot_save(config_dir: Path) -> None:
    """Setting a registry's rate is the user's own request: if profiles.json can't be written
    it fails with a sentence (a push only warns: what it learns is a bonus)."""
    profiles = config_dir / "profiles.json"
    profiles.mkdir()
    result = hoist_cli("profile", "localhost:5000", "--limit-rate", "1MiB")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"hoist: Hoist cannot save the registry profiles in {profiles}" in result.stderr


async def test_a_lesson_that_cannot_be_saved_never_stops_a_push(
    registry: RegistryProcess,
    fault_proxy: ProxyFactory,
    config_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A proxy's 413 teaches a smaller chunk; profiles.json can't keep it (a folder stands
    there): the push lands all the same, and the warning says what was lost, once."""
    (config_dir / "profiles.json").mkdir()
    proxy = fault_proxy(registry)
    proxy.respond_instead(
        match("PATCH", min_content_length=1_500_000), 413,
        {"Content-Type": "text/html"}, html_error_page(413), times=None, before_body=True,
    )  # fmt: skip
    path = make_file(tmp_path / "taught.bin", 5 * MiB, seed=20)
    # Sized chunks: the proxy's body limit applies to a Content-Length (a stream passes it).
    settings = apply_profile(UploadSettings(streamed=False), proxy.host, ProfileStore())
    await push_paths(proxy.host, "state/taught:v1", [path], chunk_size=4 * MiB, settings=settings)
    assert get_blob(registry.url, "state/taught", sha(path.read_bytes())) == path.read_bytes()
    assert any(r.status == 413 for r in proxy.requests)
    lost = [r.getMessage() for r in caplog.records if "cannot save the registry" in r.getMessage()]
    assert len(lost) == 1, caplog.text
