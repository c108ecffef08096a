"""The system clipboard, as the transfer list and the browse pane copy to it."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication


def clipboard_copy(text: str) -> None:
    """Put `text` on the clipboard (the default `copy_text` of the views that offer Copy)."""
    QGuiApplication.clipboard().setText(text)
