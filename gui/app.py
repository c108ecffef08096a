"""`hoist-gui`: the desktop window on a qasync event loop.

One event loop serves Qt and asyncio (qasync's QEventLoop), so the engine's coroutines run
beside the widgets and blocking work goes to worker threads. Start-up: settings → window →
the demo registry when one was set up → credentials looked up → the journal's transfers loaded
paused (or resumed, per the "resume on start-up" setting). Closing the window (after asking,
when transfers run) pauses every transfer within a bounded wait (the journal keeps what the
registry acknowledged), stops the demo registry and quits; the end of the desktop session
(logout, SIGTERM, SIGHUP, Ctrl-C in the terminal) does the same without asking.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import logging.handlers
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QWidget

from hoist.core import __version__
from hoist.core.errors import HoistError
from hoist.core.paths import state_dir
from hoist.core.redaction import RedactingFormatter
from hoist.gui.context import AppContext, start_demo_registry
from hoist.gui.help_dialogs import MessageDialog
from hoist.gui.main_window import MainWindow
from hoist.gui.widgets import icons

log = logging.getLogger(__name__)

LOG_FILE = "hoist-gui.log"

#: Seconds that quitting gives running transfers to end their streams and journal the
#: registry's answer (as Pause does) before stopping them at once.
QUIT_GRACE = 10.0

#: Signals that end the window's session: paused and quit, without asking.
SESSION_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def log_path() -> Path:
    return state_dir() / LOG_FILE


def setup_logging() -> None:
    """Log to a small rotating file in the state folder (tracebacks go there, not on screen)."""
    handler = logging.handlers.RotatingFileHandler(
        log_path(), maxBytes=1_000_000, backupCount=2, encoding="utf-8"
    )
    # Pre-signed redirect URLs carry secrets in their query: the formatter cuts every query.
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def error_sentence(exc: BaseException) -> str:
    """What the user reads about an error: a HoistError's sentence, or a plain account of a
    bug with what to do next. Never a traceback."""
    if isinstance(exc, HoistError):
        return exc.sentence(window=True)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return (
        f"Something went wrong inside Hoist ({what}). Your transfers are saved and can be "
        f"resumed. The details are in {log_path()}; please include them in a bug report."
    )


def install_excepthook(parent: Callable[[], QWidget | None]) -> None:
    """Show unexpected errors (qasync routes async slot failures here) as a sentence: in the
    window's message bar, or in a message dialog when there is no window yet."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            QApplication.quit()
            return
        log.error("unexpected error", exc_info=(exc_type, exc, tb))
        show_message(parent(), error_sentence(exc))

    sys.excepthook = hook


class GuiThreadGarbageCollector(QObject):
    """Python's cycle collector, run from the GUI thread only.

    Automatic collection runs in whichever thread happens to allocate, and Hoist's worker
    threads (asyncio.to_thread: journal writes, hashing) allocate plenty. A Qt object caught
    in a reference cycle would then be destroyed in a worker thread, where Qt can't stop its
    timers ("QObject::~QObject: Timers cannot be stopped from another thread") or worse.
    So automatic collection is turned off and a timer collects here, the generation the
    usual thresholds call for (the pattern pyqtgraph and others use, after Erik Janssens,
    "Should the Python garbage collector be disabled?", 2014).
    """

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self._was_enabled = gc.isenabled()

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.timer.start()

    def stop(self) -> None:
        """Back to automatic collection (after one last collection here)."""
        self.timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    def check(self) -> None:
        count0, count1, count2 = gc.get_count()
        limit0, limit1, limit2 = gc.get_threshold()
        if count0 > limit0:
            generation = 2 if count2 > limit2 else 1 if count1 > limit1 else 0
            gc.collect(generation)


def install_loop_exception_handler(loop: asyncio.AbstractEventLoop) -> None:
    """Errors of tasks nobody awaited reach the user too, through the excepthook."""

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            sys.excepthook(type(exc), exc, exc.__traceback__)
        else:
            log.error("event loop: %s", context.get("message"))

    loop.set_exception_handler(handler)


#: Parentless message dialogs, kept alive until closed (PySide deletes an unreferenced one).
_OPEN_DIALOGS: set[MessageDialog] = set()


def show_message(parent: QWidget | None, text: str) -> None:
    if isinstance(parent, MainWindow):
        parent.show_error(text)
        return
    box = MessageDialog("Hoist", text, parent)
    if parent is None:
        _OPEN_DIALOGS.add(box)
        box.finished.connect(lambda _result, b=box: _OPEN_DIALOGS.discard(b))
    box.open()  # does not start a nested event loop


