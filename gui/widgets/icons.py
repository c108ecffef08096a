"""Icons from `resources/icons/*.svg`, loaded only through importlib.resources.

Status icons carry their own colours (readable on light and dark backgrounds alike); toolbar
icons are drawn in `currentColor`, replaced here by the palette's text colour, so they follow
the system's light or dark theme.
"""

from __future__ import annotations

import functools
from importlib import resources

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

SIZES = (16, 22, 24, 32, 48, 64, 128, 256)
STATUS_ICONS = ("uploading", "downloading", "paused", "done", "failed", "waiting")


def svg_bytes(name: str) -> bytes:
    """The bytes of `resources/icons/<name>.svg`."""
    return resources.files("hoist.resources").joinpath("icons", f"{name}.svg").read_bytes()


def _text_color() -> str:
    app = QApplication.instance()
    if isinstance(app, QApplication):
        color: QColor = app.palette().color(QPalette.ColorRole.WindowText)
        return str(color.name())
    return "#202020"


@functools.lru_cache(maxsize=64)
def _icon(name: str, color: str) -> QIcon:
    data = svg_bytes(name).replace(b"currentColor", color.encode())
    renderer = QSvgRenderer(QByteArray(data))
    icon = QIcon()
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        icon.addPixmap(QPixmap.fromImage(image))
    return icon


def icon(name: str) -> QIcon:
    """The icon `name` (toolbar icons tinted with the current palette's text colour)."""
    if QGuiApplication.instance() is None:
        return QIcon()  # pixmaps need a GUI application (a model used headless has none)
    return _icon(name, _text_color())


def app_icon() -> QIcon:
    return icon("hoist")


def clear_cache() -> None:
    """Forget rendered icons (after the palette changed between light and dark)."""
    _icon.cache_clear()
