"""The transfer list's Qt model: TransferQueue → TransferModel → TransferFilterProxy.

As qutebrowser's downloads (`browser/downloads.py`): the engine's objects (TransferItem) are
observed by a model, never copied into widgets. The queue's listener only marks rows dirty; a
timer repaints dirty rows a few times a second, so a fast upload with many chunk events costs
the UI almost nothing.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)

from hoist.core.transfer.model import Download, Push, TransferState
from hoist.core.transfer.queue import TransferItem, TransferQueue
from hoist.core.units import format_duration, format_rate, format_size
from hoist.gui.add.planning import reference_text
from hoist.gui.transfers.groups import (
    Entry,
    FileGroup,
    GroupTotals,
    group_children,
    group_name,
    group_state,
    group_status,
    group_tip,
    group_tone,
    group_totals,
)
from hoist.gui.transfers.rows import (
    FILTERS,
    HEADERS,
    BlobRole,
    BlobRow,
    Column,
    ItemRole,
    PartRow,
    ProgressRole,
    SentRole,
    StateRole,
    ToneRole,
    TransferIdRole,
    capitalized,
    child_names,
    child_row,
    matches_filter,
    push_summary,
    transfer_destination,
    transfer_icon_name,
    transfer_name,
    transfer_tone,
)
from hoist.gui.widgets import icons
from hoist.gui.widgets.item_models import ROOT, Index, column_heading, read_only_flags

#: Repaints per second at most (the queue may report hundreds of chunk events a second).
REFRESH_MS = 250
#: The roles a group's row answers (any other is None without summing its members).
GROUP_ROLES = frozenset(
    {
        StateRole,
        ProgressRole,
        SentRole,
        ToneRole,
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.ToolTipRole,
        Qt.ItemDataRole.TextAlignmentRole,
    }
)


class TransferModel(QAbstractItemModel):
    """A tree: one row per transfer, with one child row per blob when it has several; over
    `GROUP_ABOVE` blobs, one per folder group (`hoist.gui.transfers.groups`), whose member rows
    are made when the view expands it (canFetchMore / fetchMore).

    Internal ids: 0 for a transfer's row; the transfer's key for its child rows; a group's key
    for the group's member rows (`_by_key` maps a key to its transfer and group).

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
        self._by_key: dict[int, tuple[str, FileGroup | None]] = {}
        self._units: dict[str, int] = {}  # blobs (parts) the layout was made for
        self._layouts: dict[str, list[Entry]] = {}  # a transfer's child rows
        self._totals: dict[int, GroupTotals] = {}  # by group key, until the next refresh
        self._busy = 0  # > 0 while a change of ours is being announced
        self._numbers: dict[str, tuple[int, int, int]] = {}  # by transfer, until its refresh
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
        key = self._new_key()
        self._keys[item.id] = key
        self._by_key[key] = (item.id, None)
        self._units[item.id] = self._child_count(item)
        self._layouts[item.id] = self._layout(item)

    def _new_key(self) -> int:
        key = self._next_key
        self._next_key += 1
        return key

    @staticmethod
    def _child_count(item: TransferItem) -> int:
        """A row per blob (or per downloaded blob) when there are several; a download learns
        its blobs from the manifest, so its children appear once it has run."""
        transfer = item.transfer
        blobs = len(transfer.parts) if isinstance(transfer, Download) else len(transfer.blobs)
        return blobs if blobs > 1 else 0

    def _layout(self, item: TransferItem) -> list[Entry]:
        """The transfer's child rows, its groups given keys for their members' rows."""
        if not self._child_count(item):
            return []
        entries = group_children(child_names(item))
        for entry in entries:
            if isinstance(entry, FileGroup):
                entry.key = self._new_key()
                self._by_key[entry.key] = (item.id, entry)
        return entries

    def _forget_layout(self, tid: str) -> None:
        for entry in self._layouts.pop(tid, []):
            if isinstance(entry, FileGroup):
                self._by_key.pop(entry.key, None)
                self._totals.pop(entry.key, None)

    def _on_queue(self, kind: str, item: TransferItem) -> None:
        self._busy += 1
        try:
            self._follow(kind, item)
        finally:
            self._busy -= 1

    def _follow(self, kind: str, item: TransferItem) -> None:
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
            del self._units[item.id]
            self._numbers.pop(item.id, None)
            self._forget_layout(item.id)
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
        self._numbers.pop(transfer_id, None)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Emit dataChanged for every dirty row (the timer calls this; tests may too)."""
        self._busy += 1
        try:
            self._flush()
        finally:
            self._busy -= 1

    def _flush(self) -> None:
        running = {tid for tid, item in self._items.items() if item.running}
        dirty = (self._dirty | running) & set(self._items)
        self._dirty.clear()
        last = len(HEADERS) - 1
        for tid in dirty:
            item = self._items[tid]
            self._numbers.pop(tid, None)
            units = self._child_count(item)
            if units != self._units[tid]:
                self._reset_children(item, units)
            row = self._ids.index(tid)
            self.dataChanged.emit(self.index(row, 0), self.index(row, last))
            entries = self._layouts[tid]
            if not entries:
                continue
            parent = self.index(row, 0)
            self.dataChanged.emit(
                self.index(0, 0, parent), self.index(len(entries) - 1, last, parent)
            )
            for at, entry in enumerate(entries):
                if not isinstance(entry, FileGroup):
                    continue
                self._totals.pop(entry.key, None)  # summed again when next asked
                if entry.fetched:  # expanded once: its member rows repaint too
                    group = self.index(at, 0, parent)
                    self.dataChanged.emit(
                        self.index(0, 0, group), self.index(entry.fetched - 1, last, group)
                    )
        if dirty:
            self._emit_counts()
            self.totals_changed.emit()
        if not running and not self._dirty:
            self._timer.stop()

    def _reset_children(self, item: TransferItem, units: int) -> None:
        """New child rows for a transfer whose blobs changed (a download read its manifest)."""
        tid = item.id
        parent = self.index(self._ids.index(tid), 0)
        old = len(self._layouts[tid])
        if old:
            self.beginRemoveRows(parent, 0, old - 1)
            self._forget_layout(tid)
            self._layouts[tid] = []
            self.endRemoveRows()
        self._units[tid] = units
        entries = self._layout(item)
        if entries:
            self.beginInsertRows(parent, 0, len(entries) - 1)
            self._layouts[tid] = entries
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
            acknowledged, _sent, size = self.numbers(item)
            done += acknowledged
            total += size
            if item.running:
                running += 1
                rate += item.rate or 0.0
        return done, total, rate, running

    def item_at(self, index: Index) -> TransferItem | None:
        """The transfer of a row (a child row gives its parent's)."""
        if not index.isValid():
            return None
        key = int(index.internalId())
        node = self._by_key.get(key)
        tid = node[0] if key and node else None if key else self._ids[index.row()]
        return self._items.get(tid) if tid else None

    def _group_at(self, index: Index) -> FileGroup | None:
        """The group a transfer's child row shows, or None (a blob's row, or no child row)."""
        if not index.isValid() or index.column() != 0:
            return None
        node = self._by_key.get(int(index.internalId()))
        if node is None or node[1] is not None:
            return None
        entries = self._layouts.get(node[0], [])
        entry = entries[index.row()] if 0 <= index.row() < len(entries) else None
        return entry if isinstance(entry, FileGroup) else None

    def numbers(self, item: TransferItem) -> tuple[int, int, int]:
        """(acknowledged, sent, total) bytes of a transfer, once per refresh: each sums every
        blob, and a row's cells ask many times (a folder of 10,000 files)."""
        numbers = self._numbers.get(item.id)
        if numbers is None:
            numbers = self._numbers[item.id] = (item.acknowledged, item.sent, item.total)
        return numbers

    def group_totals(self, item: TransferItem, group: FileGroup) -> GroupTotals:
        """A group's members summed, once per refresh (a row's cells ask many times)."""
        totals = self._totals.get(group.key)
        if totals is None:
            totals = self._totals[group.key] = group_totals(item, group)
        return totals

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
        group = self._group_at(parent)
        if group is not None:
            return self.createIndex(row, column, group.key)
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
        node = self._by_key.get(key)
        if node is None:
            return QModelIndex()
        tid, group = node
        if group is None:
            return self.createIndex(self._ids.index(tid), 0, 0)
        return self.createIndex(self._layouts[tid].index(group), 0, self._keys[tid])

    def rowCount(self, parent: Index = ROOT) -> int:
        if not parent.isValid():
            return len(self._ids)
        if parent.column() != 0:
            return 0
        if parent.internalId() == 0:
            return len(self._layouts[self._ids[parent.row()]])
        group = self._group_at(parent)
        return group.fetched if group is not None else 0

    def hasChildren(self, parent: Index = ROOT) -> bool:
        """A group has children before they are made (so the view offers to expand it)."""
        return self.rowCount(parent) > 0 or self.canFetchMore(parent)

    def canFetchMore(self, parent: Index) -> bool:
        group = self._group_at(parent)
        return group is not None and group.fetched < len(group.members)

    def fetchMore(self, parent: Index) -> None:
        """Make a group's member rows (the view asks when it is expanded). All at once: a
        group is one folder the user chose to open, and the view lays out only rows in sight."""
        group = self._group_at(parent)
        if group is None or group.fetched >= len(group.members):
            return
        if self._busy:
            # Asked from a handler of our own change's signals (a model tester walking the
            # tree on rowsInserted): Qt forbids nesting changes, so insert once it is over.
            key = group.key
            QTimer.singleShot(0, self, lambda: self._fetch_later(key))
            return
        self._busy += 1
        try:
            self.beginInsertRows(parent, group.fetched, len(group.members) - 1)
            group.fetched = len(group.members)
            self.endInsertRows()
        finally:
            self._busy -= 1

    def _fetch_later(self, key: int) -> None:
        tid, group = self._by_key.get(key, ("", None))
        if group is None:
            return  # the transfer (or its layout) went meanwhile
        top = self.index(self._ids.index(tid), 0)
        self.fetchMore(self.index(self._layouts[tid].index(group), 0, top))

    def columnCount(self, parent: Index = ROOT) -> int:
        return len(HEADERS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        return column_heading(HEADERS, section, orientation, role, (Column.SPEED, Column.ETA))

    def flags(self, index: Index) -> Qt.ItemFlag:
        return read_only_flags(index)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        key = int(index.internalId())
        if key == 0:
            item = self._items[self._ids[index.row()]]
            return self._transfer_data(item, index.column(), role)
        node = self._by_key.get(key)
        if node is None:
            return None
        tid, group = node
        item = self._items[tid]
        row = index.row()
        prefix = ""
        if group is None:
            entries = self._layouts[tid]
            if row >= len(entries):
                return None
            entry = entries[row]
            if isinstance(entry, FileGroup):
                return self._group_data(item, entry, index.column(), role)
        else:
            if row >= group.fetched:
                return None
            entry, prefix = group.members[row], group.prefix
        child = child_row(item, entry)
        if child is None:
            return None
        return self._child_data(item, child, index.column(), role, prefix)

    def _transfer_data(self, item: TransferItem, column: int, role: int) -> Any:
        transfer = item.transfer
        if role == TransferIdRole:
            return item.id
        if role == ItemRole:
            return item
        if role == StateRole:
            return item.state.value
        if role == ProgressRole:
            acknowledged, sent, total = self.numbers(item)
            return self._fraction(acknowledged, total, item.state == TransferState.DONE)
        if role == SentRole:
            _acknowledged, sent, total = self.numbers(item)
            return self._fraction(sent, total, False) if item.running else None
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
                acknowledged, sent, _total = self.numbers(item)
                return self._progress_tip(item, sent, acknowledged)
            if column == Column.STATUS:
                summary = push_summary(item)
                if summary is not None:
                    return summary[1]
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
            _acknowledged, sent, total = self.numbers(item)
            return self._progress_text(sent, total)
        if column == Column.SPEED:
            rate = item.rate
            return format_rate(rate) if item.running and rate else ""
        if column == Column.ETA:
            return format_duration(item.eta) if item.running else ""
        if column == Column.STATUS:
            summary = push_summary(item)
            return summary[0] if summary is not None else capitalized(item.status_text())
        return None

    def _group_data(self, item: TransferItem, group: FileGroup, column: int, role: int) -> Any:
        """A group's row: its members summed (`groups.group_totals`)."""
        if role == TransferIdRole:
            return item.id
        if role not in GROUP_ROLES:
            return None
        totals = self.group_totals(item, group)
        if role == StateRole:
            return group_state(totals).value
        if role == ProgressRole:
            return self._fraction(totals.done, totals.size, totals.all_finished)
        if role == SentRole:
            return self._fraction(totals.sent, totals.size, False) if item.running else None
        if role == ToneRole:
            return group_tone(totals, item)
        download = isinstance(item.transfer, Download)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column in (Column.NAME, Column.TARGET):
                return group_tip(group, totals)
            if column == Column.PROGRESS:
                return self._progress_tip(item, totals.sent, totals.done)
            if column == Column.STATUS:
                return group_status(totals, download)
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column in (Column.SPEED, Column.ETA):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
        if column == Column.NAME:
            return group_name(group)
        if column == Column.PROGRESS:
            return self._progress_text(totals.sent, totals.size)
        if column == Column.SPEED:
            return format_rate(totals.rate) if item.running and totals.rate else ""
        if column == Column.STATUS:
            return group_status(totals, download)
        return ""

    def _child_data(
        self, item: TransferItem, child: BlobRow | PartRow, column: int, role: int, prefix: str
    ) -> Any:
        """A blob's (part's) row; in a group its name is said inside the group's folder."""
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
            name = child.name()
            return name[len(prefix) :] if prefix and name.startswith(prefix) else name
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
