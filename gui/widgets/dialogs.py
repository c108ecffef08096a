"""The layout shared by Hoist's small dialogs: an icon beside a sentence and its explanation.

Hoist's dialogs don't use QMessageBox, which fixes its own size once shown (a jump on screen,
and a size hint the tests' offscreen platform refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from PySide6.QtCore import QSize, Qt, SignalInstance
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from hoist.gui.widgets.theme import plain_buttons


def ok_cancel_buttons(dialog: QDialog) -> QDialogButtonBox:
    """The plain OK and Cancel buttons of an editing dialog, accepting and rejecting it."""
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, dialog
    )
    plain_buttons(buttons)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


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


class QuitDialog(QDialog):
    """Asked when Quit is chosen while transfers run: pause them all and quit, keep them
    running (the window goes to the tray, or is minimized), or don't quit.

    `choice` is "pause", "keep" or "cancel" once it finished; `dont_ask` says whether the
    user ticked "Don't ask again" (honoured for "pause": the next Quit pauses and quits).
    """

    PAUSE, KEEP, CANCEL = "pause", "keep", "cancel"

    def __init__(self, running: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("quit-dialog")
        self.setWindowTitle("Quit Hoist")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.choice = self.CANCEL
        what = "1 transfer is" if running == 1 else f"{running} transfers are"
        self.text_label = QLabel(f"<b>{what} still running.</b>", self)
        self.informative_label = QLabel(
            "Pausing keeps everything the registry has acknowledged; Resume (or starting "
            "Hoist again) continues from there.",
            self,
        )
        self.informative_label.setWordWrap(True)
        self.dont_ask_box = QCheckBox("Don't ask again", self)
        self.dont_ask_box.setToolTip("From now on, Quit pauses every transfer and quits")
        buttons = QDialogButtonBox(self)
        self.pause_button = QPushButton("Pause everything and quit", self)
        self.keep_button = QPushButton("Keep running", self)
        self.cancel_button = QPushButton("Cancel", self)
        buttons.addButton(self.pause_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.keep_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.RejectRole)
        self.pause_button.setDefault(True)
        self.pause_button.clicked.connect(lambda: self._choose(self.PAUSE))
        self.keep_button.clicked.connect(lambda: self._choose(self.KEEP))
        self.cancel_button.clicked.connect(lambda: self._choose(self.CANCEL))
        lay_out_message(
            self, self.text_label, self.informative_label, buttons, minimum=QSize(420, 150)
        )
        layout = self.layout()
        assert isinstance(layout, QVBoxLayout)
        layout.insertWidget(1, self.dont_ask_box)  # below the sentence, above the buttons

    @property
    def dont_ask(self) -> bool:
        return self.dont_ask_box.isChecked()

    def _choose(self, choice: str) -> None:
        self.choice = choice
        if choice == self.CANCEL:
            self.reject()
        else:
            self.accept()


async def wait_signal(signal: SignalInstance) -> tuple[Any, ...]:
    """The arguments of the next emission of `signal`, awaited without a nested loop."""
    future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def done(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    signal.connect(done)
    try:
        return await future
    finally:
        # The sender may be gone already (a dialog deleted on close): nothing to undo then.
        with contextlib.suppress(RuntimeError):
            signal.disconnect(done)


class ConfirmDialog(QDialog):
    """A question, what it means, and a destructive button beside Cancel (the default).

    Used instead of QMessageBox, which fixes its own size once shown (a jump on screen, and
    a size hint the offscreen platform of the tests refuses), as main_window's MessageDialog.
    """

    def __init__(
        self, title: str, text: str, informative: str, confirm: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.text_label = QLabel(text, self)
        self.text_label.setObjectName("confirm-text")
        self.text_label.setWordWrap(True)
        font = self.text_label.font()
        font.setBold(True)
        self.text_label.setFont(font)
        self.informative_label = QLabel(informative, self)
        self.informative_label.setObjectName("confirm-informative")
        self.informative_label.setWordWrap(True)
        self.informative_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(self)
        self.confirm_button = self.buttons.addButton(
            confirm, QDialogButtonBox.ButtonRole.DestructiveRole
        )
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.setDefault(True)
        self.cancel_button.setFocus()
        plain_buttons(self.buttons)
        self.confirm_button.clicked.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay_out_message(
            self, self.text_label, self.informative_label, self.buttons, minimum=QSize(420, 160)
        )

    def text(self) -> str:
        return self.text_label.text()

    def informativeText(self) -> str:
        return self.informative_label.text()

    async def ask(self) -> bool:
        """Open window-modal and await the answer (never a nested loop); deleted after."""
        self.open()
        try:
            (result,) = await wait_signal(self.finished)
            return bool(result == QDialog.DialogCode.Accepted)
        finally:
            self.deleteLater()
