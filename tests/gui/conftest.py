"""GUI fixtures: a qasync loop on pytest-qt's QApplication, isolated credentials, a window.

pytest-qt has no qasync support, so (as qasync's own tests/test_qeventloop.py does) a
`QEventLoop(qapp)` is made the current loop and each test drives its scenario, written as a
coroutine, with `loop.run_until_complete`: Qt's events (drops, clicks, timers) and asyncio's
callbacks are processed by the same loop while it runs. Waiting is done with `aio.until()`,
an awaitable poll: qtbot.waitUntil would spin a nested Qt loop inside a running task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from hoist.gui.app import GuiThreadGarbageCollector

T = TypeVar("T")


@pytest.fixture(autouse=True)
def isolated_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the real user's keyring, docker config or demo registry data."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(home / "auth.json"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    monkeypatch.setenv("HOIST_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def loop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """A qasync event loop bound to qtbot's QApplication, current for the test."""
    # Closing the last window must not make Qt leave the loop under a running coroutine.
    qapp.setQuitOnLastWindowClosed(False)
    # As in the app: Qt objects in reference cycles are collected in the GUI thread only.
    collector = GuiThreadGarbageCollector()
    collector.start()
    event_loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(event_loop)
    try:
        yield event_loop
    finally:
        pending = [t for t in asyncio.all_tasks(event_loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            event_loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        event_loop.run_until_complete(event_loop.shutdown_asyncgens())
        event_loop.close()
        asyncio.set_event_loop(None)
        collector.stop()
        collector.deleteLater()


class Driver:
    """Runs scenarios on the qasync loop and waits inside them (the `aio` fixture)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Drive a test scenario to its end, then let background work settle.

        When `run_until_complete` returns, qasync processes Qt's pending events once more,
        with no running loop: a task still in flight would take a step there and fail. So
        the scenario's background tasks (a Browse area connecting, a settings save) get up
        to `SETTLE` seconds to finish first.
        """
        return self.loop.run_until_complete(self._run(coro, timeout))

    SETTLE = 3.0

    async def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        result = await asyncio.wait_for(coro, timeout)
        me = asyncio.current_task()
        deadline = time.monotonic() + self.SETTLE
        while time.monotonic() < deadline:
            if all(t is me or t.done() for t in asyncio.all_tasks()):
                break
            await asyncio.sleep(0.02)
        return result

    @staticmethod
    async def until(
        condition: Callable[[], object], timeout: float = 30.0, what: str = "condition"
    ) -> None:
        """Wait, letting Qt and asyncio run, until `condition()` is true."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.02)


@pytest.fixture
def aio(loop: asyncio.AbstractEventLoop) -> Driver:
    return Driver(loop)
