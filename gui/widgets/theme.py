"""Looks derived from the palette, so the window reads well in light and dark themes alike.

Nothing here hard-codes a background or text colour: tints are mixed from the palette's own
colours (a progress bar's fill is its state colour mixed into the view's base), and the few
fixed hues (green for done, red for failed) are picked per light or dark palette. Everything
is painted from the current palette at paint time, so a palette change (the desktop turning
dark) applies at once. No style sheets: in Qt 6 any style sheet in the application stops a new
application palette from reaching the item views.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QHoverEvent, QIcon, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import (
    QApplication,
    QDialogButtonBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTabBar,
    QWidget,
)

from hoist.gui.widgets.item_models import Index

#: Space left and right of a cell's text, and above and below a row's text.
CELL_PADDING = 6
ROW_PADDING = 10

#: Progress bar tones (what `tone_color` knows).
TONES = ("active", "waiting", "paused", "done", "failed")


def mix(a: QColor, b: QColor, t: float) -> QColor:
    """`a` moved the fraction `t` of the way towards `b`."""
    return QColor.fromRgbF(
        a.redF() + (b.redF() - a.redF()) * t,
        a.greenF() + (b.greenF() - a.greenF()) * t,
        a.blueF() + (b.blueF() - a.blueF()) * t,
    )


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def tone_color(tone: str, palette: QPalette) -> QColor:
    """The solid colour of a state: uploading in the highlight colour, done green, failed red,
    paused and waiting in greys between the text and the background."""
    dark = is_dark(palette)
    text = palette.color(QPalette.ColorRole.Text)
    base = palette.color(QPalette.ColorRole.Base)
    if tone == "done":
        return QColor("#3fb950" if dark else "#2f9e57")
    if tone == "failed":
        return QColor("#f85149" if dark else "#d1392f")
    if tone == "paused":
        return mix(text, base, 0.55)
    if tone == "waiting":
        return mix(palette.color(QPalette.ColorRole.Highlight), mix(text, base, 0.5), 0.6)
    return QColor(palette.color(QPalette.ColorRole.Highlight))


def paint_progress(
    painter: QPainter, rect: QRectF, fraction: float, tone: str, text: str, palette: QPalette,
    *, sent: float | None = None,
) -> None:  # fmt: skip
    """A calm progress bar: a faint rounded groove, a soft fill in the state's colour with a
    solid edge along its bottom, and the text in the palette's own text colour (readable on
    both the fill and the groove, on a selected row too).

    With `sent` (a running upload: the share of bytes sent, at least `fraction`), the soft
    fill follows the bytes sent and the solid edge what the registry acknowledged, so the
    bar moves smoothly during a long chunk and still says what is safe."""
    base = palette.color(QPalette.ColorRole.Base)
    text_color = palette.color(QPalette.ColorRole.Text)
    solid = tone_color(tone, palette)
    dark = is_dark(palette)
    radius = min(4.0, rect.height() / 2)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(QPen(mix(base, text_color, 0.22 if dark else 0.16), 1.0))
    painter.setBrush(mix(base, text_color, 0.07 if dark else 0.035))
    groove = rect.adjusted(0.5, 0.5, -0.5, -0.5)
    painter.drawRoundedRect(groove, radius, radius)
    fraction = max(0.0, min(1.0, fraction))
    filled = fraction if sent is None else max(fraction, min(1.0, sent))

    def clip(share: float) -> None:
        painter.setClipRect(QRectF(groove.x(), groove.y(), groove.width() * share,
                                   groove.height()))  # fmt: skip

    painter.setPen(Qt.PenStyle.NoPen)
    if filled > 0:
        clip(filled)
        # Finished bars recede (a long list of them stays calm); the others stand out.
        strengths = {"done": (0.84, 0.68)}.get(tone, (0.7, 0.5))  # (light, dark)
        painter.setBrush(mix(solid, base, strengths[dark]))
        painter.drawRoundedRect(groove, radius, radius)
    if fraction > 0:
        clip(fraction)
        edge = QRectF(groove.x(), groove.bottom() - 2.5, groove.width(), 2.5)
        painter.setBrush(mix(solid, base, 0.3 if tone == "done" else 0.05))
        painter.drawRoundedRect(edge, 1.0, 1.0)
    painter.setClipping(False)
    painter.setPen(text_color)
    painter.drawText(rect.adjusted(4, 0, -4, -1), Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()


class PaddedDelegate(QStyledItemDelegate):
    """Cells with room around their text: taller rows, and text kept clear of the column
    edges (so a right-aligned number never touches the next column's text). With
    `quiet_children`, child rows (a transfer's blobs) are drawn in a quieter text colour."""

    def __init__(self, parent: QWidget | None = None, *, quiet_children: bool = False) -> None:
        super().__init__(parent)
        self.quiet_children = quiet_children

    def text_color(self, index: Index, palette: QPalette) -> QColor | None:
        """The text colour of a cell that is not selected (None: the palette's)."""
        if self.quiet_children and index.parent().isValid():
            text = palette.color(QPalette.ColorRole.Text)
            return mix(text, palette.color(QPalette.ColorRole.Base), 0.3)
        return None

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        size = super().sizeHint(option, index)
        height = option.fontMetrics.height() + ROW_PADDING
        return QSize(size.width() + 2 * CELL_PADDING, max(size.height(), height))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        # The row's background (selection, hover) over the whole cell, then the content
        # inset by the padding, without painting that background a second time.
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, widget)
        if not opt.state & QStyle.StateFlag.State_Selected:
            color = self.text_color(index, opt.palette)
            if color is not None:
                opt.palette.setColor(QPalette.ColorRole.Text, color)
        first = index.column() == 0
        opt.rect = opt.rect.adjusted(0 if first else CELL_PADDING, 0, -CELL_PADDING, 0)
        opt.state &= ~QStyle.StateFlag.State_Selected & ~QStyle.StateFlag.State_MouseOver
        if option.state & QStyle.StateFlag.State_Selected:
            # The text stays in the highlighted-text colour on the selection.
            highlighted = opt.palette.color(QPalette.ColorRole.HighlightedText)
            opt.palette.setColor(QPalette.ColorRole.Text, highlighted)
        opt.backgroundBrush = QBrush(Qt.BrushStyle.NoBrush)
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)


