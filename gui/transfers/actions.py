"""The transfer list's actions as data, and what they do (no Qt).

As qutebrowser's `_get_menu_actions`, `transfer_actions` returns (label, shortcut, callable,
enabled) tuples for the current selection, tested without widgets; `TransferController` does
them over the queue, with the window passing clipboard, browse and dialogs as callables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, NamedTuple

from hoist.core.errors import HoistError
from hoist.core.oci.reference import Reference
from hoist.core.transfer.model import Download, Push, TransferState
from hoist.core.transfer.queue import TransferItem, TransferQueue
from hoist.core.units import format_rate, format_size
from hoist.gui.add.planning import reference_text
from hoist.gui.transfers.rows import transfer_name


class ActionSpec(NamedTuple):
    """One action: what the menu shows, its key, what it does, and whether it can now."""

    label: str
    shortcut: str
    callback: Callable[[], None]
    enabled: bool


#: How the context menu groups the actions (separators between groups).
MENU_LAYOUT = (
    ("pause", "resume", "retry"),
    ("cancel", "remove"),
    ("move_top", "move_up", "move_down", "rate_limit"),
    ("copy", "browse", "open_folder"),
    ("pause_all", "resume_all"),
)
#: The per-item actions (the view owns these shortcuts; the window owns pause/resume all).
ITEM_ACTIONS = (
    "pause", "resume", "retry", "cancel", "remove",
    "move_top", "move_up", "move_down", "rate_limit",
    "copy", "browse", "open_folder",
)  # fmt: skip

SHORTCUTS = {
    "pause": "Ctrl+P",
    "resume": "Ctrl+R",
    "retry": "Ctrl+T",
    "cancel": "Shift+Del",
    "remove": "Del",
    "copy": "Ctrl+C",
    "browse": "Ctrl+B",
    "open_folder": "Ctrl+E",
    "move_top": "Ctrl+Home",
    "move_up": "Ctrl+Up",
    "move_down": "Ctrl+Down",
    "rate_limit": "Ctrl+L",
    "pause_all": "Ctrl+Shift+P",
    "resume_all": "Ctrl+Shift+R",
}


#: The letter each action's menu item is chosen by (Alt+letter in the open menu), unique
#: within the Transfers menu.
ACCELERATORS = {
    "pause": "p", "resume": "r", "retry": "y", "cancel": "c", "remove": "m",
    "move_top": "t", "move_up": "u", "move_down": "d", "rate_limit": "l",
    "copy": "o", "browse": "b", "open_folder": "f", "pause_all": "a", "resume_all": "e",
}  # fmt: skip


def with_accelerator(label: str, letter: str) -> str:
    """`label` with `&` before the first `letter` (any case): "Re&try"."""
    at = label.lower().find(letter.lower())
    return f"{label[:at]}&{label[at:]}" if at >= 0 else label


class TransferController:
    """What the actions do, over the queue (no Qt: the window passes clipboard and browse).

    Args:
        copy_text: puts text on the clipboard.
        show_in_browse: opens the Browse area at a reference (None: no Browse area).
        on_error: shows a sentence to the user.
        open_folder: shows a folder in the file manager (None: none can be opened).
        confirm: asks (question, what it means) and answers whether to go on; Cancel asks
            it first (None: no question, for callers without a window).
        ask_rate: asks a transfer's own cap (bytes/s, 0: none; None when the user cancels).
    """

    def __init__(
        self,
        queue: TransferQueue,
        *,
        copy_text: Callable[[str], None],
        show_in_browse: Callable[[Reference], None] | None = None,
        on_error: Callable[[str], None] = lambda text: None,
        open_folder: Callable[[str], None] | None = None,
        confirm: Callable[[str, str], Awaitable[bool]] | None = None,
        ask_rate: Callable[[TransferItem], Awaitable[int | None]] | None = None,
    ) -> None:
        self.queue = queue
        self.confirm = confirm
        self.ask_rate = ask_rate
        self.copy_text = copy_text
        self.show_in_browse_cb = show_in_browse
        self.on_error = on_error
        self.open_folder_cb = open_folder
        self.tasks: set[asyncio.Task[None]] = set()

    def pause(self, items: Iterable[TransferItem]) -> None:
        for item in items:
            if item.state in (TransferState.RUNNING, TransferState.QUEUED):
                self.queue.pause(item.id)

    def resume(self, items: Iterable[TransferItem]) -> None:
        for item in items:
            if item.state == TransferState.PAUSED:
                self.queue.resume(item.id)

    def retry(self, items: Iterable[TransferItem]) -> None:
        for item in items:
            if item.state == TransferState.FAILED:
                self.queue.retry(item.id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cancel(self, items: Iterable[TransferItem]) -> None:
        """Ask (saying what will be lost), then cancel in the background (it DELETEs upload
        sessions); errors become sentences. A finished transfer has nothing to cancel."""
        chosen = [item for item in items if item.state != TransferState.DONE]
        if chosen:
            self._spawn(self._confirm_and_cancel(chosen))

    async def _confirm_and_cancel(self, items: Sequence[TransferItem]) -> None:
        if self.confirm is not None and not await self.confirm(*cancel_question(items)):
            return
        for item in items:
            await self._cancel(item.id)

    async def _cancel(self, transfer_id: str) -> None:
        try:
            await self.queue.cancel(transfer_id)
        except KeyError:
            pass  # removed meanwhile
        except HoistError as exc:
            self.on_error(exc.sentence(window=True))

    def remove(self, items: Iterable[TransferItem]) -> None:
        for item in list(items):
            try:
                self.queue.remove(item.id)
            except KeyError:
                pass
            except HoistError as exc:
                self.on_error(exc.sentence(window=True))

    def copy_reference(self, items: Sequence[TransferItem]) -> None:
        self.copy_text("\n".join(reference_text(item.transfer) for item in items))

    def show_in_browse(self, item: TransferItem) -> None:
        if self.show_in_browse_cb is not None:
            self.show_in_browse_cb(item.transfer.pinned_reference)

    def open_folder(self, item: TransferItem) -> None:
        transfer = item.transfer
        if self.open_folder_cb is not None and isinstance(transfer, Download):
            try:
                self.open_folder_cb(transfer.destination)
            except HoistError as exc:
                self.on_error(exc.sentence(window=True))

    def move(self, items: Sequence[TransferItem], where: str) -> None:
        """Move the chosen transfers up, down or to the top, keeping their own order."""
        ordered = list(items)
        if where in ("down", "top"):
            ordered.reverse()
        for item in ordered:
            self.queue.move(item.id, where)

    def set_rate_limit(self, items: Sequence[TransferItem]) -> None:
        """Ask for the first transfer's own cap, then give it to every chosen transfer."""
        if items and self.ask_rate is not None:
            self._spawn(self._set_rate_limit(list(items)))

    async def _set_rate_limit(self, items: Sequence[TransferItem]) -> None:
        assert self.ask_rate is not None
        rate = await self.ask_rate(items[0])
        if rate is None:
            return
        for item in items:
            try:
                self.queue.set_rate_limit(item.id, rate)
            except KeyError:
                pass  # removed meanwhile

    def pause_all(self) -> None:
        self.queue.pause_all()

    def resume_all(self) -> None:
        self.queue.resume_all()


