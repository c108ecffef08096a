"""The window against a real registry: drops, the add sheet, pause/resume, restarts, errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pushing import get_manifest, hoist_cli, push_paths
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRect, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent, QScreen
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget
from pytestqt.qtbot import QtBot
from support.registry import RegistryProcess, free_port

from hoist.core import __version__
from hoist.core.cli.connect import settings_for_args as cli_settings
from hoist.core.cli.parser import build_parser
from hoist.core.errors import HoistError
from hoist.core.oci.reference import parse_reference
from hoist.core.registry.auth import Credentials
from hoist.core.registry.demo_registry import DemoRegistry
from hoist.core.registry.profile import ProfileStore
from hoist.core.transfer import fetch
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import Download, TransferState, transfer_from_json
from hoist.core.transfer.push import plan_file_push
from hoist.core.transfer.queue import TransferItem
from hoist.core.transfer.settings import SPLIT_THRESHOLD
from hoist.core.transfer.upload import UploadSettings
from hoist.core.units import MiB
from hoist.gui.add.planning import CredentialCache, suggest_repository, suggest_tag
from hoist.gui.add.sheet import AddSheet, split_image_name
from hoist.gui.app import error_sentence, install_excepthook, shutdown, start
from hoist.gui.context import AppContext
from hoist.gui.help_dialogs import MessageDialog
from hoist.gui.main_window import MainWindow
from hoist.gui.settings.store import RegistrySettings, Settings, SettingsStore
from hoist.gui.transfers.rows import Column

OpenWindow = Callable[..., tuple[MainWindow, AppContext]]


@pytest.fixture
def open_window(
    qtbot: QtBot, loop: asyncio.AbstractEventLoop, state_dir: Path, registry: RegistryProcess
) -> Iterator[OpenWindow]:
    """`open_window(registries=True)` → a shown MainWindow over a fresh AppContext.

    Every context reads the same state and config folders, so a second call is a restart.
    """
    opened: list[tuple[MainWindow, AppContext]] = []

    def make(*, registries: bool = True) -> tuple[MainWindow, AppContext]:
        ctx = AppContext.create()
        if registries and ctx.settings.registry("Test registry") is None:
            ctx.settings.registries.append(
                RegistrySettings("Test registry", f"http://{registry.host}")
            )
            ctx.settings.selected_registry = "Test registry"
        window = MainWindow(ctx)
        window.show()
        opened.append((window, ctx))
        return window, ctx

    yield make
    for window, ctx in opened:
        window.close()  # (again, for a window a test closed already: harmless)
        loop.run_until_complete(window.aclose())
        loop.run_until_complete(shutdown(ctx))
        window.deleteLater()
    loop.run_until_complete(asyncio.sleep(0))  # deleteLater runs in the loop


def drop(widget: Any, paths: list[Path]) -> None:
    """A real drag-enter and drop of file URLs, as a file manager sends them.

    (Qt delivers a drop only to the widget that accepted the drag's enter event.)
    """
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    center = QPointF(widget.rect().center())
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)  # fmt: skip
    try:  # PySide 6.12 takes a QPointF (its QPoint form is deprecated); 6.11 only a QPoint
        enter = QDragEnterEvent(center, *args)
    except TypeError:
        enter = QDragEnterEvent(center.toPoint(), *args)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the window accepts file drags"
    event = QDropEvent(center, *args)
    QApplication.sendEvent(widget, event)
    assert event.isAccepted()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def cell(window: MainWindow, item: TransferItem, column: Column) -> str:
    model = window.model
    index = model.index_of(item.id).siblingAtColumn(column)
    return str(model.data(index, Qt.ItemDataRole.DisplayRole))


async def fill_and_push(aio: Any, sheet: AddSheet, repository: str, tag: str) -> None:
    sheet.repository.setText(repository)
    sheet.tag.setText(tag)
    sheet.push_button.click()
    await aio.until(lambda: sheet.item is not None or sheet.message.isVisible(), 30, "queueing")
    assert sheet.item is not None, sheet.message.text()


async def slow_transfer(
    window: MainWindow, ctx: AppContext, path: Path, repository: str
) -> TransferItem:
    """Queue a push slowed by the window's own rate limit (1 MiB chunks at 2 MiB/s)."""
    ctx.settings.chunk_size = 1 * MiB
    window.rate_box.setValue(2.0)
    host = ctx.settings.registries[0].host
    transfer = plan_file_push(parse_reference(f"{host}/{repository}:v1"), [path])
    return ctx.queue.add(transfer)


# -- pushing by dropping -----------------------------------------------------------------------


def test_drop_file_pushes_to_registry(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB + 17)
    path = tmp_path / "dropped.bin"
    path.write_bytes(data)
    window, ctx = open_window()

    async def scenario() -> TransferItem:
        await start(ctx, window)
        drop(window, [path])
        await aio.until(lambda: window.add_sheet is not None, 10, "the add sheet")
        sheet = window.add_sheet
        assert sheet is not None and not sheet.is_image
        assert "dropped.bin (3 MiB)" in sheet.summary.text()
        await fill_and_push(aio, sheet, "gui/dropped", "v1")
        assert sheet.item is not None
        item = sheet.item
        await aio.until(lambda: item.state == TransferState.DONE, 60, "the push")
        await aio.until(lambda: cell(window, item, Column.STATUS) == "Done", 5, "the repaint")
        # "Show in Browse" opens the pushed tag in the Browse area.
        window.view.select_transfer(item.id)
        await aio.until(lambda: window.view.qactions["browse"].isEnabled(), 2)
        window.view.qactions["browse"].trigger()
        assert window.tabs.currentWidget() is window.browse
        pane: Any = window.browse
        await aio.until(lambda: pane.selected_tags() == ["v1"], 20, "the tag in Browse")
        assert pane.repository == "gui/dropped"
        return item

    item = aio.run(scenario())
    manifest = get_manifest(registry.url, "gui/dropped", "v1")
    layer = manifest["layers"][0]
    assert layer["digest"] == sha256(data)
    assert layer["annotations"]["org.opencontainers.image.title"] == "dropped.bin"
    assert cell(window, item, Column.PROGRESS) == "3 MiB / 3 MiB (100%)"
    # The sheet remembered the repository and tag for this registry, on disk too.
    saved = json.loads((SettingsStore().path).read_text())
    assert saved["registries"][0]["last_repository"] == "gui/dropped"
    assert saved["registries"][0]["last_tag"] == "v1"


def test_drop_folder_shows_its_files_and_pushes_them_as_files(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_bytes(b"{}" * 512)
    (folder / "sub" / "weights.bin").write_bytes(os.urandom(2 * MiB))  # not bundled: 2 MiB
    window, ctx = open_window()

    async def scenario() -> TransferItem:
        await start(ctx, window)
        drop(window, [folder])
        await aio.until(lambda: window.add_sheet is not None, 10, "the add sheet")
        sheet = window.add_sheet
        assert sheet is not None and not sheet.is_image
        expected = "model/ (folder: 2 files, 2 MiB)"
        await aio.until(lambda: expected in sheet.summary.text(), 10, "the folder counted")
        await fill_and_push(aio, sheet, "gui/folder", "v1")
        assert sheet.item is not None
        item = sheet.item
        await aio.until(lambda: item.state == TransferState.DONE, 60, "the push")
        return item

    item = aio.run(scenario())
    assert sorted(b.name for b in item.transfer.blobs) == [
        "model/config.json",
        "model/sub/weights.bin",
    ]
    manifest = get_manifest(registry.url, "gui/folder", "v1")
    titles = sorted(x["annotations"]["org.opencontainers.image.title"] for x in manifest["layers"])
    assert titles == ["model/config.json", "model/sub/weights.bin"]


def test_image_push_shows_one_row_per_layer(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    from support.images import write_oci_layout

    layout = write_oci_layout(tmp_path / "layout", tag="1.0")
    window, ctx = open_window()

    async def scenario() -> TransferItem:
        await start(ctx, window)
        drop(window, [layout.path])
        await aio.until(lambda: window.add_sheet is not None, 10, "the add sheet")
        sheet = window.add_sheet
        assert sheet is not None and sheet.is_image
        assert sheet.summary.text() == "Push this image:\nlayout/ (OCI image layout)"
        await aio.until(lambda: sheet.image_tag.currentData() == "1.0", 10, "the image list")
        assert sheet.platform.itemText(0) == "All platforms"
        assert sheet.platform.count() == 2  # all, and the one linux/amd64 image
        await fill_and_push(aio, sheet, "gui/image", "v1")
        assert sheet.item is not None
        item = sheet.item
        await aio.until(lambda: item.state == TransferState.DONE, 60, "the image push")
        return item

    item = aio.run(scenario())
    model = window.model
    parent = model.index_of(item.id)
    image = layout.images[0]
    assert model.rowCount(parent) == 1 + len(image.layer_digests)
    names = [model.data(model.index(r, Column.NAME, parent)) for r in range(model.rowCount(parent))]
    assert sorted(names) == ["config", "layer 1", "layer 2"]
    states = {model.data(model.index(r, Column.STATUS, parent)) for r in range(len(names))}
    assert states <= {"Done", "Already in the registry"}
    response = httpx.head(
        f"{registry.url}/v2/gui/image/manifests/v1",
        headers={"Accept": image.media_type},
    )
    assert response.headers["Docker-Content-Digest"] == layout.top_digest


# -- pause, resume, restart ----------------------------------------------------------------


def test_pause_and_resume_from_view_actions(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    data = os.urandom(6 * MiB)
    path = tmp_path / "slow.bin"
    path.write_bytes(data)
    window, ctx = open_window()
    view = window.view

    async def scenario() -> None:
        await start(ctx, window)
        item = await slow_transfer(window, ctx, path, "gui/pausing")
        await aio.until(lambda: item.acknowledged >= MiB, 20, "the first chunk")
        view.select_transfer(item.id)
        assert view.qactions["pause"].isEnabled()
        assert not view.qactions["resume"].isEnabled()
        view.qactions["pause"].trigger()
        await aio.until(lambda: item.state == TransferState.PAUSED and not item.running, 20)
        held = item.acknowledged
        assert 0 < held < item.total
        await asyncio.sleep(0.5)  # watching that nothing happens: no event to wait for
        assert item.acknowledged == held, "nothing is sent while paused"
        window.model.flush()
        assert cell(window, item, Column.STATUS) == "Paused"
        assert view.qactions["resume"].isEnabled()
        assert window.resume_all_action.isEnabled()
        window.rate_box.setValue(0)  # lift the limit while the transfer exists
        view.qactions["resume"].trigger()
        await aio.until(lambda: item.state == TransferState.DONE, 30, "the resumed push")

    aio.run(scenario())
    manifest = get_manifest(registry.url, "gui/pausing", "v1")
    assert manifest["layers"][0]["digest"] == sha256(data)


@pytest.mark.parametrize(
    ("how", "resume_on_start"),
    [("paused by the user", True), ("interrupted by quitting", False),
     ("interrupted by quitting", True)],
)  # fmt: skip
def test_restart_continues_a_transfer(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path,
    how: str, resume_on_start: bool,
) -> None:  # fmt: skip
    """A new window and queue on the same state folder pick the transfer up where it was.

    A transfer the user paused comes back paused (even with "resume on start-up"); one that was
    uploading when Hoist quit resumes by itself when the setting is on, else waits paused.
    """
    data = os.urandom(6 * MiB)
    path = tmp_path / "restart.bin"
    path.write_bytes(data)
    repository = f"gui/restart-{how.split()[0]}-{'on' if resume_on_start else 'off'}"
    first, ctx = open_window()

    async def before_restart() -> tuple[str, int]:
        await start(ctx, first)
        item = await slow_transfer(first, ctx, path, repository)
        await aio.until(lambda: item.acknowledged >= MiB, 20, "the first chunk")
        if how == "paused by the user":
            first.view.select_transfer(item.id)
            first.view.qactions["pause"].trigger()
            await aio.until(lambda: item.state == TransferState.PAUSED and not item.running, 20)
        ctx.settings.resume_on_start = resume_on_start
        ctx.settings.rate_limit = 0
        first.close()  # as hoist.gui.app.run does when the window closes
        await first.aclose()
        await shutdown(ctx)
        return item.id, item.transfer.acknowledged

    transfer_id, held = aio.run(before_restart())
    assert 0 < held < len(data)

    window, ctx2 = open_window()
    assert ctx2 is not ctx and ctx2.settings.resume_on_start == resume_on_start
    resumes_alone = resume_on_start and how == "interrupted by quitting"

    async def after_restart() -> None:
        await start(ctx2, window)
        item = ctx2.queue.get(transfer_id)
        assert item.transfer.acknowledged == held, "the journal kept what the registry holds"
        if not resumes_alone:
            assert item.state == TransferState.PAUSED
            window.model.flush()
            assert cell(window, item, Column.STATUS) == "Paused"
            assert cell(window, item, Column.PROGRESS).endswith(f"({100 * held // len(data)}%)")
            window.view.select_transfer(item.id)
            window.view.qactions["resume"].trigger()
        await aio.until(lambda: item.state == TransferState.DONE, 30, "the push after restart")

    aio.run(after_restart())
    assert get_manifest(registry.url, repository, "v1")["layers"][0]["digest"] == sha256(data)


def test_download_from_browse_runs_in_the_queue_and_survives_a_restart(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path,
    qtmodeltester: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Browse → Download: a row in Transfers with a child per file; paused there, it is
    listed paused after a restart, resumes from its `.partial` file and ends verified."""
    monkeypatch.setattr(fetch, "PROGRESS_INTERVAL", 0.0)  # an event per MiB: pause early
    big = tmp_path / "src" / "weights.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(64 * MiB + 5))
    small = tmp_path / "src" / "README.md"
    small.write_bytes(b"# a model\n")
    folder = tmp_path / "downloads"
    repository = "gui/download"
    first, ctx = open_window()

    async def before_restart() -> tuple[str, int]:
        digest, _ = await push_paths(registry.host, f"{repository}:v1", [small, big])
        await start(ctx, first)
        pane: Any = first.browse

        async def choose(caption: str) -> Path:
            return folder

        pane.choose_folder = choose
        first.show_in_browse(parse_reference(f"{registry.host}/{repository}:v1"))
        await aio.until(lambda: pane.detail_model.info is not None, 20, "the details")

        def pause_midway(kind: str, item: TransferItem) -> None:
            # Pause from the view's own action once a few MiB are on disk.
            running = item.state == TransferState.RUNNING and not item.pause_event.is_set()
            if running and item.acknowledged >= 4 * MiB:
                first.view.select_transfer(item.id)
                first.view.refresh_actions()
                first.view.qactions["pause"].trigger()

        ctx.queue.listeners.append(pause_midway)
        pane.qactions["download"].trigger()
        await aio.until(lambda: ctx.queue.items, 10, "the download in the queue")
        [item] = ctx.queue.items
        assert isinstance(item.transfer, Download) and str(item.transfer.source).endswith(digest)
        await aio.until(lambda: item.state == TransferState.PAUSED and not item.running, 30)
        first.model.flush()
        qtmodeltester.check(first.model)
        assert cell(first, item, Column.NAME) == "download:v1"
        assert cell(first, item, Column.TARGET) == str(folder)
        assert cell(first, item, Column.STATUS) == "Paused"
        row = first.model.index_of(item.id)
        assert first.model.rowCount(row) == 2  # a child row per file
        model = first.model
        children = {
            model.index(r, Column.NAME, row).data(): model.index(r, Column.STATUS, row).data()
            for r in range(2)
        }
        assert children["weights.bin"].startswith("Paused at ")
        # Only a download has a folder to open; the view offers it for this one.
        first.view.refresh_actions()
        assert first.view.qactions["open_folder"].isVisible()
        assert first.view.qactions["open_folder"].isEnabled()
        first.close()
        await first.aclose()
        await shutdown(ctx)
        return item.id, item.acknowledged

    transfer_id, held = aio.run(before_restart())
    partial = folder / "weights.bin.partial"
    assert 4 * MiB <= held <= partial.stat().st_size + len(b"# a model\n")
    assert partial.stat().st_size < big.stat().st_size

    window, ctx2 = open_window()
    opened: list[str] = []
    window.controller.open_folder_cb = opened.append

    async def after_restart() -> None:
        await start(ctx2, window)
        item = ctx2.queue.get(transfer_id)
        assert item.state == TransferState.PAUSED and isinstance(item.transfer, Download)
        window.model.flush()
        assert cell(window, item, Column.STATUS) == "Paused"
        assert cell(window, item, Column.PROGRESS).endswith(f"({100 * held // item.total}%)")
        window.view.select_transfer(item.id)
        window.view.qactions["resume"].trigger()
        await aio.until(lambda: item.state == TransferState.DONE, 60, "the download")
        await aio.until(lambda: cell(window, item, Column.STATUS) == "Done", 5, "the repaint")
        window.view.refresh_actions()
        window.view.qactions["open_folder"].trigger()

    aio.run(after_restart())
    assert (folder / "weights.bin").read_bytes() == big.read_bytes()
    assert (folder / "README.md").read_bytes() == small.read_bytes()
    assert not partial.exists()
    assert opened == [str(folder)]


# -- the add sheet's checks ------------------------------------------------------------------


def test_existing_tag_asks_before_overwriting(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    old = tmp_path / "old.txt"
    old.write_bytes(b"old content\n")
    new = tmp_path / "new.txt"
    new.write_bytes(b"new content\n")
    window, ctx = open_window()

    async def scenario() -> None:
        await push_paths(registry.host, "gui/exists:v1", [old])
        await start(ctx, window)
        sheet = await window.open_add_sheet([new])
        sheet.repository.setText("gui/exists")
        sheet.tag.setText("v1")
        sheet.push_button.click()
        await aio.until(lambda: sheet.exists_box.isVisible(), 20, "the tag-exists warning")
        assert "gui/exists:v1 already exists" in sheet.exists_label.text()
        assert sheet.item is None, "nothing is queued before the user decides"
        sheet.other_tag_button.click()
        assert not sheet.exists_box.isVisible() and sheet.tag.hasFocus()
        sheet.push_button.click()
        await aio.until(lambda: sheet.exists_box.isVisible(), 20, "the warning again")
        sheet.overwrite_button.click()
        await aio.until(lambda: sheet.item is not None, 20, "queueing")
        assert sheet.item is not None
        item = sheet.item
        await aio.until(lambda: item.state == TransferState.DONE, 30)

    aio.run(scenario())
    layer = get_manifest(registry.url, "gui/exists", "v1")["layers"][0]
    assert layer["annotations"]["org.opencontainers.image.title"] == "new.txt"


def test_unreachable_registry_is_a_sentence_in_the_sheet(
    aio: Any, open_window: OpenWindow, tmp_path: Path
) -> None:
    path = tmp_path / "file.txt"
    path.write_text("hello\n")
    window, ctx = open_window()
    port = free_port()
    ctx.settings.registries.append(RegistrySettings("Gone", f"http://127.0.0.1:{port}"))

    async def scenario() -> AddSheet:
        sheet = await window.open_add_sheet([path])
        sheet.registry.setCurrentIndex(sheet.registry.findData("Gone"))
        await fill_and_push_expecting_error(aio, sheet)
        return sheet

    sheet = aio.run(scenario())
    text = sheet.message.text()
    # Refused: the network works, the registry is not answering (not "check the network").
    assert f"127.0.0.1:{port} refused the connection" in text
    assert "The registry is not answering: check that the registry is running" in text
    assert "network" not in text
    assert "Traceback" not in text and 'File "' not in text
    assert sheet.item is None and not ctx.queue.items
    assert sheet.push_button.isEnabled(), "the busy state is reset after the error"


async def fill_and_push_expecting_error(aio: Any, sheet: AddSheet) -> None:
    sheet.repository.setText("gui/nowhere")
    sheet.push_button.click()
    await aio.until(lambda: sheet.message.isVisible(), 30, "the error message")
    await aio.until(lambda: sheet._task is None, 5, "the push task to end")


def test_failed_transfer_reads_as_a_sentence(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    path = tmp_path / "changing.bin"
    path.write_bytes(os.urandom(4 * MiB))
    window, ctx = open_window()
    view = window.view

    async def scenario() -> TransferItem:
        await start(ctx, window)
        item = await slow_transfer(window, ctx, path, "gui/changed")
        await aio.until(lambda: item.acknowledged >= MiB, 20, "the first chunk")
        view.select_transfer(item.id)
        view.qactions["pause"].trigger()
        await aio.until(lambda: item.state == TransferState.PAUSED and not item.running, 20)
        path.write_bytes(os.urandom(4 * MiB + 1))  # the file changes while paused
        await aio.until(lambda: view.qactions["resume"].isEnabled(), 2, "the action to follow")
        view.qactions["resume"].trigger()
        await aio.until(lambda: item.state == TransferState.FAILED and not item.running, 20)
        window.model.flush()
        return item

    item = aio.run(scenario())
    status = cell(window, item, Column.STATUS)
    assert status.startswith(f"Failed: {path} changed size ({4 * MiB} → {4 * MiB + 1} bytes).")
    # In the window's words: Retry, never a command to run.
    assert status.endswith("The file changed since the upload began; Retry pushes its new content.")
    assert "hoist" not in status
    assert "Traceback" not in status
    assert view.qactions["retry"].isEnabled() and not view.qactions["resume"].isEnabled()
    window.filter_bar.setCurrentIndex(3)
    assert window.filter_bar.tabText(3) == "Failed (1)"
    assert view.proxy.rowCount() == 1


def test_unexpected_errors_are_shown_without_traceback(
    qtbot: QtBot, open_window: OpenWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    window, _ctx = open_window()
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    install_excepthook(lambda: window)
    try:
        raise ValueError("boom\nsecond line")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert window.message_bar.isVisible(), "the message is shown in the window"
    text = window.message_label.text()
    assert text.startswith("Something went wrong inside Hoist (ValueError: boom).")
    assert "Traceback" not in text and "second line" not in text
    assert "hoist-gui.log" in text
    assert error_sentence(HoistError("the disk is full", hint="Free some space")) == (
        "the disk is full. Free some space."
    )
    window.dismiss_error()
    assert not window.message_bar.isVisible()
    # Before the window exists, a dialog says it.
    install_excepthook(lambda: None)
    try:
        raise HoistError("the journal folder is read-only", hint="Check its permissions")
    except HoistError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, MessageDialog)]
    assert [d.text() for d in dialogs if d.isVisible()] == [
        "the journal folder is read-only. Check its permissions."
    ]
    for dialog in dialogs:
        dialog.close()


# -- the window's other parts --------------------------------------------------------------


def test_rate_limit_box_sets_the_limiter(open_window: OpenWindow, aio: Any) -> None:
    window, ctx = open_window()
    path = SettingsStore().path
    before = path.stat().st_mtime_ns if path.exists() else None
    window.rate_box.setValue(5.0)
    assert ctx.queue.limiter.rate == 5 * MiB
    assert ctx.settings.rate_limit == 5 * MiB
    assert "limited to 5 MiB/s" in window.totals_label.text()
    window.rate_box.setValue(0.5)
    assert ctx.queue.limiter.rate == MiB // 2
    window.rate_box.setValue(0)
    assert ctx.queue.limiter.rate == 0
    assert window.rate_box.text() == "No limit"
    # The save is debounced: one write, once the box stopped changing.
    aio.run(aio.until(lambda: path.exists() and path.stat().st_mtime_ns != before, 10, "save"))
    assert json.loads(path.read_text())["rate_limit"] == 0


def test_settings_dialog_applies_at_once(open_window: OpenWindow, aio: Any) -> None:
    window, ctx = open_window()

    async def scenario() -> None:
        window.open_settings()
        dialog = window.settings_dialog
        assert dialog is not None
        dialog.max_active.setValue(3)
        dialog.parallel.setValue(5)  # not the default (4): the dialog must have saved it
        dialog.rate.setValue(1.5)
        dialog.chunk.setEditText("16 MiB")
        dialog.resume.setChecked(True)
        assert dialog.ask_quit.isChecked()
        dialog.ask_quit.setChecked(False)
        dialog.accept()
        await aio.until(lambda: window.settings_dialog is None, 5, "the dialog to close")
        await aio.until(lambda: not window.tasks, 10, "the settings written")

    aio.run(scenario())
    assert ctx.queue.max_active == 3
    assert ctx.queue.limiter.rate == round(1.5 * MiB)
    assert window.rate_box.value() == 1.5
    settings, problem = SettingsStore().load()
    assert problem is None
    assert (settings.chunk_size, settings.parallel_blobs) == (16 * MiB, 5)
    assert settings.resume_on_start and settings.registries[0].name == "Test registry"
    assert not settings.ask_before_quit
    assert ctx.settings.upload_settings("localhost:5000").chunk_size == 16 * MiB


def test_settings_dialog_refuses_a_bad_chunk_size(qtbot: QtBot) -> None:
    from hoist.gui.settings.dialog import SettingsDialog

    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    dialog.chunk.setEditText("12 bananas")
    dialog.accept()
    assert dialog.error.isVisibleTo(dialog)
    assert "is not a size" in dialog.error.text()
    assert dialog.result() == 0


def test_demo_registry_offered_when_none_configured(
    aio: Any, open_window: OpenWindow, tmp_path: Path
) -> None:
    if not DemoRegistry.available():
        pytest.skip("docker-registry is not installed")
    window, ctx = open_window(registries=False)
    assert window.banner.isVisible() and window.banner.demo_button.isVisible()
    assert window.registry_combo.currentText() == "No registry"

    async def scenario() -> RegistrySettings:
        window.banner.demo_button.click()
        await aio.until(lambda: bool(ctx.settings.registries), 20, "the demo registry")
        await aio.until(lambda: not window.banner.isVisible(), 5)
        await window.browse.wait_connected()  # the Browse area follows the new registry
        return ctx.settings.registries[0]

    reg = aio.run(scenario())
    assert reg.name == "Local registry" and reg.demo
    assert ctx.demo is not None and ctx.demo.running
    assert ctx.demo.storage.is_relative_to(tmp_path / "data")
    assert httpx.get(f"{reg.url}/v2/").status_code == 200
    assert window.registry_combo.currentData() == "Local registry"
    demo = ctx.demo
    aio.run(shutdown(ctx))
    assert not demo.running, "quitting stops the demo registry"


def test_without_the_registry_program_the_banner_explains(
    open_window: OpenWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DemoRegistry, "available", staticmethod(lambda *a: False))
    window, _ctx = open_window(registries=False)
    assert window.banner.isVisible() and not window.banner.demo_button.isVisible()
    assert "Settings → Registries" in window.banner.label.text()


def test_window_areas_menus_and_about(qtbot: QtBot, open_window: OpenWindow) -> None:
    window, _ctx = open_window()
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Transfers", "Browse"]
    menus = [a.text() for a in window.menuBar().actions()]
    assert menus == ["&File", "&Transfers", "&Help"]
    toolbar = [a.text().replace("&", "") for a in window.toolbar.actions() if a.text()]
    for label in ("Add files…", "Add image…", "Pause all", "Resume all", "Settings…"):
        assert label in toolbar
    assert window.registry_combo.currentText().startswith("Test registry — ")
    assert window.empty_hint.isVisible()
    window.about_action.trigger()
    box = next(b for b in window.findChildren(MessageDialog) if b.isVisible())
    assert __version__ in box.text()
    box.close()


def test_settings_file_round_trip_and_damage(state_dir: Path) -> None:
    store = SettingsStore()
    settings = Settings(rate_limit=3 * MiB, resume_on_start=True)
    settings.registries.append(RegistrySettings("GHCR", "ghcr.io", username="me"))
    settings.extra["from_a_newer_hoist"] = {"kept": True}
    store.save(settings)
    doc = json.loads(store.path.read_text())
    assert "password" not in json.dumps(doc)
    loaded, problem = store.load()
    assert problem is None
    assert loaded.registries[0].host == "ghcr.io" and loaded.registries[0].plain_http is None
    assert loaded.rate_limit == 3 * MiB and loaded.extra == {"from_a_newer_hoist": {"kept": True}}
    store.path.write_text("{not json")
    fallback, problem = store.load()
    assert fallback == Settings()
    assert problem is not None and "is not valid settings JSON" in problem
    assert problem.endswith("fix or delete the file to get yours back.")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1.0", ("", "1.0")),
        ("busybox:latest", ("busybox", "latest")),
        ("ghcr.io/team/tool:2", ("tool", "2")),
        ("localhost:5000/app", ("app", "")),
        ("", ("", "")),
    ],
)
def test_image_names_suggest_repository_and_tag(name: str, expected: tuple[str, str]) -> None:
    assert split_image_name(name) == expected


@pytest.mark.parametrize(
    ("file", "repository"),
    [("My Model.bin", "my-model"), ("ubuntu.tar", "ubuntu"), ("data.tar.gz", "data"),
     ("___", "files"), ("weights--v2..final.safetensors", "weights-v2-final")],
)  # fmt: skip
def test_repository_suggested_from_a_file_name(file: str, repository: str) -> None:
    assert suggest_repository(Path(file)) == repository


def test_login_states_read_as_words() -> None:
    cache = CredentialCache()
    anonymous = RegistrySettings("Local", "http://127.0.0.1:5000")
    named = RegistrySettings("GHCR", "ghcr.io", username="me")
    assert cache.login_state(anonymous) == "anonymous"
    assert cache.login_state(named) == "me: checking…"
    cache.remember("ghcr.io", Credentials("me", "secret"))
    assert cache.login_state(named) == "signed in as me"
    assert cache.login_state(RegistrySettings("Bad", "http://exa mple")) == "invalid address"


# -- quitting with work in flight ----------------------------------------------------------


def resent_bytes(ctx: AppContext) -> list[int]:
    """Listens to the queue: every blob event's count of bytes sent again by its run, and -1
    for each "starting this blob again" (an upload session the registry dropped)."""
    resent: list[int] = []

    def listener(_kind: str, item: TransferItem) -> None:
        for event in item.blobs.values():
            resent.append(-1 if "again from the beginning" in event.message else event.resent)

    ctx.queue.listeners.append(listener)
    return resent


def test_quit_with_a_push_running_asks_then_pauses_it_losing_nothing(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    """Quit used to stop the push in the middle of its chunk: distribution 2.8 then dropped
    the session and the resume sent everything again. Now Quit asks (pause everything and
    quit / keep running / cancel, "Don't ask again" kept in the settings); pausing lets the
    chunk in flight end and journals it, and the resume sends only what was not sent."""
    data = os.urandom(8 * MiB)
    path = tmp_path / "quit.bin"
    path.write_bytes(data)
    first, ctx = open_window()

    async def before_quitting() -> tuple[str, int]:
        await start(ctx, first)
        item = await slow_transfer(first, ctx, path, "gui/quit")
        await aio.until(lambda: item.acknowledged >= MiB, 20, "the first chunk")
        asked: list[Any] = []
        first.quit_asked.connect(asked.append)
        quits: list[bool] = []
        first.closing.connect(lambda: quits.append(True))

        await aio.until(lambda: item.sent - item.acknowledged >= MiB // 4, 20, "a chunk in flight")
        first.quit_action.trigger()
        [dialog] = asked
        assert dialog.isVisible() and first.isVisible()
        buttons = (dialog.pause_button, dialog.keep_button, dialog.cancel_button)
        assert [b.text() for b in buttons] == [
            "Pause everything and quit",
            "Keep running",
            "Cancel",
        ]
        assert "1 transfer is still running" in dialog.text_label.text()
        dialog.cancel_button.click()
        assert first.isVisible() and not quits and item.running, "Cancel: nothing changes"

        first.close()
        asked[-1].keep_button.click()
        assert not quits and item.running, "Keep running: the push goes on"
        assert first.isMinimized() or not first.isVisible()
        first.showNormal()

        first.close()
        dialog = asked[-1]
        assert len(asked) == 3
        dialog.dont_ask_box.setChecked(True)
        await aio.until(lambda: item.sent - item.acknowledged >= MiB // 4, 20, "a chunk in flight")
        dialog.pause_button.click()
        assert quits == [True]
        await first.aclose()  # as hoist.gui.app.run does once the window closed
        await shutdown(ctx)  # pauses: the chunk in flight ends, its 202 is journaled
        assert not item.running
        return item.id, item.transfer.acknowledged

    transfer_id, held = aio.run(before_quitting())
    assert 0 < held < len(data)
    saved = TransferJournal().load(transfer_id)
    assert saved["blobs"][0]["acknowledged"] == held and saved["blobs"][0]["location"]
    assert saved["state"] == "queued", "interrupted by quitting: resumed on start-up if asked"
    assert json.loads(SettingsStore().path.read_text())["ask_before_quit"] is False

    window, ctx2 = open_window()
    assert not ctx2.settings.ask_before_quit
    resent = resent_bytes(ctx2)

    async def after_restart() -> None:
        await start(ctx2, window)
        item = ctx2.queue.get(transfer_id)
        assert item.state == TransferState.PAUSED
        assert item.transfer.acknowledged == held
        ctx2.queue.resume(item.id)
        await aio.until(lambda: item.state == TransferState.DONE, 30, "the resumed push")

    aio.run(after_restart())
    assert resent and max(resent) == 0 and min(resent) == 0, "nothing was sent twice"
    assert get_manifest(registry.url, "gui/quit", "v1")["layers"][0]["digest"] == sha256(data)


def test_the_end_of_the_session_pauses_without_asking(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    """Logout (commitDataRequest) or SIGTERM: no question, the push is paused and kept."""
    path = tmp_path / "session.bin"
    path.write_bytes(os.urandom(6 * MiB))
    window, ctx = open_window()

    async def scenario() -> TransferItem:
        await start(ctx, window)
        item = await slow_transfer(window, ctx, path, "gui/session")
        await aio.until(lambda: item.acknowledged >= MiB, 20, "the first chunk")
        asked: list[Any] = []
        window.quit_asked.connect(asked.append)
        quits: list[bool] = []
        window.closing.connect(lambda: quits.append(True))
        window.end_session()
        assert quits == [True] and not asked and not window.isVisible()
        await window.aclose()
        await shutdown(ctx)
        return item

    item = aio.run(scenario())
    saved = TransferJournal().load(item.id)
    assert 0 < saved["blobs"][0]["acknowledged"] < 6 * MiB
    # Ended at the registry's answer: it holds exactly what the journal says (a stream ends at
    # any byte; a cut chunk would leave distribution 2.8 with a session it cancels).
    status = httpx.get(saved["blobs"][0]["location"])
    assert status.status_code == 204, "ended at the registry's answer"
    assert status.headers["Range"] == f"0-{saved['blobs'][0]['acknowledged'] - 1}"


def test_sigterm_to_the_window_process_pauses_its_push_and_keeps_the_acknowledged_bytes(
    registry: RegistryProcess, fault_proxy: Any, state_dir: Path, tmp_path: Path
) -> None:
    """`hoist-gui` (offscreen) pushing through its 2 MiB/s limit gets SIGTERM (a logout, a
    `kill`) in the middle of a chunk: it pauses the push without asking, journals what the
    registry acknowledged, and exits 0; `hoist resume` then sends only the rest (it used
    to be killed mid-PATCH, and distribution 2.8 then dropped the whole session)."""
    proxy = fault_proxy(registry)  # counts the bytes that go to the registry
    data = os.urandom(8 * MiB)
    path = tmp_path / "term.bin"
    path.write_bytes(data)
    settings = Settings(rate_limit=2 * MiB, resume_on_start=True)
    settings.registries.append(RegistrySettings("Test registry", f"http://{proxy.host}"))
    settings.selected_registry = "Test registry"
    SettingsStore().save(settings)
    target = parse_reference(f"{proxy.host}/gui/sigterm:v1")
    transfer = plan_file_push(target, [path], chunk_size=MiB)
    journal = TransferJournal()
    journal.save(transfer.id, transfer.to_json())  # queued: resumed when the window starts

    gui = Path(sys.executable).with_name("hoist-gui")
    command = [str(gui)] if gui.exists() else [sys.executable, "-m", "hoist.gui.app"]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    process = subprocess.Popen(
        command, env=env, cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60

        def in_flight() -> int:  # bytes of the chunk being sent, beyond the acknowledged
            return proxy.bytes_up - journal.load(transfer.id)["blobs"][0]["acknowledged"]

        while journal.load(transfer.id)["blobs"][0]["acknowledged"] < MiB or in_flight() < (
            MiB // 4
        ):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the window never pushed"
            time.sleep(0.02)  # polling the journal the window writes and the proxy's count
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    saved = journal.load(transfer.id)
    held = saved["blobs"][0]["acknowledged"]
    assert MiB <= held < len(data) and saved["blobs"][0]["location"]
    assert saved["state"] == "queued", "interrupted, not paused by the user: resumed next start"
    reloaded = transfer_from_json(saved)
    assert reloaded.acknowledged == held

    proxy.reset_counters()
    resumed = hoist_cli("resume", transfer.id, "--progress", "json", env=dict(os.environ))
    assert resumed.returncode == 0, resumed.stderr
    events = [json.loads(line) for line in resumed.stderr.splitlines() if line.startswith("{")]
    blob_events = [e for e in events if e["event"] == "blob"]
    assert blob_events and max(e["resent"] for e in blob_events) == 0, "nothing sent twice"
    assert not any("again from the beginning" in e["message"] for e in blob_events)
    assert proxy.bytes_up < len(data) - held + 64 * 1024, "only the rest (and requests) again"
    assert get_manifest(registry.url, "gui/sigterm", "v1")["layers"][0]["digest"] == sha256(data)


def test_pausing_pushes_with_blobs_in_parallel_keeps_each_blob_s_progress(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    """Pause with "Blobs at once: 2" (a two-layer image, and a split file) used to end as
    "Failed: internal error: ExceptionGroup(TransferPaused)". Now both pause, read "Paused",
    resume, and land with the right digests; no blob's upload starts again from byte 0."""
    from support.images import ImageSpec, LayerSpec, write_oci_layout

    from hoist.core.sources.artifact import SplitOptions
    from hoist.core.transfer.push import plan_image_push

    layers = (LayerSpec({"a.bin": os.urandom(3 * MiB)}), LayerSpec({"b.bin": os.urandom(3 * MiB)}))
    layout = write_oci_layout(tmp_path / "two", images=[ImageSpec(layers=layers)], tag="1.0")
    data = os.urandom(6 * MiB + 5)
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    window, ctx = open_window()
    resent = resent_bytes(ctx)
    host = ctx.settings.registries[0].host
    ctx.settings.chunk_size = MiB
    window.rate_box.setValue(4.0)

    async def scenario() -> list[TransferItem]:
        await start(ctx, window)
        image = await asyncio.to_thread(
            plan_image_push, parse_reference(f"{host}/gui/two-layers:v1"), layout.path, parallel=2
        )
        split = await asyncio.to_thread(
            plan_file_push, parse_reference(f"{host}/gui/split-pause:v1"), [big],
            split=SplitOptions(2 * MiB), parallel=2,
        )  # fmt: skip
        items = [ctx.queue.add(image), ctx.queue.add(split)]
        for item in items:
            big_blobs = [b for b in item.transfer.blobs if b.size >= MiB]
            await aio.until(
                lambda i=item, bs=big_blobs: all(i.blob_sent(b.name) > 0 for b in bs),
                30, "every large blob under way",
            )  # fmt: skip
        window.view.select_transfer(items[0].id)
        window.view.qactions["pause"].trigger()
        window.view.select_transfer(items[1].id)
        window.view.qactions["pause"].trigger()
        window.model.flush()  # (no await since the clicks: the runs are still ending)
        assert [cell(window, item, Column.STATUS) for item in items] == ["Pausing…"] * 2
        assert not window.view.qactions["pause"].isEnabled()
        for item in items:
            await aio.until(lambda i=item: not i.running, 20, "the pause")
            assert item.state == TransferState.PAUSED, item.transfer.error
            assert 0 < item.transfer.acknowledged < item.total
        window.model.flush()
        assert [cell(window, item, Column.STATUS) for item in items] == ["Paused", "Paused"]
        window.rate_box.setValue(0)
        for item in items:
            window.view.select_transfer(item.id)
            assert window.view.qactions["resume"].isEnabled()
            window.view.qactions["resume"].trigger()
        for item in items:
            await aio.until(lambda i=item: i.state == TransferState.DONE, 60, "the resumed push")
        return items

    items = aio.run(scenario())
    assert all("internal error" not in item.transfer.error for item in items)
    assert resent and min(resent) == 0 and max(resent) == 0, "no blob started again"
    response = httpx.head(
        f"{registry.url}/v2/gui/two-layers/manifests/v1",
        headers={"Accept": layout.images[0].media_type},
    )
    assert response.headers["Docker-Content-Digest"] == layout.top_digest
    manifest = get_manifest(registry.url, "gui/split-pause", "v1")
    parts = [data[i : i + 2 * MiB] for i in range(0, len(data), 2 * MiB)]
    assert [layer["digest"] for layer in manifest["layers"]] == [sha256(p) for p in parts]
    assert manifest["layers"][0]["annotations"]["app.hoist.split.file.digest"] == sha256(data)


# -- a state folder that never stops the window (issue 16) ------------------------------------


def test_window_starts_beside_a_bad_journal_entry(
    aio: Any, open_window: OpenWindow, state_dir: Path
) -> None:
    """`{"version":2}` in the journal: the window starts, says which file it could not read,
    and shows it as a failed row that Remove deletes."""
    bad = state_dir / "transfers" / "bare.json"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text('{"version":2}')
    window, ctx = open_window()

    async def scenario() -> None:
        await start(ctx, window)
        assert window.last_error is not None and str(bad) in window.last_error
        (item,) = ctx.queue.items  # a row, so that it can be removed
        assert cell(window, item, Column.NAME) == "bare.json"
        assert cell(window, item, Column.STATUS).startswith(f"Failed: {bad}")
        window.view.select_transfer(item.id)
        await aio.until(lambda: window.view.qactions["remove"].isEnabled(), 2)
        assert not window.view.qactions["resume"].isEnabled()
        window.view.qactions["remove"].trigger()
        await aio.until(lambda: not bad.exists(), 5, "the entry removed")
        assert ctx.queue.items == []

    aio.run(scenario())


def test_full_state_folder_asks_before_going_on(
    aio: Any,
    full_state_dir: Path,
    open_window: OpenWindow,
    registry: RegistryProcess,
    tmp_path: Path,
) -> None:
    """A push whose journal can't be written asks (a question dialog) whether to go on
    without resume; "Go on" pushes it."""
    data = os.urandom(MiB + 5)
    path = tmp_path / "unjournaled.bin"
    path.write_bytes(data)
    window, ctx = open_window()

    async def scenario() -> TransferItem:
        await start(ctx, window)
        host = ctx.settings.registries[0].host
        item = ctx.queue.add(plan_file_push(parse_reference(f"{host}/gui/full:v1"), [path]))
        await aio.until(lambda: window.unjournaled_box is not None, 20, "the question")
        box: Any = window.unjournaled_box
        assert "without being able to resume it" in box.text()
        assert "cannot save the state of transfer" in box.informativeText()
        box.confirm_button.click()
        await aio.until(lambda: item.state == TransferState.DONE, 60, "the push")
        return item

    aio.run(scenario())
    assert get_manifest(registry.url, "gui/full", "v1")["layers"][0]["digest"] == sha256(data)


# -- issue 17: the window, finished --------------------------------------------------------------


# Qt's own file dialog asks the offscreen platform (tests only) for something it lacks.
@pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints")
def test_browse_download_through_the_folder_dialog_writes_the_file(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    """Browse → Download with the real folder dialog (it deletes itself on close): the file
    arrives with its bytes."""
    data = os.urandom(2 * MiB + 3)
    source = tmp_path / "src" / "weights.bin"
    source.parent.mkdir()
    source.write_bytes(data)
    folder = tmp_path / "downloads"
    folder.mkdir()
    repository = "gui/dialog-download"
    window, ctx = open_window()

    async def scenario() -> None:
        await push_paths(registry.host, f"{repository}:v1", [source])
        await start(ctx, window)
        pane: Any = window.browse
        window.show_in_browse(parse_reference(f"{registry.host}/{repository}:v1"))
        await aio.until(lambda: pane.detail_model.info is not None, 20, "the details")
        pane.qactions["download"].trigger()

        def open_dialog() -> QFileDialog | None:
            found = [d for d in pane.findChildren(QFileDialog) if d.isVisible()]
            return found[0] if found else None

        await aio.until(open_dialog, 10, "the folder dialog")
        dialog = open_dialog()
        assert dialog is not None
        dialog.setDirectory(str(folder))
        dialog.accept()
        await aio.until(lambda: ctx.queue.items, 10, "the download in the queue")
        [item] = ctx.queue.items
        await aio.until(lambda: item.state == TransferState.DONE, 60, "the download")
        assert cell(window, item, Column.TARGET) == str(folder)
        # Browse says how the download it started went.
        said = f"Downloaded {item.transfer.name} to {folder}"
        await aio.until(lambda: pane.message.text() == said, 5, "Browse's sentence")

    aio.run(scenario())
    assert (folder / "weights.bin").read_bytes() == data


def learned_part(settings: UploadSettings) -> tuple[object, ...]:
    """What a host's profile decides (the retry policy differs on purpose: the window
    retries until the user pauses)."""
    s = settings
    return (s.chunk_size, s.adaptive, s.max_chunk, s.min_chunk, s.chunked,
            s.throttle is not None, s.on_limit is not None)  # fmt: skip


def test_window_and_command_line_send_with_the_same_settings(
    open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    """A host's learned profile (chunk limits, no PATCH, a cap) applies in the window as in
    `hoist push`: one function in core decides."""
    ProfileStore().update(registry.host, max_chunk=8 * MiB, min_chunk=MiB, limit_rate=5 * MiB)
    path = tmp_path / "f.bin"
    path.write_bytes(b"x")
    _window, ctx = open_window()
    transfer = plan_file_push(parse_reference(f"{registry.host}/gui/profiled:v1"), [path])
    args = build_parser().parse_args(["push", str(transfer.target), str(path)])
    from_cli = cli_settings(args, transfer.target.api_host)
    from_window = ctx.queue.settings_factory(transfer)
    assert learned_part(from_window) == learned_part(from_cli)
    assert (from_window.max_chunk, from_window.min_chunk) == (8 * MiB, MiB)
    assert from_window.throttle is not None


def test_cancel_asks_first_saying_what_is_lost_and_delete_never_cancels(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    path = tmp_path / "long.bin"
    path.write_bytes(os.urandom(8 * MiB))
    window, ctx = open_window()
    view = window.view

    async def scenario() -> None:
        await start(ctx, window)
        item = await slow_transfer(window, ctx, path, "gui/cancelling")
        await aio.until(lambda: item.acknowledged >= MiB, 20, "the first chunk")
        window.windowHandle().requestActivate()
        await aio.until(window.isActiveWindow, 5, "the window active")
        view.select_transfer(item.id)
        view.setFocus()
        # Delete (remove from list) on a running transfer does nothing: no cancel, no loss.
        view.refresh_actions()
        assert view.qactions["remove"].shortcut().toString() == "Del"
        assert not view.qactions["remove"].isEnabled()
        QTest.keyClick(view, Qt.Key.Key_Delete)
        await asyncio.sleep(0)  # one loop turn: a task Delete started would have begun
        assert item in ctx.queue.items and item.running and window.confirm_box is None
        view.qactions["cancel"].trigger()
        await aio.until(lambda: window.confirm_box is not None, 10, "the question")
        box = window.confirm_box
        assert box is not None
        assert box.text() == "Cancel long.bin?"
        assert "already uploaded is thrown away" in box.informativeText()
        assert "Pause instead" in box.informativeText()
        box.cancel_button.click()  # Keep
        await aio.until(lambda: window.confirm_box is None, 10, "the answer")
        await asyncio.sleep(0)  # one loop turn: the answer reaches the controller
        assert item in ctx.queue.items and item.running, "Keep keeps the transfer"
        view.qactions["cancel"].trigger()
        await aio.until(lambda: window.confirm_box is not None, 10, "the question again")
        window.confirm_box.confirm_button.click()  # type: ignore[union-attr]
        await aio.until(lambda: item not in ctx.queue.items, 20, "the cancel")

    aio.run(scenario())


def test_transfers_reorder_and_take_their_own_rate_limit_from_the_window(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path,
    qtmodeltester: Any,
) -> None:  # fmt: skip
    window, ctx = open_window()
    view = window.view
    host = ctx.settings.registries[0].host

    def names() -> list[str]:
        model = window.view.proxy
        return [model.index(r, Column.NAME).data() for r in range(model.rowCount())]

    async def scenario() -> None:
        await start(ctx, window)
        items = []
        for i in range(3):
            path = tmp_path / f"r{i}.bin"
            path.write_bytes(os.urandom(1000 + i))
            plan = plan_file_push(parse_reference(f"{host}/gui/order-{i}:v1"), [path])
            items.append(ctx.queue.add(plan, start=False))
        first, second, third = items
        assert names() == ["r0.bin", "r1.bin", "r2.bin"]
        view.select_transfer(third.id)
        view.refresh_actions()
        assert not view.qactions["move_down"].isEnabled()  # already last
        view.qactions["move_top"].trigger()
        assert names() == ["r2.bin", "r0.bin", "r1.bin"]
        assert [i.id for i in view.selected_items()] == [third.id], "the selection follows"
        view.qactions["move_down"].trigger()
        assert names() == ["r0.bin", "r2.bin", "r1.bin"]
        view.qactions["move_up"].trigger()
        assert [i.id for i in ctx.queue.items] == [third.id, first.id, second.id]
        qtmodeltester.check(window.model)
        view.qactions["rate_limit"].trigger()
        await aio.until(lambda: window.rate_dialog is not None, 10, "the rate dialog")
        dialog = window.rate_dialog
        assert dialog is not None
        dialog.rate_box.setValue(1.5)
        dialog.accept()
        await aio.until(lambda: third.limiter.rate == round(1.5 * MiB), 10, "the new cap")
        assert ctx.queue.limiter.rate == 0  # the window's cap is untouched
        view.refresh_actions()
        assert view.qactions["rate_limit"].text() == "Rate &limit (1.5 MiB/s)…"

    aio.run(scenario())


def test_push_from_the_sheet_leaves_no_upload_session_behind(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    """The sheet's push-permission check must not leave an empty session in the registry."""
    path = tmp_path / "checked.bin"
    path.write_bytes(os.urandom(100_000))
    window, ctx = open_window()

    async def scenario() -> None:
        await start(ctx, window)
        drop(window, [path])
        await aio.until(lambda: window.add_sheet is not None, 10, "the add sheet")
        sheet = window.add_sheet
        assert sheet is not None
        await fill_and_push(aio, sheet, "gui/checked", "v1")
        item = sheet.item
        assert item is not None
        await aio.until(lambda: item.state == TransferState.DONE, 30, "the push")

    aio.run(scenario())
    assert registry.upload_dirs("gui/checked") == []


SMALL_SCREEN = QRect(0, 0, 1024, 640)


def shown_whole(widget: QWidget, window: MainWindow) -> bool:
    """Whether `widget` is visible, inside the window, and not cut by any parent."""
    if not widget.isVisible() or widget.width() <= 0:
        return False
    rect = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
    if not window.rect().contains(rect):
        return False
    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        if not QRect(parent.mapTo(window, QPoint(0, 0)), parent.size()).contains(rect):
            return False
        parent = parent.parentWidget()
    return True


def test_window_fits_a_1024_by_640_screen(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 1024×640 nothing named in the issue is cut or off-screen: Edit registry, the rate
    limit's arrows, the Status column, Browse's Delete, the first-start banner's Not now."""
    monkeypatch.setattr(QScreen, "availableGeometry", lambda _self: SMALL_SCREEN)
    window, ctx = open_window(registries=False)  # the first-start banner shows
    assert SMALL_SCREEN.contains(QRect(QPoint(0, 0), window.frameGeometry().size())), (
        "it opens at a size the screen holds"
    )

    async def scenario() -> None:
        await start(ctx, window)
        window.resize(SMALL_SCREEN.size())
        await aio.until(lambda: window.size() == SMALL_SCREEN.size(), 5, "the resize")
        await aio.until(lambda: window.banner.isVisible(), 5, "the banner")
        await asyncio.sleep(0)  # one loop turn: the layout places the shown banner
        assert shown_whole(window.banner.close_button, window), "Not now"
        assert shown_whole(window.rate_box, window), "the rate limit"
        edit = window.toolbar.widgetForAction(window.edit_registry_action)
        assert edit is not None and shown_whole(edit, window), "Edit registry"
        view = window.view
        header = view.header()
        status_left = header.sectionViewportPosition(Column.STATUS)
        room = view.viewport().width() - status_left
        assert room >= view.fontMetrics().horizontalAdvance("waiting for network, retry in 8 s")
        window.tabs.setCurrentWidget(window.browse)
        await aio.until(lambda: window.browse.isVisible(), 5, "Browse")
        pane: Any = window.browse
        assert shown_whole(pane.delete_button, window), "Browse's Delete"
        assert shown_whole(pane.download_button, window), "Browse's Download"
        # A long registry name (and its login state) in the selector leaves Edit registry.
        long_name = "Team registry at registry.example.com (production mirror)"
        ctx.settings.registries.append(RegistrySettings(long_name, f"http://{registry.host}"))
        ctx.settings.selected_registry = long_name
        window.refresh_registries()
        window.update_demo_banner()
        await aio.until(lambda: long_name in window.registry_combo.currentText(), 5, "it")
        await asyncio.sleep(0)  # one loop turn: the toolbar lays out the wider selector
        edit = window.toolbar.widgetForAction(window.edit_registry_action)
        assert edit is not None and shown_whole(edit, window), "Edit registry, long name"

    aio.run(scenario())


def test_enter_in_add_registry_saves_without_an_error(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Enter in the address field saves the registry; the dialog's background check (it
    reads the fields) must not outlive the dialog ("QLineEdit already deleted")."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    window, ctx = open_window(registries=False)

    async def scenario() -> None:
        await start(ctx, window)
        window.add_registry()
        dialog: Any = window.registry_dialog
        assert dialog is not None
        await aio.until(lambda: dialog.keyring_checked, 10, "the dialog's first check")
        tasks = dialog.tasks
        dialog.url_edit.setFocus()
        dialog.url_edit.setText(f"http://{registry.host}")
        QTest.keyClick(dialog.url_edit, Qt.Key.Key_Return)
        await aio.until(lambda: ctx.settings.registries, 10, "the saved registry")
        await aio.until(lambda: not tasks, 10, "the dialog's tasks")
        await asyncio.sleep(0)  # one loop turn: the dialog's close and the window's save start

    aio.run(scenario())
    assert [r.host for r in ctx.settings.registries] == [registry.host]
    assert not window.message_bar.isVisible(), window.message_label.text()


def test_a_corrected_password_takes_effect_in_browse_at_once(
    aio: Any, open_window: OpenWindow, auth_registry: RegistryProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A wrong password corrected in the registry dialog applies to Browse without choosing
    another registry; the window's messages speak of the window, never `hoist login`."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    window, ctx = open_window(registries=False)
    user, password = auth_registry.credentials or ("", "")
    entry = RegistrySettings("Team", f"http://{auth_registry.host}", user)
    ctx.settings.registries.append(entry)
    ctx.settings.selected_registry = "Team"
    ctx.credentials.remember(auth_registry.host, Credentials(user, "wrong-password"))
    pane: Any = window.browse

    async def scenario() -> None:
        await start(ctx, window)
        window.show_selected_registry()
        await aio.until(lambda: not pane.message.isHidden(), 20, "the refusal")
        said = pane.message.text()
        assert "hoist login" not in said and "Edit registry" in said, said
        window.edit_registry()
        dialog: Any = window.registry_dialog
        assert dialog is not None
        await aio.until(lambda: dialog.keyring_checked, 10, "the dialog's first check")
        dialog.password_edit.setText(password)
        dialog.save_button.click()
        await aio.until(lambda: pane.message.isHidden(), 20, "Browse reconnected")
        await aio.until(lambda: pane.repo_model.complete, 20, "the catalog")

    aio.run(scenario())


@pytest.mark.parametrize(
    ("file", "tag"),
    [("llama-3.1.gguf", "3.1"), ("model-v2.bin", "v2"), ("ubuntu-22.04.tar", "22.04"),
     ("weights.safetensors", "latest"), ("data-2024-05-01.csv", "latest"),
     ("Model-V10.bin", "v10"), ("llama3.bin", "latest")],
)  # fmt: skip
def test_tag_suggested_from_a_file_name(file: str, tag: str) -> None:
    assert suggest_tag(Path(file)) == tag


def test_the_sheet_suggests_this_registry_s_repository_and_the_file_s_tag(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    """Never the last push's tag for a different file (it would overwrite that push)."""
    versioned = tmp_path / "llama-3.1.gguf"
    versioned.write_bytes(b"a")
    plain = tmp_path / "notes.txt"
    plain.write_bytes(b"b")
    window, ctx = open_window()
    reg = ctx.settings.registries[0]
    reg.last_repository, reg.last_tag = "team/models", "v9"

    async def scenario() -> None:
        await start(ctx, window)
        for path, tag in ((versioned, "3.1"), (plain, "latest")):
            sheet = await window.open_add_sheet([path])
            assert (sheet.repository.text(), sheet.tag.text()) == ("team/models", tag)
            sheet.reject()

    aio.run(scenario())


def test_split_mode_is_offered_for_a_very_large_file_where_a_cut_restarts(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    huge = tmp_path / "disk.qcow2"
    with huge.open("wb") as f:  # sparse: no disk space used
        f.truncate(SPLIT_THRESHOLD + 1)
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)
    window, ctx = open_window()

    async def scenario() -> None:
        await start(ctx, window)
        ProfileStore().update(registry.host, resumable=False)
        sheet = await window.open_add_sheet([huge])
        assert sheet.split.isChecked()
        assert not sheet.split_note.isHidden()
        advice = sheet.split_note.text()
        assert "this registry keeps nothing of an upload cut mid-chunk" in advice
        assert "a cut costs at most one part" in advice and "The cost:" in advice
        assert "as 1 GiB parts" in advice
        sheet.part_size.setCurrentIndex(0)
        assert "as 256 MiB parts" in sheet.split_note.text()
        sheet.reject()
        sheet = await window.open_add_sheet([small])
        assert not sheet.split.isChecked() and sheet.split_note.isHidden()
        sheet.reject()
        ProfileStore().update(registry.host, resumable=True)  # it keeps cut uploads
        sheet = await window.open_add_sheet([huge])
        assert not sheet.split.isChecked() and sheet.split_note.isHidden()
        sheet.reject()

    aio.run(scenario())


def test_keyboard_works_right_after_the_add_sheet_and_menus_have_accelerators(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    """After the sheet queues a push, focus is on the new row: Ctrl+P pauses it at once."""
    path = tmp_path / "keys.bin"
    path.write_bytes(os.urandom(6 * MiB))
    window, ctx = open_window()
    ctx.settings.chunk_size = 1 * MiB
    window.rate_box.setValue(1.0)  # slow enough to pause while it runs

    async def scenario() -> None:
        await start(ctx, window)
        window.windowHandle().requestActivate()
        await aio.until(window.isActiveWindow, 5, "the window to be active")
        window.filter_bar.setFocus()  # where focus was before (the "All" filter)
        sheet = await window.open_add_sheet([path])
        await fill_and_push(aio, sheet, "gui/keys", "v1")
        item = sheet.item
        assert item is not None
        await aio.until(lambda: window.add_sheet is None, 10, "the sheet to close")
        # A window manager activates the window again once the sheet is gone (the offscreen
        # platform does not): the keyboard goes to the window's focus widget.
        window.windowHandle().requestActivate()
        await aio.until(window.isActiveWindow, 5, "the window active again")
        await aio.until(lambda: QApplication.focusWidget() is window.view, 5, "focus on the list")
        assert [i.id for i in window.view.selected_items()] == [item.id]
        await aio.until(lambda: item.running, 10, "the push to start")
        QTest.keyClick(window.view, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
        await aio.until(lambda: item.state == TransferState.PAUSED and not item.running, 20)

    aio.run(scenario())
    menus = [a.menu() for a in window.menuBar().actions() if a.menu() is not None]
    for menu in menus:
        menu.aboutToShow.emit()
        texts = [a.text() for a in menu.actions() if not a.isSeparator() and a.isVisible()]
        missing = [t for t in texts if "&" not in t]
        assert not missing, f"{menu.title()}: no accelerator for {missing}"
        letters = [t[t.index("&") + 1].lower() for t in texts]
        assert len(set(letters)) == len(letters), f"{menu.title()}: {texts}"


def test_help_explains_resuming_and_lists_the_keys(qtbot: QtBot, open_window: OpenWindow) -> None:
    window, _ctx = open_window()
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    items = [a.text() for a in help_menu.actions() if not a.isSeparator()]
    assert items == ["&How resuming works", "&Keyboard shortcuts", "&About Hoist"]
    box = window.resuming_help()
    assert "asks the registry where the upload stands" in box.informative_label.text()
    assert "Split mode" in box.informative_label.text()
    box.close()
    keys = dict((what, keys) for keys, what in window.keyboard_map())
    assert keys["Pause"] == "Ctrl+P" and keys["Move to top"] == "Ctrl+Home"
    assert keys["Browse: Filter repositories"] == "Ctrl+F"
    box = window.keys_help()
    assert "Ctrl+Shift+P\tPause all" in box.informative_label.text()
    box.close()


def test_browse_lists_a_push_once_it_is_done(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    """No "This registry holds no repositories yet" beside a repository just pushed: the
    catalog and the open repository's tags are read again when a push ends."""
    path = tmp_path / "fresh.bin"
    path.write_bytes(os.urandom(5000))
    repository = f"gui/fresh-{os.getpid()}"
    window, ctx = open_window()
    pane: Any = window.browse

    async def scenario() -> None:
        await push_paths(registry.host, f"{repository}:v1", [path])
        await start(ctx, window)
        window.show_selected_registry()
        await aio.until(lambda: pane.client is not None, 10, "Browse connected")
        pane.open_repository(repository)
        await aio.until(lambda: pane.tag_model.complete, 10, "the tags")
        assert pane.tag_model.tags() == ["v1"]
        other = f"{repository}-other"
        # The filter reads pages until it finds matches (the shared registry holds many).
        pane.repo_filter.setText(repository)

        def listed() -> list[str]:
            proxy = pane.repo_proxy
            return [proxy.index(r, 0).data() for r in range(proxy.rowCount())]

        await aio.until(lambda: listed() == [repository], 20, "the filtered catalog")
        host = ctx.settings.registries[0].host
        for ref in (f"{host}/{repository}:v2", f"{host}/{other}:v1"):
            item = ctx.queue.add(plan_file_push(parse_reference(ref), [path]))
            await aio.until(lambda item=item: item.state == TransferState.DONE, 30, ref)
        await aio.until(lambda: listed() == [repository, other], 20, "the new repository")
        await aio.until(lambda: pane.tag_model.tags() == ["v1", "v2"], 20, "the new tag")

    aio.run(scenario())


def test_filter_counts_follow_state_changes(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    window, ctx = open_window()
    host = ctx.settings.registries[0].host

    def labels() -> list[str]:
        return [window.filter_bar.tabText(i) for i in range(window.filter_bar.count())]

    async def scenario() -> None:
        await start(ctx, window)
        items = []
        for i in range(2):
            path = tmp_path / f"c{i}.bin"
            path.write_bytes(os.urandom(3000))
            plan = plan_file_push(parse_reference(f"{host}/gui/counts-{i}:v1"), [path])
            items.append(ctx.queue.add(plan, start=False))
        expected = ["All (2)", "Active (0)", "Paused (2)", "Failed (0)", "Done (0)"]
        await aio.until(lambda: labels() == expected, 5, "two paused")
        ctx.queue.resume(items[0].id)
        await aio.until(lambda: items[0].state == TransferState.DONE, 30, "the push")
        expected = ["All (2)", "Active (0)", "Paused (1)", "Failed (0)", "Done (1)"]
        await aio.until(lambda: labels() == expected, 5, f"the counts, now {labels()}")

    aio.run(scenario())


def test_a_dropped_path_that_is_not_there_is_refused_at_once_by_name(
    aio: Any, open_window: OpenWindow, registry: RegistryProcess, tmp_path: Path
) -> None:
    gone = tmp_path / "vanished.bin"
    locked = tmp_path / "locked.bin"
    locked.write_bytes(b"secret")
    locked.chmod(0)
    window, ctx = open_window()

    async def scenario() -> None:
        await start(ctx, window)
        drop(window, [gone])
        await aio.until(lambda: window.message_bar.isVisible(), 10, "the refusal")
        assert window.add_sheet is None, "no sheet for a path that is not there"
        assert window.message_label.text().startswith(f"{gone} does not exist.")
        window.dismiss_error()
        if os.geteuid() != 0:  # root reads anything: only the missing path applies
            drop(window, [locked])
            await aio.until(lambda: window.message_bar.isVisible(), 10, "the refusal")
            assert "can't read locked.bin: permission denied" in window.message_label.text()
            assert window.add_sheet is None

    aio.run(scenario())


def test_dragging_files_over_the_window_highlights_it(
    open_window: OpenWindow, tmp_path: Path
) -> None:
    path = tmp_path / "dragged.bin"
    path.write_bytes(b"x")
    window, _ctx = open_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    center = QPointF(window.rect().center())
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)  # fmt: skip
    try:
        enter = QDragEnterEvent(center, *args)
    except TypeError:
        enter = QDragEnterEvent(center.toPoint(), *args)
    QApplication.sendEvent(window, enter)
    assert window.drops.highlight.isVisible()
    assert window.rect().contains(window.drops.highlight.geometry())
    QApplication.sendEvent(window, QDragLeaveEvent())
    assert not window.drops.highlight.isVisible()


def test_an_unreadable_journal_entry_is_said_in_the_window_s_words(
    aio: Any, open_window: OpenWindow, state_dir: Path
) -> None:
    window, ctx = open_window()
    broken = ctx.queue.journal.path("20260101-000000-abcdef")
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("{not json")
    aio.run(start(ctx, window))
    text = window.message_label.text()
    assert text.startswith(f"{broken} is not a t")
    # Listed as a failed row (so it can be removed): the window's words name Remove, no command.
    assert "hoist cancel" not in text and "remove it with Remove" in text
