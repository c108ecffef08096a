"""The transfer list's Qt model: TransferQueue → TransferModel → TransferFilterProxy.

As qutebrowser's downloads (`browser/downloads.py`): the engine's objects (TransferItem) are
observed by a model, never copied into widgets. The queue's listener only marks rows dirty; a
timer repaints dirty rows a few times a second, so a fast upload with many chunk events costs
the UI almost nothing.
"""

from __future__ import annotations

from typing import Any

from hoist.core.transfer.model import TransferState
from hoist.core.transfer.queue import TransferItem, TransferQueue
from hoist.core.units import format_duration, format_rate, format_size
from hoist.gui.add.planning import reference_text
from hoist.gui.transfers.rows import (
    FILTERS,
    HEADERS,
    ROOT,
    BlobRole,
    BlobRow,
    Column,
    Index,
    ItemRole,
    PartRow,
    ProgressRole,
    SentRole,
    StateRole,
    ToneRole,
    TransferIdRole,
    capitalized,
    matches_filter,
    transfer_icon_name,
    transfer_name,
    transfer_tone,
)
from hoist.gui.widgets import icons
from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)

#: Repaints per second at most (the queue may report hundreds of chunk events a second).
REFRESH_MS = 250


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
        blobs = len(item.transfer.blobs) or len(item.transfer.parts)
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
        child: BlobRow | PartRow
        if transfer.is_download:
            if row >= len(transfer.parts):
                return None
            child = PartRow(item, row)
        else:
            if row >= len(transfer.blobs):
                return None
            child = BlobRow(item, row)
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
                return "\n".join(transfer.sources) or str(transfer.target)
            if column == Column.TARGET:
                return transfer.destination or reference_text(transfer)
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
            return transfer.destination or str(transfer.target)
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
        self, item: TransferItem, child: BlobRow | PartRow, column: int, role: int
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
        if item.transfer.is_download:
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
