"""The layout shared by Hoist's small dialogs: an icon beside a sentence and its explanation.

Hoist's dialogs don't use QMessageBox, which fixes its own size once shown (a jump on screen,
and a size hint the tests' offscreen platform refuses).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QStyle,
    QVBoxLayout,
)


def lay_out_message(
    dialog: QDialog,
    text: QLabel,
    informative: QLabel,
    buttons: QDialogButtonBox,
    *,
    minimum: QSize,
    pixmap: QPixmap | None = None,
) -> None:
    """Put `text` and `informative` beside an icon (a warning unless `pixmap`), buttons below."""
    icon = QLabel(dialog)
    if pixmap is None:
        pixmap = (
            dialog.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(48, 48)
        )
    icon.setPixmap(pixmap)
    icon.setAlignment(Qt.AlignmentFlag.AlignTop)
    texts = QVBoxLayout()
    texts.addWidget(text)
    texts.addWidget(informative)
    texts.addStretch(1)
    row = QHBoxLayout()
    row.addWidget(icon)
    row.addLayout(texts, 1)
    layout = QVBoxLayout(dialog)
    layout.addLayout(row)
    layout.addWidget(buttons)
    dialog.setMinimumSize(minimum.expandedTo(dialog.minimumSizeHint()))
