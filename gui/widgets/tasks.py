"""Background tasks started by widgets: a failure reaches the window, never vanishes.

qasync runs a widget's coroutines as tasks; an exception left in a task nobody awaits is lost.
Every widget's task gets `report_task_failure` as its done callback.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any


def report_task_failure(task: asyncio.Task[Any]) -> None:
    """Done callback: a bug in a background task reaches the window's excepthook (which logs
    it and shows a sentence), rather than vanishing with the task."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        sys.excepthook(type(exc), exc, exc.__traceback__)


def spawn_reported(
    tasks: set[asyncio.Task[Any]], coro: Coroutine[Any, Any, Any]
) -> asyncio.Task[Any]:
    """Run `coro` as a task held in `tasks` until it ends (a task nobody references can be
    collected mid-run), its failure reported (report_task_failure)."""
    task = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    task.add_done_callback(report_task_failure)
    return task
