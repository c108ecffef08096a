"""How the Browse area's three lists look: repositories, tags, a manifest's details."""

from __future__ import annotations

from hoist.gui.browse.tag_model import TagColumn
from hoist.gui.widgets.theme import CELL_PADDING, PaddedDelegate
from PySide6.QtCore import QAbstractItemModel, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QListView,
    QTableView,
    QTreeView,
    QWidget,
)

#: Room beside a cell's text: the delegate's padding on both sides, and some air.
COLUMN_PAD = 2 * CELL_PADDING + 12


def repository_list(parent: QWidget, proxy: QAbstractItemModel) -> QListView:
    view = QListView(parent)
    view.setObjectName("repositories")
    view.setModel(proxy)
    view.setUniformItemSizes(True)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setItemDelegate(PaddedDelegate(view))
    return view


def tag_table(parent: QWidget, proxy: QAbstractItemModel) -> QTableView:
    """Sortable rows of tag, size, created, digest; the digest column keeps the rest."""
    # A table, not a QTreeView: Qt 6's QTreeView calls fetchMore on every relayout (its
    # `layout()` fetches before sizing rows), which would page through every tag at once.
    view = QTableView(parent)
    view.setObjectName("tags")
    view.setModel(proxy)
    view.setShowGrid(False)
    view.setWordWrap(False)
    view.setCornerButtonEnabled(False)
    view.setTabKeyNavigation(False)  # Tab leaves the list, arrows move in it
    view.setAlternatingRowColors(True)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    view.setSortingEnabled(True)
    view.sortByColumn(TagColumn.TAG, Qt.SortOrder.AscendingOrder)
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    rows = view.verticalHeader()
    rows.hide()
    rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    rows.setDefaultSectionSize(parent.fontMetrics().height() + 8)
    header = view.horizontalHeader()
    header.setStretchLastSection(True)
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    view.setItemDelegate(PaddedDelegate(view))
    view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    # Widths that fit a usual tag, a size and a date (measured in the view's font), so the
    # digest keeps the rest and no sideways scrolling is needed.
    fm = view.fontMetrics()
    for column, sample in ((TagColumn.TAG, "v1.23.4-rc1"), (TagColumn.SIZE, "999 MiB"),
                           (TagColumn.CREATED, "2024-05-01 12:30 UTC")):  # fmt: skip
        view.setColumnWidth(column, fm.horizontalAdvance(sample) + COLUMN_PAD)
    return view


def tag_table_width(view: QTableView) -> int:
    """As wide as the tag table's columns, with a short digest."""
    digest_width = view.fontMetrics().horizontalAdvance("sha256:0123456789ab") + COLUMN_PAD
    return sum(view.columnWidth(c) for c in range(3)) + digest_width + 12


def detail_tree(parent: QWidget, model: QAbstractItemModel) -> QTreeView:
    view = QTreeView(parent)
    view.setObjectName("details")
    view.setModel(model)
    view.setUniformRowHeights(True)
    view.setAllColumnsShowFocus(True)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # digests keep both ends
    view.setItemDelegate(PaddedDelegate(view))
    view.setColumnWidth(0, view.fontMetrics().horizontalAdvance("Size (all platforms)") + 64)
    view.header().setStretchLastSection(True)
    return view
