"""The transfer list: TransferQueue → TransferModel → filter proxy → TransferView + delegate.

As qutebrowser's downloads (`browser/downloads.py`, `downloadview.py`): the engine's objects
(TransferItem) are observed by a model, never copied into widgets. The queue's listener only
marks rows dirty; a timer repaints dirty rows a few times a second, so a fast upload with many
chunk events costs the UI almost nothing.

The per-item actions are built as data first (`transfer_actions` returns (label, shortcut,
callable, enabled) tuples, as qutebrowser's `_get_menu_actions`), tested without widgets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any, NamedTuple

from hoist.core.errors import HoistError
from hoist.core.oci.reference import Reference
from hoist.core.progress import BlobEvent, BlobState
from hoist.core.transfer.model import Download, DownloadPart, Push, TransferState
from hoist.core.transfer.queue import TransferItem, TransferQueue
from hoist.core.transfer.upload import BlobRecord
from hoist.core.units import format_duration, format_rate, format_size
from hoist.gui.add.planning import blob_label, reference_text, short_digest
from hoist.gui.widgets import icons
from hoist.gui.widgets.theme import CELL_PADDING, PaddedDelegate, paint_progress, tone_color
from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRectF,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QColor,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QPainter,
    QPalette,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QMenu,
    QStyle,
    QStyleOptionViewItem,
    QTreeView,
    QWidget,
)

log = logging.getLogger(__name__)

Index = QModelIndex | QPersistentModelIndex
#: The invisible root (a shared default argument: Qt passes its own when it calls).
ROOT = QModelIndex()


class Column(IntEnum):
    NAME = 0
    TARGET = 1
    PROGRESS = 2
    SPEED = 3
    ETA = 4
    STATUS = 5


HEADERS = ("Name", "Target", "Progress", "Speed", "ETA", "Status")

ItemRole = Qt.ItemDataRole.UserRole + 1  # the TransferItem (top rows)
TransferIdRole = Qt.ItemDataRole.UserRole + 2  # the transfer's id (all rows)
StateRole = Qt.ItemDataRole.UserRole + 3  # TransferState / BlobState value
ProgressRole = Qt.ItemDataRole.UserRole + 4  # fraction 0..1 acknowledged, or None
BlobRole = Qt.ItemDataRole.UserRole + 5  # the blob's name (child rows)
ToneRole = Qt.ItemDataRole.UserRole + 6  # the progress bar's tone: one of theme.TONES
SentRole = Qt.ItemDataRole.UserRole + 7  # fraction 0..1 sent, while running (else None)

#: Repaints per second at most (the queue may report hundreds of chunk events a second).
REFRESH_MS = 250
FILTERS = ("all", "active", "paused", "failed", "done")
FILTER_LABELS = {
    "all": "All",
    "active": "Active",
    "paused": "Paused",
    "failed": "Failed",
    "done": "Done",
}


def matches_filter(name: str, state: str) -> bool:
    """Whether a transfer in `state` shows under the status filter `name`."""
    if name == "all":
        return True
    if name == "active":
        return state in (TransferState.RUNNING, TransferState.QUEUED, TransferState.PAUSING)
    return state == name


def filter_label(name: str, counts: dict[str, int]) -> str:
    """The filter's label with how many transfers it holds: "Failed (2)"."""
    return f"{FILTER_LABELS[name]} ({counts.get(name, 0)})"


def transfer_destination(item: TransferItem) -> str:
    """The Target column: where a transfer's bytes go (a push's reference, a download's
    folder), or what a row standing for an unreadable journal entry is."""
    return "unreadable journal entry" if item.unreadable else item.transfer.goes_to


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def transfer_icon_name(item: TransferItem) -> str:
    state = item.state
    if state == TransferState.RUNNING:
        waiting = any(e.state == BlobState.WAITING for e in item.blobs.values())
        moving = "downloading" if isinstance(item.transfer, Download) else "uploading"
        return "waiting" if waiting else moving
    return {
        TransferState.QUEUED: "waiting",
        TransferState.PAUSED: "paused",
        TransferState.DONE: "done",
        TransferState.FAILED: "failed",
    }.get(state, "paused")