class PillTabBar(QTabBar):
    """A row of quiet pills (the status filter): the chosen one tinted with the highlight,
    a count after the label ("Failed (2)" shows as "Failed 2", the count dimmed).

    Painted here rather than with a style sheet: in Qt 6 any style sheet in the application
    stops a new palette (the desktop switching to dark) from reaching the item views.
    """

    H_PAD = 12
    GAP = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDrawBase(False)
        self.setExpanding(False)
        self.setAttribute(Qt.WidgetAttribute.WA_Hover, True)
        self.setMouseTracking(True)
        self._hover = -1

    @staticmethod
    def split_label(text: str) -> tuple[str, str]:
        """("Failed", "2") from "Failed (2)"; (text, "") without a count."""
        label, sep, rest = text.rpartition(" (")
        if sep and rest.endswith(")") and rest[:-1].isdigit():
            return label, rest[:-1]
        return text, ""

    def _parts_width(self, index: int) -> tuple[int, int]:
        fm = self.fontMetrics()
        label, count = self.split_label(self.tabText(index))
        return fm.horizontalAdvance(label), fm.horizontalAdvance(count) if count else 0

    def tabSizeHint(self, index: int) -> QSize:
        label, count = self._parts_width(index)
        spacing = self.fontMetrics().horizontalAdvance("  ") if count else 0
        width = label + spacing + count + 2 * self.H_PAD + self.GAP
        return QSize(width, self.fontMetrics().height() + 12)

    def minimumTabSizeHint(self, index: int) -> QSize:
        return self.tabSizeHint(index)

    def event(self, event: QEvent) -> bool:
        if isinstance(event, QHoverEvent) and event.type() != QEvent.Type.HoverLeave:
            at = self.tabAt(event.position().toPoint())
            if at != self._hover:
                self._hover = at
                self.update()
        elif event.type() == QEvent.Type.HoverLeave:
            self._hover = -1
            self.update()
        return super().event(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        window = palette.color(QPalette.ColorRole.Window)
        highlight = palette.color(QPalette.ColorRole.Highlight)
        dark = is_dark(palette)
        chosen = mix(highlight, window, 0.62 if dark else 0.82)
        border = mix(highlight, window, 0.2 if dark else 0.4)
        hover = mix(window, text, 0.07)
        dim = mix(text, window, 0.4)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fm = self.fontMetrics()
        for index in range(self.count()):
            rect = QRectF(self.tabRect(index)).adjusted(0.5, 3.5, -self.GAP - 0.5, -2.5)
            radius = rect.height() / 2
            current = index == self.currentIndex()
            if current:
                painter.setPen(QPen(border, 1.0))
                painter.setBrush(chosen)
                painter.drawRoundedRect(rect, radius, radius)
            elif index == self._hover:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(hover)
                painter.drawRoundedRect(rect, radius, radius)
            if current and self.hasFocus():
                painter.setPen(QPen(highlight, 2.0))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRoundedRect(rect.adjusted(-1, -1, 1, 1), radius + 1, radius + 1)
            label, count = self.split_label(self.tabText(index))
            label_width, count_width = self._parts_width(index)
            spacing = fm.horizontalAdvance("  ") if count else 0
            x = rect.x() + (rect.width() - label_width - spacing - count_width) / 2
            font = self.font()
            font.setBold(current)
            painter.setFont(font)
            painter.setPen(text)
            painter.drawText(QRectF(x, rect.y(), label_width + 4, rect.height()),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             label)  # fmt: skip
            if count:
                painter.setFont(self.font())
                painter.setPen(text if current else dim)
                painter.drawText(QRectF(x + label_width + spacing, rect.y(), count_width + 4,
                                        rect.height()),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                                 count)  # fmt: skip
        painter.end()


def plain_buttons(box: QDialogButtonBox) -> None:
    """Text-only dialog buttons. Some styles put stock icons on standard buttons only (a
    floppy disk on Save, a red cross on Cancel) beside our own buttons without one."""
    for button in box.buttons():
        button.setIcon(QIcon())


def title_font(widget: QWidget, scale: float = 1.15) -> None:
    """Make `widget`'s font a bold, slightly larger heading."""
    font = widget.font()
    if font.pointSizeF() > 0:
        font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    widget.setFont(font)


__all__ = [
    "CELL_PADDING",
    "TONES",
    "PaddedDelegate",
    "PillTabBar",
    "is_dark",
    "mix",
    "paint_progress",
    "plain_buttons",
    "title_font",
    "tone_color",
]