async def start(ctx: AppContext, window: MainWindow) -> None:
    """Bring the window's services up: demo registry, credentials, the journal's transfers."""
    if any(r.demo for r in ctx.settings.registries):
        try:
            await start_demo_registry(ctx)
        except HoistError as exc:
            window.show_error(exc.sentence(window=True))
        window.refresh_registries()
    valid = [r for r in ctx.settings.registries if r.valid]
    await asyncio.gather(*(ctx.credentials.refresh(r) for r in valid))
    window.refresh_registries()
    window.show_selected_registry()
    for problem in ctx.queue.load_journal(resume=ctx.settings.resume_on_start):
        window.show_error(problem)


async def shutdown(ctx: AppContext, *, grace: float = QUIT_GRACE) -> None:
    """Pause every transfer (each stream in flight ends and the registry's answer is
    journaled, within `grace` seconds; then what still runs stops at once), stop the demo
    registry.

    Transfers that were uploading or waiting their turn are written back as queued, so that
    next time "resume on start-up" resumes them (and, with it off, they load paused); a
    transfer the user paused stays paused either way.
    """
    await ctx.queue.aclose(grace=grace)  # interrupted transfers are written back as queued
    if ctx.demo is not None:
        await ctx.demo.aclose()
    try:
        await ctx.save_settings()
    except OSError as exc:
        log.warning("settings not saved: %s", exc)


async def smoke_test(window: MainWindow, timeout: float = 30.0) -> int:
    """For packaging/smoke_test.sh: the built app can show its real window. Prints
    `window shown` once the window is exposed on screen, then the app quits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (window.windowHandle() is not None and window.windowHandle().isExposed()):
        if loop.time() > deadline:
            print("window not shown", file=sys.stderr, flush=True)
            return 1
        await asyncio.sleep(0.05)
    print("window shown", flush=True)
    return 0


async def run(paths: Sequence[Path] = (), *, smoke: bool = False) -> int:
    """The app's life: returns when the window closed and everything stopped.

    `smoke` only shows the window and quits (no demo registry, no resumed transfers)."""
    ctx = AppContext.create()
    window = MainWindow(ctx)
    install_excepthook(lambda: window)
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def window_closed() -> None:
        if not closed.done():
            closed.set_result(None)

    window.closing.connect(window_closed)
    window.show()
    if smoke:
        try:
            return await smoke_test(window)
        finally:
            window.close()
            await window.aclose()
            await shutdown(ctx)
    ends_session = watch_session_end(window)
    try:
        await start(ctx, window)
        if paths:
            window.add_sources(list(paths))
        await closed
    finally:
        try:  # a second signal meanwhile changes nothing: the wait is bounded anyway
            await window.aclose()
            await shutdown(ctx)
        finally:
            ends_session()
    return 0


def watch_session_end(window: MainWindow) -> Callable[[], None]:
    """End the session without asking on SIGTERM, SIGHUP, SIGINT and the desktop's logout
    (`commitDataRequest`), or when Qt is about to quit. Returns what stops watching."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in SESSION_SIGNALS:
        try:
            loop.add_signal_handler(sig, window.end_session)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows; not the main thread
            continue
        installed.append(sig)
    app = QGuiApplication.instance()
    assert isinstance(app, QGuiApplication)

    def session_ends(*_args: object) -> None:  # commitDataRequest passes its QSessionManager
        window.end_session()

    app.commitDataRequest.connect(session_ends)
    app.aboutToQuit.connect(session_ends)

    def stop() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)
        app.commitDataRequest.disconnect(session_ends)
        app.aboutToQuit.disconnect(session_ends)

    return stop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hoist-gui", description="Hoist's desktop window")
    parser.add_argument("--version", action="version", version=f"hoist {__version__}")
    parser.add_argument("paths", nargs="*", type=Path, help="files or images to push")
    parser.add_argument("--smoke-test", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import qasync

    setup_logging()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Hoist")
    app.setApplicationDisplayName("Hoist")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("hoist")
    app.setWindowIcon(icons.app_icon())
    # The window's close starts an orderly shutdown; Qt must not leave the loop before it ends.
    app.setQuitOnLastWindowClosed(False)
    install_excepthook(lambda: None)
    collector = GuiThreadGarbageCollector(app)
    collector.start()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    install_loop_exception_handler(loop)
    try:
        with loop:
            status: int = loop.run_until_complete(run(args.paths, smoke=args.smoke_test))
            return status
    finally:
        collector.stop()


if __name__ == "__main__":
    sys.exit(main())