def cancel_label(items: Sequence[TransferItem]) -> str:
    """What Cancel throws away: the upload session, or the partial files of a download."""
    downloads = sum(1 for item in items if isinstance(item.transfer, Download))
    if not downloads:
        return "Cancel and delete the upload"
    if downloads == len(items):
        return "Cancel and delete the partial download"
    return "Cancel and discard the partial work"


def cancel_question(items: Sequence[TransferItem]) -> tuple[str, str]:
    """(question, what will be lost) before a cancel: hours of upload must not go in a click."""
    if len(items) == 1:
        question = f"Cancel {transfer_name(items[0])}?"
    else:
        question = f"Cancel {len(items)} transfers?"
    pushed = sum(item.acknowledged for item in items if isinstance(item.transfer, Push))
    fetched = sum(item.acknowledged for item in items if isinstance(item.transfer, Download))
    lost: list[str] = []
    if pushed:
        lost.append(
            f"{format_size(pushed)} already uploaded is thrown away: the registry deletes "
            "the upload session, and a new push starts from the beginning."
        )
    if fetched:
        lost.append(
            f"{format_size(fetched)} already downloaded is deleted (the .partial files); "
            "finished files are kept."
        )
    if not lost:
        lost.append("Nothing was sent yet; the transfer is removed from the list.")
    lost.append("Pause instead to keep what was sent.")
    return question, " ".join(lost)


