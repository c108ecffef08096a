"""Queue listeners that tell the window's parts what the transfer queue did.

`FinishNotifier` decides which ended transfers deserve a notification; `BrowseFollower` shows
in the Browse area how the downloads it started go, and lists a push there once it is done.
Each is a plain callable `(kind, item)` appended to `TransferQueue.listeners`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hoist.core.transfer.model import Download, Push, TransferState
from hoist.core.transfer.queue import TransferItem
from hoist.core.units import format_size
from hoist.gui.browse.pane import BrowsePane

#: A transfer that ran at least this long gets a notification when it ends.
LONG_TRANSFER = 60.0


class FinishNotifier:
    """Decides which ended transfers deserve a notification: those that ran a long time.

    A queue listener (no Qt). `notify(title, message, failed)` shows it.
    """

    def __init__(
        self,
        notify: Callable[[str, str, bool], None],
        *,
        threshold: float = LONG_TRANSFER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notify = notify
        self.threshold = threshold
        self.clock = clock
        self._started: dict[str, float] = {}
        self._states: dict[str, TransferState] = {}

    def __call__(self, kind: str, item: TransferItem) -> None:
        if kind == "removed":
            self._started.pop(item.id, None)
            self._states.pop(item.id, None)
            return
        state = item.state
        before = self._states.get(item.id)
        self._states[item.id] = state
        if state == TransferState.RUNNING:
            self._started.setdefault(item.id, self.clock())
            return
        if state == before or state not in (TransferState.DONE, TransferState.FAILED):
            return
        started = self._started.pop(item.id, None)
        if started is None or self.clock() - started < self.threshold:
            return
        transfer = item.transfer
        what = "Download" if isinstance(transfer, Download) else "Push"
        if state == TransferState.DONE:
            where = transfer.goes_to
            self.notify(f"{what} finished", f"{transfer.name} is in {where}", False)
        else:
            self.notify(f"{what} failed", f"{transfer.name}: {transfer.error or 'failed'}", True)


def browse_download_text(item: TransferItem, percent: int) -> str:
    """What Browse says of a download it started, as it goes."""
    transfer = item.transfer
    name = transfer.name
    folder = transfer.destination if isinstance(transfer, Download) else ""
    state = item.state
    if state == TransferState.DONE:
        return f"Downloaded {name} to {folder}"
    if state == TransferState.FAILED:
        return f"The download of {name} failed: {transfer.error}. Retry it in Transfers."
    if state == TransferState.PAUSED:
        return f"The download of {name} is paused at {percent}%: resume it in Transfers"
    if not item.total:
        return f"Downloading {name} to {folder}: reading the manifest"
    done = f"{format_size(item.acknowledged)} of {format_size(item.total)} ({percent}%)"
    return f"Downloading {name} to {folder}: {done}; see Transfers"


class BrowseFollower:
    """A queue listener linking Browse to the queue: once a push is done, Browse lists it
    (the catalog and tags it shows are re-read); a download Browse started is followed
    there as it goes (when its percent changes)."""

    def __init__(self, pane: BrowsePane) -> None:
        self.pane = pane
        self._pushes_done: set[str] = set()
        #: Downloads Browse started → the (state, percent) it shows for each.
        self._downloads: dict[str, tuple[str, int]] = {}

    def follow(self, item: TransferItem) -> None:
        """Show in Browse how this download goes."""
        self._downloads[item.id] = ("", -1)
        self._follow_download("changed", item)

    def __call__(self, kind: str, item: TransferItem) -> None:
        self._refresh_after_push(kind, item)
        self._follow_download(kind, item)

    def _refresh_after_push(self, kind: str, item: TransferItem) -> None:
        """Once a push is done, Browse lists it (the catalog and tags it shows are re-read)."""
        transfer = item.transfer
        if kind == "removed":
            self._pushes_done.discard(item.id)
            return
        if kind != "changed" or not isinstance(transfer, Push) or item.state != TransferState.DONE:
            return
        if item.id in self._pushes_done:
            return
        self._pushes_done.add(item.id)
        self.pane.note_pushed(transfer.target)

    def _follow_download(self, kind: str, item: TransferItem) -> None:
        """A queue listener: Browse says how its downloads go (when the percent changes)."""
        if item.id not in self._downloads:
            return
        if kind == "removed":
            del self._downloads[item.id]
            return
        total = item.total
        percent = 100 * item.acknowledged // total if total else 0
        step = (item.state.value, percent)
        if self._downloads[item.id] == step:
            return
        self._downloads[item.id] = step
        self.pane.show_download_progress(browse_download_text(item, percent))
