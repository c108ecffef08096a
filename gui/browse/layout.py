"""The Browse area's widgets and their layout: repositories, tags and details side by side.

`BrowseLayout` makes the models and the views over them, and nothing more; `BrowsePane`
(pane.py) adds what they do: the split Qt Designer's generated classes make, written by hand.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QPoint, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QSplitter,
    QTableView,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from hoist.gui.browse.actions import SHORTCUTS
from hoist.gui.browse.manifest_details import ManifestDetailModel
from hoist.gui.browse.models import NameFilterProxy, RepositoryModel
from hoist.gui.browse.tag_model import TagColumn, TagModel, TagSortProxy
from hoist.gui.widgets.theme import CELL_PADDING, PaddedDelegate, title_font

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


def visible_source_rows(view: QAbstractItemView, proxy: NameFilterProxy) -> list[int]:
    """Source rows of the proxy rows the view shows now (empty when the view is hidden)."""
    if not view.isVisible() or proxy.rowCount() == 0:
        return []
    area = view.viewport().rect()
    top = view.indexAt(QPoint(1, 1))
    if not top.isValid():
        return []
    bottom = view.indexAt(QPoint(1, area.bottom() - 1))
    last = bottom.row() if bottom.isValid() else proxy.rowCount() - 1
    return [proxy.mapToSource(proxy.index(r, 0)).row() for r in range(top.row(), last + 1)]


class BrowseLayout(QWidget):
    """The models, and the widgets that show them (the pane names them, tests find them)."""

    def __init__(self, parent: QWidget | None, *, page_size: int) -> None:
        super().__init__(parent)
        self.setObjectName("browse-pane")
        self.repo_model = RepositoryModel(self, page_size=page_size)
        self.repo_proxy = NameFilterProxy(self)
        self.repo_proxy.setSourceModel(self.repo_model)
        self.tag_model = TagModel(self, page_size=page_size)
        self.tag_proxy = TagSortProxy(self)
        self.tag_proxy.setSourceModel(self.tag_model)
        self.detail_model = ManifestDetailModel(self)

        self.title = QLabel(self)
        self.title.setObjectName("browse-title")
        title_font(self.title)
        self.message = QLabel(self)
        self.message.setObjectName("browse-message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()

        # Repositories.
        self.repo_filter = QLineEdit(self)
        self.repo_filter.setObjectName("repository-filter")
        self.repo_filter.setPlaceholderText(f"Filter repositories ({SHORTCUTS['filter']})")
        self.repo_filter.setClearButtonEnabled(True)
        self.repo_view = repository_list(self, self.repo_proxy)
        self.no_catalog = QLabel(self)
        self.no_catalog.setObjectName("no-catalog")
        self.no_catalog.setWordWrap(True)
        self.no_catalog.hide()
        self.repo_status = QLabel(self)
        self.repo_status.setObjectName("repository-status")
        self.repo_status.setWordWrap(True)
        self.repo_name = QLineEdit(self)
        self.repo_name.setObjectName("repository-name")
        self.repo_name.setPlaceholderText("team/model:v1")
        self.repo_name.setToolTip("Open a repository by name (the only way in where the "
                                  "registry does not list its repositories)")  # fmt: skip
        self.repo_open = QPushButton("&Open", self)
        self.repo_open.setObjectName("open-repository")
        # The label above the field: a narrow pane leaves the field its whole width.
        name_label = QLabel("Open a &repository by name:", self)
        name_label.setBuddy(self.repo_name)
        name_row = QHBoxLayout()
        name_row.addWidget(self.repo_name, 1)
        name_row.addWidget(self.repo_open)
        repos_label = QLabel("Re&positories", self)
        repos_label.setBuddy(self.repo_view)
        title_font(repos_label, 1.0)
        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 4, 0)
        left_layout.addWidget(repos_label)
        left_layout.addWidget(self.repo_filter)
        left_layout.addWidget(self.repo_view, 1)
        left_layout.addWidget(self.no_catalog)
        left_layout.addWidget(self.repo_status)
        left_layout.addSpacing(4)
        left_layout.addWidget(name_label)
        left_layout.addLayout(name_row)

        # Tags.
        self.tags_label = QLabel("&Tags", self)
        title_font(self.tags_label, 1.0)
        self.tag_filter = QLineEdit(self)
        self.tag_filter.setObjectName("tag-filter")
        self.tag_filter.setPlaceholderText("Filter tags")
        self.tag_filter.setClearButtonEnabled(True)
        self.tag_view = tag_table(self, self.tag_proxy)
        self.tags_label.setBuddy(self.tag_view)
        self.tag_status = QLabel(self)
        self.tag_status.setObjectName("tag-status")
        self.tag_status.setWordWrap(True)
        middle = QWidget(self)
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(4, 0, 4, 0)
        middle_layout.addWidget(self.tags_label)
        middle_layout.addWidget(self.tag_filter)
        middle_layout.addWidget(self.tag_view, 1)
        middle_layout.addWidget(self.tag_status)

        # Details.
        self.detail_title = QLabel("Details", self)
        self.detail_title.setObjectName("detail-title")
        self.detail_title.setWordWrap(True)
        title_font(self.detail_title, 1.0)
        self.detail_view = detail_tree(self, self.detail_model)
        self.copy_button = QToolButton(self)
        self.download_button = QToolButton(self)
        self.delete_button = QToolButton(self)
        buttons = QHBoxLayout()
        for button in (self.copy_button, self.download_button, self.delete_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            buttons.addWidget(button)
        buttons.addStretch(1)
        right = QWidget(self)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 0, 0, 0)
        right_layout.addWidget(self.detail_title)
        right_layout.addWidget(self.detail_view, 1)
        right_layout.addLayout(buttons)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setChildrenCollapsible(False)
        for widget in (left, middle, right):
            self.splitter.addWidget(widget)
        # Repositories narrow, tags as wide as their columns, details the rest (and what a
        # wider window adds).
        self.splitter.setSizes([240, tag_table_width(self.tag_view), 520])
        for index, stretch in enumerate((0, 0, 1)):
            self.splitter.setStretchFactor(index, stretch)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 8, 8, 4)
        outer.addWidget(self.title)
        outer.addWidget(self.message)
        outer.addWidget(self.splitter, 1)
