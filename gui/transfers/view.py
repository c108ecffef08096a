"""The transfer list's view: the tree with progress bars, shortcuts and a context menu.

The view shows `TransferModel` through its filter proxy and builds its menu from the actions
as data (`hoist.gui.transfers.actions`); the delegates paint what the model's roles say.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRectF, Qt
from PySide6.QtGui import (
    QAction,
    QColor,
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

from hoist.core.transfer.model import Download
from hoist.core.transfer.queue import TransferItem
from hoist.gui.transfers.actions import (
    ACCELERATORS,
    ITEM_ACTIONS,
    MENU_LAYOUT,
    SHORTCUTS,
    ActionSpec,
    TransferController,
    transfer_actions,
    with_accelerator,
)
from hoist.gui.transfers.rows import Column, ProgressRole, SentRole, ToneRole
from hoist.gui.transfers.transfer_model import TransferFilterProxy, TransferModel
from hoist.gui.widgets.item_models import Index
from hoist.gui.widgets.theme import CELL_PADDING, PaddedDelegate, paint_progress, tone_color


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