def transfer_tone(item: TransferItem) -> str:
    """How a transfer's progress bar is coloured (see `theme.TONES`)."""
    state = item.state
    if state == TransferState.RUNNING:
        waiting = any(e.state == BlobState.WAITING for e in item.blobs.values())
        return "waiting" if waiting else "active"
    return {
        TransferState.QUEUED: "waiting",
        TransferState.DONE: "done",
        TransferState.FAILED: "failed",
    }.get(state, "paused")


def blob_tone(record: BlobRecord, event: BlobEvent | None, item: TransferItem) -> str:
    """A blob row's tone: its own while the transfer runs, else the transfer's."""
    if record.finished:
        return "done"
    state = blob_state(record, event)
    if state == BlobState.FAILED:
        return "failed"
    if not item.running:
        return transfer_tone(item)
    if state in (BlobState.WAITING, BlobState.PENDING):
        return "waiting"
    return "active"


def blob_acknowledged(record: BlobRecord, event: BlobEvent | None) -> int:
    if record.finished:
        return record.size
    live = event.acknowledged if event is not None else 0
    return max(record.acknowledged, live)


def blob_state(record: BlobRecord, event: BlobEvent | None) -> BlobState:
    if record.finished:
        return record.state
    return event.state if event is not None else record.state


def blob_status_text(record: BlobRecord, event: BlobEvent | None, item: TransferItem) -> str:
    """A blob row's state as a person reads it."""
    state = blob_state(record, event)
    if state == BlobState.EXISTS:
        return "already in the registry"
    if state == BlobState.MOUNTED:
        source = record.mounted_from
        return f"mounted from {source}" if source else "mounted"
    if state == BlobState.DONE:
        return "done"
    if not item.running:
        if item.state == TransferState.FAILED and event is not None and event.message:
            return f"failed: {event.message}"
        acked = blob_acknowledged(record, event)
        if acked and record.size:
            return f"paused at {100 * acked // record.size}%"
        return "waiting" if item.state == TransferState.QUEUED else "not started"
    if state == BlobState.WAITING and event is not None:
        reason = event.message or "waiting"
        return f"{reason}, retry in {int(event.retry_in or 0)} s"
    if state == BlobState.HASHING:
        return "checking the part already uploaded"
    if state == BlobState.FINALIZING:
        return "the registry is committing it"
    if state == BlobState.FAILED:
        return f"failed: {event.message}" if event is not None and event.message else "failed"
    if state == BlobState.PENDING:
        return "waiting"
    return state.value


def part_tone(part: DownloadPart, event: BlobEvent | None, item: TransferItem) -> str:
    """A download part's tone, as `blob_tone` for an upload's blob."""
    if part.finished:
        return "done"
    state = event.state if event is not None else part.state
    if state == BlobState.FAILED:
        return "failed"
    if not item.running:
        return transfer_tone(item)
    return "waiting" if state in (BlobState.WAITING, BlobState.PENDING) else "active"


def part_status_text(part: DownloadPart, event: BlobEvent | None, item: TransferItem) -> str:
    """A download part's state as a person reads it."""
    state = event.state if event is not None and item.running else part.state
    if state == BlobState.EXISTS:
        return "already downloaded"
    if state == BlobState.DONE:
        return "done"
    if not item.running:
        if part.received and part.size:
            return f"paused at {100 * part.received // part.size}%"
        return "waiting" if item.state == TransferState.QUEUED else "not started"
    if state == BlobState.WAITING and event is not None:
        return f"{event.message or 'waiting'}, retry in {int(event.retry_in or 0)} s"
    if state == BlobState.HASHING:
        return "checking the part already downloaded"
    if state == BlobState.PENDING:
        return "waiting"
    return state.value


