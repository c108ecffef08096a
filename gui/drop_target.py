"""Files dropped on the window: accepted when they are local paths, highlighted while dragged.

An event filter on the window (so the window's class keeps no drag handlers): drag events
reach it from any child, since no child accepts drops itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QLabel, QMainWindow


def local_paths(urls: list[QUrl]) -> list[Path]:
    return [Path(u.toLocalFile()) for u in urls if u.isLocalFile() and u.toLocalFile()]


class DropTarget(QObject):
    """Makes `window` take file drops: `on_drop(paths)` gets the dropped local paths."""

    def __init__(self, window: QMainWindow, on_drop: Callable[[list[Path]], None]) -> None:
        super().__init__(window)
        self.host = window
        self.on_drop = on_drop
        self.highlight = QLabel("Drop to push: a sheet asks where to", window)
        self.highlight.setObjectName("drop-highlight")
        self.highlight.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.highlight.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.highlight.setStyleSheet(
            "#drop-highlight { border: 2px dashed palette(highlight); border-radius: 8px;"
            " background: palette(base); color: palette(highlight); font-size: 16pt; }"
        )
        self.highlight.hide()
        window.setAcceptDrops(True)
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.host:
            return False
        kind = event.type()
        if kind == QEvent.Type.DragEnter and isinstance(event, QDragEnterEvent):
            self._drag_enter(event)
            return True
        if kind == QEvent.Type.DragMove and isinstance(event, QDragMoveEvent):
            if event.mimeData().hasUrls():
                event.setDropAction(Qt.DropAction.CopyAction)
                event.accept()
            return True
        if kind == QEvent.Type.DragLeave:
            self.show_highlight(False)
        elif kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            self._drop(event)
            return True
        return False

    def _drag_enter(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasUrls() and local_paths(mime.urls()):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            self.show_highlight(True)
        else:
            event.ignore()

    def show_highlight(self, on: bool) -> None:
        """While files are dragged over the window, say that dropping them pushes them."""
        area = self.host.centralWidget()
        if on and area is not None:
            self.highlight.setGeometry(area.geometry().adjusted(6, 6, -6, -6))
            self.highlight.raise_()
        self.highlight.setVisible(on)

    def _drop(self, event: QDropEvent) -> None:
        self.show_highlight(False)
        paths = local_paths(event.mimeData().urls())
        if not paths:
            event.ignore()
            return
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self.on_drop(paths)