def transfer_actions(
    selected: Sequence[TransferItem],
    all_items: Sequence[TransferItem],
    controller: TransferController,
) -> dict[str, ActionSpec]:
    """Every action for the current selection, as data (ordered as in the menu)."""
    states = [item.state for item in selected]
    active = (TransferState.RUNNING, TransferState.QUEUED)
    chosen = list(selected)
    one = len(chosen) == 1
    browse = controller.show_in_browse_cb is not None
    return {
        "pause": ActionSpec(
            "Pause", SHORTCUTS["pause"], lambda: controller.pause(chosen),
            any(s in active for s in states),
        ),
        "resume": ActionSpec(
            "Resume", SHORTCUTS["resume"], lambda: controller.resume(chosen),
            TransferState.PAUSED in states,
        ),
        "retry": ActionSpec(
            "Retry", SHORTCUTS["retry"], lambda: controller.retry(chosen),
            TransferState.FAILED in states,
        ),
        "cancel": ActionSpec(
            cancel_label(chosen), SHORTCUTS["cancel"],
            lambda: controller.cancel(chosen),
            any(s != TransferState.DONE for s in states),
        ),
        "remove": ActionSpec(
            "Remove from list", SHORTCUTS["remove"], lambda: controller.remove(chosen),
            bool(chosen) and not any(item.running for item in chosen),
        ),
        "move_top": ActionSpec(
            "Move to top", SHORTCUTS["move_top"], lambda: controller.move(chosen, "top"),
            bool(chosen) and movable(chosen, all_items, "top"),
        ),
        "move_up": ActionSpec(
            "Move up", SHORTCUTS["move_up"], lambda: controller.move(chosen, "up"),
            bool(chosen) and movable(chosen, all_items, "up"),
        ),
        "move_down": ActionSpec(
            "Move down", SHORTCUTS["move_down"], lambda: controller.move(chosen, "down"),
            bool(chosen) and movable(chosen, all_items, "down"),
        ),
        "rate_limit": ActionSpec(
            rate_limit_label(chosen), SHORTCUTS["rate_limit"],
            lambda: controller.set_rate_limit(chosen),
            bool(chosen) and controller.ask_rate is not None,
        ),
        "copy": ActionSpec(
            "Copy reference", SHORTCUTS["copy"], lambda: controller.copy_reference(chosen),
            bool(chosen),
        ),
        "browse": ActionSpec(
            "Show in Browse", SHORTCUTS["browse"],
            lambda: controller.show_in_browse(chosen[0]) if chosen else None,
            one and browse,
        ),
        "open_folder": ActionSpec(
            "Open download folder", SHORTCUTS["open_folder"],
            lambda: controller.open_folder(chosen[0]) if chosen else None,
            one and isinstance(chosen[0].transfer, Download)
            and controller.open_folder_cb is not None,
        ),
        "pause_all": ActionSpec(
            "Pause all", SHORTCUTS["pause_all"], controller.pause_all,
            any(item.state in active for item in all_items),
        ),
        "resume_all": ActionSpec(
            "Resume all", SHORTCUTS["resume_all"], controller.resume_all,
            any(item.state == TransferState.PAUSED for item in all_items),
        ),
    }  # fmt: skip


def movable(chosen: Sequence[TransferItem], all_items: Sequence[TransferItem], where: str) -> bool:
    """Whether moving `chosen` that way changes the order."""
    ids = [item.id for item in all_items]
    rows = sorted(ids.index(item.id) for item in chosen if item.id in ids)
    if not rows:
        return False
    if where == "down":
        return rows != list(range(len(ids) - len(rows), len(ids)))
    return rows != list(range(len(rows)))


def rate_limit_label(chosen: Sequence[TransferItem]) -> str:
    """ "Rate limit…", with this transfer's own cap when it has one."""
    rate = chosen[0].limiter.rate if len(chosen) == 1 else 0
    return f"Rate limit ({format_rate(rate)})…" if rate else "Rate limit…"