def transfer_name(item: TransferItem) -> str:
    names = item.transfer.name.split(", ")
    if len(names) > 3:
        return f"{', '.join(names[:2])} and {len(names) - 2} more"
    return item.transfer.name


class _BlobRow:
    """A push's child row: one blob, from its journal record and its last event."""

    moving = BlobState.UPLOADING

    def __init__(self, item: TransferItem, transfer: Push, row: int) -> None:
        self.item = item
        self.transfer = transfer
        self.row = row
        self.record = transfer.blobs[row]
        self.event = item.blobs.get(self.record.name)
        self.key = self.record.name
        self.state = blob_state(self.record, self.event)
        self.done = blob_acknowledged(self.record, self.event)
        self.sent = self.done if self.record.finished else max(self.done, item.blob_sent(self.key))
        self.size = self.record.size
        self.finished = self.record.finished

    def tone(self) -> str:
        return blob_tone(self.record, self.event, self.item)

    def status(self) -> str:
        return blob_status_text(self.record, self.event, self.item)

    def name(self) -> str:
        return blob_label(self.record, self.row, self.transfer)

    def target(self) -> str:
        return short_digest(self.record.digest)

    def tip(self) -> str:
        return self.record.digest or self.record.name


class _PartRow:
    """A download's child row: one blob it fetches, as its journal record keeps it."""

    moving = BlobState.DOWNLOADING

    def __init__(self, item: TransferItem, transfer: Download, row: int) -> None:
        self.item = item
        self.transfer = transfer
        self.part = transfer.parts[row]
        self.event = item.blobs.get(self.part.name)
        self.key = self.part.name
        self.state = self.part.state
        self.done = self.part.received
        self.sent = self.done
        self.size = self.part.size
        self.finished = self.part.finished

    def tone(self) -> str:
        return part_tone(self.part, self.event, self.item)

    def status(self) -> str:
        return part_status_text(self.part, self.event, self.item)

    def name(self) -> str:
        return self.part.name

    def target(self) -> str:  # a split file's part: the file it joins
        return Path(self.part.file).name if self.part.kind == "split" else ""

    def tip(self) -> str:  # the file it becomes (a folder, not its hidden archive)
        if self.part.kind == "folder":
            return str(Path(self.transfer.destination).joinpath(self.part.name))
        return self.part.file


