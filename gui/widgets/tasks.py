"""Background tasks started by widgets: a failure reaches the window, never vanishes.

qasync runs a widget's coroutines as tasks; an exception left in a task nobody awaits is lost.
Every widget's task gets `report_task_failure` as its done callback.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any


def report_task_failure(task: asyncio.Task[Any]) -> None:
    """Done callback: a bug in a background task reaches the window's excepthook (which logs
    it and shows a sentence), rather than vanishing with the task."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        sys.excepthook(type(exc), exc, exc.__traceback__)
