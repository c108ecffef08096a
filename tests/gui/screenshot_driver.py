"""Drives the real Hoist window on a real X display and saves the README's screenshots.

Started by tests/gui/test_screenshots.py in a subprocess, with DISPLAY pointing at an Xvfb it
started and QT_QPA_PLATFORM=xcb (the test process itself runs Qt offscreen), and with
HOIST_STATE_DIR / HOIST_CONFIG_DIR / HOME pointing at throwaway folders.

    python tests/gui/screenshot_driver.py SPEC.json

SPEC names the registry (already holding a few repositories), the files to push, and where
the PNGs go. The app runs exactly as `hoist-gui` does (`hoist.gui.app.main`); a task on the same
qasync loop finds the window once it is shown and steers it as a user would, through the
window's own methods and the queue it was given (as the add sheet's last step does): pushes
(an artifact and a multi-arch image done, the image expanded to its blobs; one failed; one
paused half-way with the Pause action; one in progress under the rate limit set in the status
bar; a download, done), the same list under a dark palette, the Browse area at a multi-arch
tag, the add sheet for an image dropped on the window, and the registry dialog after a
connection test. It
prints one `saved NAME WIDTHxHEIGHT` line per screenshot, and exits non-zero (with the reason
on stderr) when a step fails or the window showed an error.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QModelIndex, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QPainter,
    QPalette,
)
from PySide6.QtWidgets import QApplication, QWidget

from hoist.core.oci.reference import parse_reference
from hoist.core.transfer.model import TransferState
from hoist.core.transfer.push import plan_file_push, plan_image_push
from hoist.core.units import MiB
from hoist.gui import app as gui_app
from hoist.gui.main_window import MainWindow
from hoist.gui.settings.store import RegistrySettings, Settings, SettingsStore
from hoist.gui.widgets.theme import mix

#: The window's size in every screenshot unless the spec says (the README shows this size).
WINDOW_SIZE = (1280, 760)
#: The rate limit set in the window (the 200 MiB push then stays in progress for ~10 s).
RATE_LIMIT = 20 * MiB
REGISTRY_NAME = "Team registry"
#: The Browse download's own rate limit (its 64 MiB then take ~8 s).
DOWNLOAD_LIMIT = 8 * MiB

failures: list[str] = []


def dark_palette() -> QPalette:
    """A dark palette as a dark desktop theme hands one to Qt (Breeze Dark's colours)."""
    window, base, alt, text = "#2a2e32", "#1b1e20", "#232629", "#fcfcfc"
    palette = QPalette()
    roles = QPalette.ColorRole
    for role, color in (
        (roles.Window, window), (roles.WindowText, text), (roles.Base, base),
        (roles.AlternateBase, alt), (roles.ToolTipBase, base), (roles.ToolTipText, text),
        (roles.PlaceholderText, "#a1a9b1"), (roles.Text, text), (roles.Button, "#31363b"),
        (roles.ButtonText, text), (roles.BrightText, "#ffffff"), (roles.Light, "#40464c"),
        (roles.Midlight, "#363b40"), (roles.Mid, "#1f2224"), (roles.Dark, "#141617"),
        (roles.Shadow, "#0b0c0d"), (roles.Highlight, "#3daee9"),
        (roles.HighlightedText, "#fcfcfc"), (roles.Link, "#1d99f3"),
        (roles.LinkVisited, "#9b59b6"),
    ):  # fmt: skip
        palette.setColor(role, QColor(color))
    disabled = QPalette.ColorGroup.Disabled
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        palette.setColor(disabled, role, QColor("#6e7175"))
    return palette


async def until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


async def settle(seconds: float = 0.4) -> None:
    """Let the view's refresh timer and the X server catch up before a screenshot (the
    qasync loop processes Qt's events meanwhile; processEvents here would re-enter it)."""
    await asyncio.sleep(seconds)


def save(image: Any, out: Path, name: str) -> None:
    path = out / name
    if not image.save(str(path), "PNG"):
        raise RuntimeError(f"could not write {path}")
    print(f"saved {name} {image.width()}x{image.height()}", flush=True)


def grab_window(window: QWidget, out: Path, name: str) -> None:
    """The window as Qt paints it (its size exactly)."""
    save(window.grab(), out, name)


def grab_screen(window: QWidget, dialog: QWidget, out: Path, name: str) -> None:
    """The window's area of the screen with `dialog` open over it (the window's size).

    No window manager runs on the Xvfb display, so nothing frames the dialog: a thin outline
    and a soft shadow are drawn where a window manager's frame would be.
    """
    screen = window.screen() or QGuiApplication.primaryScreen()
    geometry = window.geometry()  # no window manager: no frame, screen coordinates
    pixmap = screen.grabWindow(0, geometry.x(), geometry.y(), geometry.width(), geometry.height())
    frame = dialog.geometry().translated(-geometry.x(), -geometry.y())
    painter = QPainter(pixmap)
    for step in range(1, 9):
        painter.setPen(QColor(0, 0, 0, max(0, 46 - 6 * step)))
        painter.drawRect(frame.adjusted(-step, -step + 2, step - 1, step + 1))
    palette = dialog.palette()
    painter.setPen(mix(palette.color(QPalette.ColorRole.Window),
                       palette.color(QPalette.ColorRole.WindowText), 0.35))  # fmt: skip
    painter.drawRect(frame.adjusted(-1, -1, 0, 0))
    painter.end()
    save(pixmap, out, name)


def drop(widget: QWidget, paths: list[Path]) -> None:
    """A real drag-enter and drop of file URLs, as a file manager sends them."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    center = QPointF(widget.rect().center())
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)  # fmt: skip
    try:  # PySide 6.12 takes a QPointF; 6.11 only a QPoint
        enter = QDragEnterEvent(center, *args)
    except TypeError:
        enter = QDragEnterEvent(center.toPoint(), *args)
    QApplication.sendEvent(widget, enter)
    QApplication.sendEvent(widget, QDropEvent(center, *args))


async def scenario(spec: dict[str, Any]) -> None:
    out = Path(spec["out"])
    host = spec["registry"]
    files = {k: Path(v) for k, v in spec["files"].items()}
    app = QApplication.instance()
    assert isinstance(app, QApplication)

    def main_window() -> MainWindow | None:
        shown = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        return shown[0] if shown else None

    await until(main_window, "the window")
    window = main_window()
    assert window is not None
    window.error_shown.connect(lambda text: failures.append(f"the window showed: {text}"))
    window.move(0, 0)
    window.resize(*spec.get("window", WINDOW_SIZE))
    ctx = window.ctx
    queue = ctx.queue
    pane: Any = window.browse
    await until(lambda: getattr(pane, "client", None) is not None, "the Browse area to connect")
    window.rate_box.setValue(RATE_LIMIT / MiB)  # as a user types it in the status bar

    def plan_files(repo_tag: str, paths: list[Path]) -> Any:
        return asyncio.to_thread(plan_file_push, parse_reference(f"{host}/{repo_tag}"), paths)

    # Plan everything at once (hashing runs in worker threads, as the add sheet does).
    done_plan, image_plan, failed_plan, paused_plan, running_plan = await asyncio.gather(
        plan_files("team/models:v2", [files["card"], files["weights"]]),
        asyncio.to_thread(
            plan_image_push, parse_reference(f"{host}/team/app:1.4"), files["layout"]
        ),
        plan_files("docs/reports:q2", [files["report"]]),
        plan_files("ml/datasets:2024-07", [files["dataset"]]),
        plan_files("team/llm:8b-q4", [files["model"]]),
    )

    done = queue.add(done_plan)
    await until(lambda: done.state == TransferState.DONE, "the small push")
    # A download from Browse shares the queue: a tag fetched into a folder, verified.
    fetched = window.queue_download(f"{host}/team/models:v1", spec["download_to"])
    await until(lambda: fetched.state == TransferState.DONE, "the download")
    image = queue.add(image_plan)
    await until(lambda: image.state == TransferState.DONE, "the image push")
    files["report"].unlink()  # moved away after it was planned: its push fails, in a sentence
    failed = queue.add(failed_plan)
    await until(lambda: failed.state == TransferState.FAILED, "the push to fail")
    paused = queue.add(paused_plan)
    await until(lambda: paused.acknowledged >= 0.4 * paused.total, "the push to pause")
    window.view.select_transfer(paused.id)
    window.view.trigger("pause")  # as Ctrl+P does
    if not paused.pause_event.is_set():
        raise RuntimeError(f"Pause did nothing (selected: {window.view.selected_items()})")
    await until(lambda: paused.state == TransferState.PAUSED, "the pause")
    running = queue.add(running_plan)
    await until(
        lambda: running.acknowledged >= 0.22 * running.total and running.rate,
        "the big push to get going",
    )

    view = window.view
    view.expand(view.proxy.mapFromSource(window.model.index_of(image.id)))
    view.clearSelection()
    view.setCurrentIndex(QModelIndex())
    view.setFocus()
    await settle()
    grab_window(window, out, "main-window.png")

    light = QPalette(app.palette())
    app.setPalette(dark_palette())
    await settle()
    grab_window(window, out, "main-window-dark.png")
    app.setPalette(light)
    await settle(0.1)

    # Browse: the multi-arch tag just pushed, its platforms listed.
    window.show_in_browse(parse_reference(f"{host}/team/app:1.4"))
    await until(lambda: pane.detail_model.info is not None, "the tag's details")
    await until(lambda: pane.tag_model.detail_counts()[0] >= pane.tag_model.rowCount(),
                "the tags' sizes and dates", timeout=10)  # fmt: skip
    pane.tag_view.setFocus()
    await settle(0.6)
    grab_window(window, out, "browse.png")

    # Browse again: Download of a large artifact, in progress under its own rate limit.
    window.show_in_browse(parse_reference(f"{host}/ml/checkpoints:epoch-12"))

    def checkpoint_info() -> Any:
        info = pane.detail_model.info
        return info if info is not None and info.repository == "ml/checkpoints" else None

    await until(checkpoint_info, "its details")
    info = checkpoint_info()
    queued: list[Any] = []
    queue.listeners.append(lambda kind, item: queued.append(item) if kind == "added" else None)
    pane.request_download(info.repository, info.digest, Path(spec["download_to"]),
                          tag="epoch-12")  # fmt: skip
    await until(lambda: queued, "the download in the queue")
    download = queued[0]
    queue.set_rate_limit(download.id, DOWNLOAD_LIMIT)  # as Rate limit… in its menu does
    await until(lambda: download.acknowledged >= 0.3 * download.total > 0, "the download")
    pane.tag_view.setFocus()
    await settle(0.4)
    grab_window(window, out, "browse-download.png")

    # The add sheet, for an image archive dropped on the window.
    window.tabs.setCurrentIndex(0)
    drop(window, [files["archive"]])
    await until(lambda: window.add_sheet is not None and window.add_sheet.isVisible(),
                "the add sheet")  # fmt: skip
    sheet = window.add_sheet
    assert sheet is not None
    await until(lambda: sheet.image_tag.currentData() is not None, "the sheet's image list")
    sheet.repository.setText("team/app")
    sheet.tag.setText("1.5")
    sheet.repository.setFocus()
    await settle(0.6)
    grab_screen(window, sheet, out, "add-sheet.png")
    sheet.reject()
    await until(lambda: window.add_sheet is None, "the sheet to close")

    # The registry dialog, after testing the connection.
    window.edit_registry()
    dialog: Any = window.registry_dialog
    await until(lambda: dialog is not None and dialog.isVisible(), "the registry dialog")
    dialog.test_button.click()
    await until(lambda: dialog.test_result.text(), "the connection test")
    await settle(0.6)
    grab_screen(window, dialog, out, "registry-dialog.png")
    dialog.reject()

    # Quit while the big push still runs: the question (pause everything / keep / cancel).
    if not running.running:
        raise RuntimeError("the big push ended before the quit question could be shown")
    asked: list[Any] = []
    window.quit_asked.connect(asked.append)
    window.quit_action.trigger()
    await until(lambda: asked and asked[-1].isVisible(), "the quit question")
    await settle(0.6)
    grab_screen(window, asked[-1], out, "quit-question.png")
    asked[-1].cancel_button.click()


def write_settings(host: str) -> None:
    """The registry as the user set it up (before the app starts, as on a second run)."""
    settings = Settings(
        registries=[RegistrySettings(REGISTRY_NAME, f"http://{host}")],
        selected_registry=REGISTRY_NAME,
        chunk_size=8 * MiB,  # pauses stop at a chunk boundary
    )
    SettingsStore().save(settings)


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    write_settings(spec["registry"])
    app = QApplication(sys.argv[:1])

    async def steer() -> None:
        try:
            await asyncio.wait_for(scenario(spec), spec.get("timeout", 60))
        except BaseException as exc:
            failures.append("".join(traceback.format_exception(exc)))
        finally:
            for widget in app.topLevelWidgets():
                if isinstance(widget, MainWindow):
                    # Quit without the question (transfers still run): the app then
                    # pauses them and quits.
                    widget.end_session()

    tasks: list[asyncio.Task[None]] = []
    QTimer.singleShot(0, lambda: tasks.append(asyncio.ensure_future(steer())))
    status = gui_app.main([])
    for failure in failures:
        print(failure, file=sys.stderr)
    return status or (1 if failures else 0)


if __name__ == "__main__":
    sys.exit(main())
