"""The window's strips above its areas: the message bar (what went wrong, until dismissed)
and the first-start banner (no registry yet: start a local one, add one, or not now)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from hoist.core.registry.demo_registry import HOW_TO_ADD_A_REGISTRY
from hoist.gui.widgets import icons


class MessageBar(QFrame):
    """A sentence for the user, with a warning icon and Dismiss; hidden until `say`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("message-bar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        warn = QLabel(self)
        warn.setPixmap(icons.icon("failed").pixmap(16, 16))
        self.label = QLabel(self)
        self.label.setObjectName("message")
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # registry text is not HTML
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dismiss_button = QPushButton("Dismiss", self)
        self.dismiss_button.clicked.connect(self.dismiss)
        row = QHBoxLayout(self)
        row.addWidget(warn)
        row.addWidget(self.label, 1)
        row.addWidget(self.dismiss_button)
        self.hide()

    def say(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    def dismiss(self) -> None:
        self.hide()
        self.label.clear()


class DemoBanner(QFrame):
    """No registry is set up yet: offer the local demo registry (where its program is
    installed) or adding one. The window connects the buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("demo-banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.demo_button = QPushButton("Start a local registry", self)
        self.demo_button.setObjectName("start-demo")
        self.add_button = QPushButton("Add a registry…", self)
        self.close_button = QPushButton("Not now", self)
        row = QHBoxLayout(self)
        row.addWidget(self.label, 1)
        row.addWidget(self.demo_button)
        row.addWidget(self.add_button)
        row.addWidget(self.close_button)

    def offer(self, *, shown: bool, demo_available: bool) -> None:
        """Show or hide the banner; say what it offers on this machine."""
        self.setVisible(shown)
        if not shown:
            return
        if demo_available:
            self.label.setText(
                "No registry is set up yet. Hoist can start a local registry on this computer "
                "(reachable only from here) so you can try pushing right away."
            )
            self.demo_button.show()
        else:
            self.label.setText("No registry is set up yet. " + HOW_TO_ADD_A_REGISTRY + ".")
            self.demo_button.hide()

    def set_starting(self, starting: bool) -> None:
        self.demo_button.setEnabled(not starting)
        self.demo_button.setText("Starting…" if starting else "Start a local registry")