class TransferModel(QAbstractItemModel):
    """A tree: one row per transfer, with one child row per blob when it has several.

    Rows follow `queue.items` (structure changes are applied at once, as Qt requires); value
    changes only mark a row dirty and are emitted by a timer at most `REFRESH_MS` apart.

    Signals:
        totals_changed(): after each refresh (for the status bar's totals).
        counts_changed(dict): the per-filter counts changed (all, active, paused, failed, done).
    """

    totals_changed = Signal()
    counts_changed = Signal(dict)

    def __init__(
        self, queue: TransferQueue, parent: QObject | None = None, *, interval: int = REFRESH_MS
    ) -> None:
        super().__init__(parent)
        self.queue = queue
        self._ids: list[str] = []
        self._items: dict[str, TransferItem] = {}
        self._keys: dict[str, int] = {}
        self._by_key: dict[int, str] = {}
        self._children: dict[str, int] = {}
        self._next_key = 1
        self._dirty: set[str] = set()
        self._counts: dict[str, int] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(interval)
        self._timer.timeout.connect(self.flush)
        for item in queue.items:
            self._append(item)
        self._counts = self.counts()
        queue.listeners.append(self._on_queue)

    def detach(self) -> None:
        """Stop listening to the queue (before the model goes away)."""
        if self._on_queue in self.queue.listeners:
            self.queue.listeners.remove(self._on_queue)
        self._timer.stop()

    # -- following the queue ----------------------------------------------------------------

    def _append(self, item: TransferItem) -> None:
        self._ids.append(item.id)
        self._items[item.id] = item
        key = self._next_key
        self._next_key += 1
        self._keys[item.id] = key
        self._by_key[key] = item.id
        self._children[item.id] = self._child_count(item)

    @staticmethod
    def _child_count(item: TransferItem) -> int:
        """A row per blob (or per downloaded blob) when there are several; a download learns
        its blobs from the manifest, so its children appear once it has run."""
        transfer = item.transfer
        blobs = len(transfer.parts) if isinstance(transfer, Download) else len(transfer.blobs)
        return blobs if blobs > 1 else 0

    def _on_queue(self, kind: str, item: TransferItem) -> None:
        if kind == "added":
            if item.id in self._items:
                return
            row = len(self._ids)
            self.beginInsertRows(QModelIndex(), row, row)
            self._append(item)
            self.endInsertRows()
            self._mark(item.id)
        elif kind == "removed":
            if item.id not in self._items:
                return
            row = self._ids.index(item.id)
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._ids[row]
            del self._items[item.id]
            del self._children[item.id]
            self._by_key.pop(self._keys.pop(item.id), None)
            self._dirty.discard(item.id)
            self.endRemoveRows()
            self._emit_counts()
            self.totals_changed.emit()
        elif kind == "changed":
            self._mark(item.id)
        elif kind == "moved":
            self._move(item)

    def _move(self, item: TransferItem) -> None:
        """Follow the queue's new order (rows keep their keys, so children stay attached)."""
        if item.id not in self._items:
            return
        old = self._ids.index(item.id)
        order = [i.id for i in self.queue.items if i.id in self._items]
        new = order.index(item.id)
        if new == old:
            return
        # Qt's destination is the row before which the moved row lands, counted before it goes.
        self.beginMoveRows(QModelIndex(), old, old, QModelIndex(), new + 1 if new > old else new)
        self._ids.insert(new, self._ids.pop(old))
        self.endMoveRows()

    def _mark(self, transfer_id: str) -> None:
        self._dirty.add(transfer_id)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Emit dataChanged for every dirty row (the timer calls this; tests may too)."""
        running = {tid for tid, item in self._items.items() if item.running}
        dirty = (self._dirty | running) & set(self._items)
        self._dirty.clear()
        last = len(HEADERS) - 1
        for tid in dirty:
            item = self._items[tid]
            children = self._child_count(item)
            if children != self._children[tid]:
                self._reset_children(tid, children)
            row = self._ids.index(tid)
            self.dataChanged.emit(self.index(row, 0), self.index(row, last))
            if children:
                parent = self.index(row, 0)
                self.dataChanged.emit(
                    self.index(0, 0, parent), self.index(children - 1, last, parent)
                )
        if dirty:
            self._emit_counts()
            self.totals_changed.emit()
        if not running and not self._dirty:
            self._timer.stop()

    def _reset_children(self, tid: str, count: int) -> None:
        parent = self.index(self._ids.index(tid), 0)
        old = self._children[tid]
        if old:
            self.beginRemoveRows(parent, 0, old - 1)
            self._children[tid] = 0
            self.endRemoveRows()
        if count:
            self.beginInsertRows(parent, 0, count - 1)
            self._children[tid] = count
            self.endInsertRows()

    def _emit_counts(self) -> None:
        counts = self.counts()
        if counts != self._counts:
            self._counts = counts
            self.counts_changed.emit(dict(counts))

    # -- queries ----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(FILTERS, 0)
        for item in self._items.values():
            for name in FILTERS:
                if matches_filter(name, item.state):
                    out[name] += 1
        return out

    def totals(self) -> tuple[int, int, float, int]:
        """(bytes acknowledged, bytes in all, bytes/s now, transfers running) over unfinished
        transfers, for the status bar."""
        done = total = running = 0
        rate = 0.0
        for item in self._items.values():
            if item.state in (TransferState.DONE, TransferState.CANCELLED):
                continue
            done += item.acknowledged
            total += item.total
            if item.running:
                running += 1
                rate += item.rate or 0.0
        return done, total, rate, running

    def item_at(self, index: Index) -> TransferItem | None:
        """The transfer of a row (a child row gives its parent's)."""
        if not index.isValid():
            return None
        key = int(index.internalId())
        tid = self._by_key.get(key) if key else self._ids[index.row()]
        return self._items.get(tid) if tid else None

    def index_of(self, transfer_id: str) -> QModelIndex:
        try:
            return self.index(self._ids.index(transfer_id), 0)
        except ValueError:
            return QModelIndex()

    # -- QAbstractItemModel -----------------------------------------------------------------

    def index(self, row: int, column: int, parent: Index = ROOT) -> QModelIndex:
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0)
        if parent.internalId() == 0:
            tid = self._ids[parent.row()]
            return self.createIndex(row, column, self._keys[tid])
        return QModelIndex()

    def parent(
        self, child: Index | None = None
    ) -> Any:  # Qt's parent(index), or QObject's parent()
        if child is None:
            return super().parent()  # QObject.parent()
        if not child.isValid():
            return QModelIndex()
        key = int(child.internalId())
        if key == 0:
            return QModelIndex()
        tid = self._by_key.get(key)
        if tid is None:
            return QModelIndex()
        return self.createIndex(self._ids.index(tid), 0, 0)

    def rowCount(self, parent: Index = ROOT) -> int:
        if not parent.isValid():
            return len(self._ids)
        if parent.column() != 0 or parent.internalId() != 0:
            return 0
        return self._children[self._ids[parent.row()]]

    def columnCount(self, parent: Index = ROOT) -> int:
        return len(HEADERS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            # Numbers are right-aligned: so are their headings.
            right = section in (Column.SPEED, Column.ETA)
            horizontal = Qt.AlignmentFlag.AlignRight if right else Qt.AlignmentFlag.AlignLeft
            return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        key = int(index.internalId())
        if key == 0:
            item = self._items[self._ids[index.row()]]
            return self._transfer_data(item, index.column(), role)
        tid = self._by_key.get(key)
        if tid is None:
            return None
        item = self._items[tid]
        transfer = item.transfer
        row = index.row()
        child: _BlobRow | _PartRow
        if isinstance(transfer, Download):
            if row >= len(transfer.parts):
                return None
            child = _PartRow(item, transfer, row)
        else:
            if row >= len(transfer.blobs):
                return None
            child = _BlobRow(item, transfer, row)
        return self._child_data(item, child, index.column(), role)

    def _transfer_data(self, item: TransferItem, column: int, role: int) -> Any:
        transfer = item.transfer
        if role == TransferIdRole:
            return item.id
        if role == ItemRole:
            return item
        if role == StateRole:
            return item.state.value
        if role == ProgressRole:
            return self._fraction(item.acknowledged, item.total, item.state == TransferState.DONE)
        if role == SentRole:
            return self._fraction(item.sent, item.total, False) if item.running else None
        if role == ToneRole:
            return transfer_tone(item)
        if role == Qt.ItemDataRole.DecorationRole and column == Column.NAME:
            return icons.icon(transfer_icon_name(item))
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == Column.NAME:
                return transfer.comes_from
            if column == Column.TARGET:
                pushed = isinstance(transfer, Push) and not item.unreadable
                return reference_text(transfer) if pushed else transfer_destination(item)
            if column == Column.PROGRESS:
                return self._progress_tip(item, item.sent, item.acknowledged)
            if column == Column.STATUS:
                text = capitalized(item.status_text())
                return (
                    f"{text}\n{item.message}" if item.message and item.message not in text else text
                )
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (Column.SPEED, Column.ETA):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column == Column.NAME:
            return transfer_name(item)
        if column == Column.TARGET:
            return transfer_destination(item)
        if column == Column.PROGRESS:
            return self._progress_text(item.sent, item.total)
        if column == Column.SPEED:
            rate = item.rate
            return format_rate(rate) if item.running and rate else ""
        if column == Column.ETA:
            return format_duration(item.eta) if item.running else ""
        if column == Column.STATUS:
            return capitalized(item.status_text())
        return None

    def _child_data(
        self, item: TransferItem, child: _BlobRow | _PartRow, column: int, role: int
    ) -> Any:
        if role == TransferIdRole:
            return item.id
        if role == BlobRole:
            return child.key
        if role == StateRole:
            return child.state.value
        if role == ProgressRole:
            return self._fraction(child.done, child.size, child.finished)
        if role == SentRole:
            return self._fraction(child.sent, child.size, False) if item.running else None
        if role == ToneRole:
            return child.tone()
        if role == Qt.ItemDataRole.ToolTipRole:
            if column in (Column.NAME, Column.TARGET):
                return child.tip()
            if column == Column.PROGRESS:
                return self._progress_tip(item, child.sent, child.done)
            if column == Column.STATUS:
                return child.status()
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (Column.SPEED, Column.ETA):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        event = child.event
        moving = item.running and event is not None and event.state == child.moving
        if column == Column.NAME:
            return child.name()
        if column == Column.TARGET:
            return child.target()
        if column == Column.PROGRESS:
            return self._progress_text(child.sent, child.size)
        if column == Column.SPEED:
            return format_rate(event.rate) if moving and event and event.rate else ""
        if column == Column.ETA:
            return format_duration(event.eta) if moving and event else ""
        if column == Column.STATUS:
            return capitalized(child.status())
        return None

    @staticmethod
    def _fraction(done: int, total: int, finished: bool) -> float:
        if total <= 0:
            return 1.0 if finished else 0.0
        return min(1.0, done / total)

    @staticmethod
    def _progress_tip(item: TransferItem, sent: int, acknowledged: int) -> str | None:
        """Both counts, honestly named: sent (in flight included) and acknowledged (kept
        whatever happens next)."""
        if isinstance(item.transfer, Download):
            return None
        return f"{format_size(sent)} sent, {format_size(acknowledged)} acknowledged by the registry"

    @staticmethod
    def _progress_text(done: int, total: int) -> str:
        if total <= 0:
            return format_size(done)
        return f"{format_size(done)} / {format_size(total)} ({100 * done // total}%)"


class TransferFilterProxy(QSortFilterProxyModel):
    """Shows the transfers of one status filter (all, active, paused, failed, done).

    Only top rows are filtered; a shown transfer shows all its blobs.

    Signals:
        counts_changed(dict): forwarded from the model, for the filter's labels.
    """

    counts_changed = Signal(dict)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._status = "all"

    def setSourceModel(self, model: QAbstractItemModel) -> None:
        old = self.sourceModel()
        if isinstance(old, TransferModel):
            old.counts_changed.disconnect(self.counts_changed)
        super().setSourceModel(model)
        if isinstance(model, TransferModel):
            model.counts_changed.connect(self.counts_changed)

    def status_filter(self) -> str:
        return self._status

    def set_status_filter(self, name: str) -> None:
        if name not in FILTERS:
            raise ValueError(f"unknown status filter {name!r}")
        if name != self._status:
            self.beginFilterChange()
            self._status = name
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def counts(self) -> dict[str, int]:
        model = self.sourceModel()
        return model.counts() if isinstance(model, TransferModel) else {}

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if source_parent.isValid():
            return True
        model = self.sourceModel()
        state = model.index(source_row, 0, source_parent).data(StateRole)
        return matches_filter(self._status, str(state))


class TransferDelegate(PaddedDelegate):
    """The transfer list's cells: padded, blob rows quieter, a failure's status in red."""

    def text_color(self, index: Index, palette: QPalette) -> QColor | None:
        if index.column() == Column.STATUS and index.data(ToneRole) == "failed":
            return tone_color("failed", palette)
        return super().text_color(index, palette)


class ProgressDelegate(TransferDelegate):
    """Paints ProgressRole as a calm bar (`theme.paint_progress`) coloured by ToneRole, with
    the row's text (bytes done / total and the percentage) on it."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        fraction = index.data(ProgressRole)
        if fraction is None:
            super().paint(painter, option, index)
            return
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        # The selection/hover background first, as any other cell.
        background = QStyleOptionViewItem(option)
        self.initStyleOption(background, index)
        background.text = ""
        style.drawPrimitive(
            QStyle.PrimitiveElement.PE_PanelItemViewItem, background, painter, widget
        )
        # The bar keeps its own colours on a selected row (it has its own groove).
        palette = widget.palette() if widget is not None else option.palette
        rect = QRectF(option.rect.adjusted(CELL_PADDING, 3, -CELL_PADDING, -3))
        tone = str(index.data(ToneRole) or "active")
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        sent = index.data(SentRole)
        paint_progress(
            painter, rect, float(fraction), tone, text, palette,
            sent=None if sent is None else float(sent),
        )  # fmt: skip


# -- actions as data ---------------------------------------------------------------------------


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


class TransferView(QTreeView):
    """The transfer tree with its progress bars, actions, shortcuts and context menu.

    Args:
        model: the TransferModel (the view shows it through `proxy`, a TransferFilterProxy).
        controller: what the actions do.
    """

    def __init__(
        self,
        model: TransferModel,
        controller: TransferController,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.transfer_model = model
        self.controller = controller
        self.proxy = TransferFilterProxy(self)
        self.proxy.setSourceModel(model)
        self.setModel(self.proxy)
        self.setObjectName("transfers")
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setAllColumnsShowFocus(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setItemDelegate(TransferDelegate(self, quiet_children=True))
        self.setItemDelegateForColumn(Column.PROGRESS, ProgressDelegate(self, quiet_children=True))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._show_menu)
        header = self.header()
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self._fitted: dict[int, int] = {}  # the widths `fit_columns` set last
        self.set_column_widths()
        self.qactions: dict[str, QAction] = {}
        #: pause all / resume all, owned by the window, shown in the context menu too.
        self.global_actions: dict[str, QAction] = {}
        for key in ITEM_ACTIONS:
            action = QAction(self)
            action.setShortcut(QKeySequence(SHORTCUTS[key]))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _checked=False, k=key: self.trigger(k))
            self.addAction(action)
            self.qactions[key] = action
        self.selectionModel().selectionChanged.connect(self.refresh_actions)
        model.totals_changed.connect(self.refresh_actions)
        self.proxy.rowsRemoved.connect(self.refresh_actions)
        self.refresh_actions()

    def set_column_widths(self) -> None:
        """Widths that fit what the columns usually hold, measured in the view's font: a
        file name, a registry reference, "1.23 GiB / 4.56 GiB (27%)" on its bar, a rate, a
        duration; the status takes the rest. On a narrow window (a 1024×640 screen) the name
        and target give up width first, so the status stays readable (`fit_columns`)."""
        fm = self.fontMetrics()
        pad = 2 * CELL_PADDING + 12  # and the style's own margins around a cell's text

        def text(sample: str) -> int:
            return fm.horizontalAdvance(sample) + pad

        icon = self.iconSize().width() if self.iconSize().isValid() else 16
        self.preferred_widths = {
            Column.NAME: text("model-card.md, model.safetensors") + self.indentation() + icon,
            Column.TARGET: text("registry.example.com/team/models:v12"),
            Column.PROGRESS: text("1.23 GiB / 4.56 GiB (100%)") + 8,
            Column.SPEED: text("999 MiB/s"),
            Column.ETA: text("59m 59s"),
        }
        #: The status column keeps at least this (a "waiting for network" line).
        self.status_width = text("waiting for network, retry in 8 s")
        self.minimum_widths = {
            Column.NAME: text("model.safetensors") + self.indentation() + icon,
            Column.TARGET: text("host/team/model:v1"),
        }
        self.fit_columns(self.viewport().width())

    def fit_columns(self, width: int) -> None:
        """Preferred widths when they leave the status its room, else narrower name and target
        columns (never below their minimum: then the view scrolls sideways)."""
        widths = dict(self.preferred_widths)
        spare = width - sum(widths.values()) - self.status_width
        if spare < 0:
            for column in (Column.TARGET, Column.NAME):
                give = min(-spare, widths[column] - self.minimum_widths[column])
                widths[column] -= give
                spare += give
        for column, column_width in widths.items():
            self.setColumnWidth(column, column_width)
        self._fitted = {column: self.columnWidth(column) for column in widths}

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        # Widths the user dragged stay as they are; only fitted ones follow the window.
        if all(self.columnWidth(c) == w for c, w in self._fitted.items()):
            self.fit_columns(self.viewport().width())

    # -- selection ---------------------------------------------------------------------------

    def selected_items(self) -> list[TransferItem]:
        """The selected transfers, in view order (a selected blob row selects its transfer)."""
        out: list[TransferItem] = []
        seen: set[str] = set()
        rows = sorted(
            self.selectionModel().selectedRows(0),
            key=lambda i: (i.parent().row() if i.parent().isValid() else i.row(), i.row()),
        )
        for index in rows:
            item = self.transfer_model.item_at(self.proxy.mapToSource(index))
            if item is not None and item.id not in seen:
                seen.add(item.id)
                out.append(item)
        return out

    def select_transfer(self, transfer_id: str) -> None:
        index = self.proxy.mapFromSource(self.transfer_model.index_of(transfer_id))
        if index.isValid():
            self.setCurrentIndex(index)

    # -- actions -----------------------------------------------------------------------------

    def actions_data(self) -> dict[str, ActionSpec]:
        return transfer_actions(self.selected_items(), self.controller.queue.items, self.controller)

    def refresh_actions(self) -> None:
        for key, spec in self.actions_data().items():
            action = self.qactions.get(key)
            if action is not None:
                action.setText(with_accelerator(spec.label, ACCELERATORS[key]))
                action.setEnabled(spec.enabled)
        # Only downloads have a folder to open: the action is shown when one is selected.
        downloads = any(isinstance(item.transfer, Download) for item in self.selected_items())
        self.qactions["open_folder"].setVisible(downloads)

    def trigger(self, key: str) -> None:
        spec = self.actions_data()[key]
        if spec.enabled:
            spec.callback()
        self.transfer_model.flush()
        self.refresh_actions()

    def build_menu(self, extra: dict[str, QAction] | None = None) -> QMenu:
        """The context menu, from the action data (the window adds pause/resume all)."""
        self.refresh_actions()
        menu = QMenu(self)
        actions = {**self.qactions, **(extra or {})}
        for group in MENU_LAYOUT:
            present = [actions[key] for key in group if key in actions and actions[key].isVisible()]
            if not present:
                continue
            if not menu.isEmpty():
                menu.addSeparator()
            for action in present:
                menu.addAction(action)
        return menu

    def _show_menu(self, pos: QPoint) -> None:
        menu = self.build_menu(self.global_actions)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.viewport().mapToGlobal(pos))


def clipboard_copy(text: str) -> None:
    clipboard = QGuiApplication.clipboard()
    clipboard.setText(text)


def status_icon(name: str) -> QIcon:
    return icons.icon(name)


__all__ = [
    "ACCELERATORS",
    "FILTERS",
    "HEADERS",
    "ITEM_ACTIONS",
    "MENU_LAYOUT",
    "SHORTCUTS",
    "ActionSpec",
    "Column",
    "ItemRole",
    "ProgressDelegate",
    "ProgressRole",
    "SentRole",
    "StateRole",
    "ToneRole",
    "TransferController",
    "TransferDelegate",
    "TransferFilterProxy",
    "TransferIdRole",
    "TransferModel",
    "TransferView",
    "blob_status_text",
    "filter_label",
    "matches_filter",
    "transfer_actions",
    "with_accelerator",
]
