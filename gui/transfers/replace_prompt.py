"""The question a download asks before it replaces files already in its folder.

The engine never replaces a file of the user's own: a download that would fails with
`ReplaceRefused`, naming the files, and the queue keeps that error on the item. This listener
turns it into a question; "Replace" runs the download again allowed to replace them.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QWidget

from hoist.core.errors import HoistError, ReplaceRefused
from hoist.core.transfer.model import TransferState
from hoist.core.transfer.queue import TransferItem
from hoist.gui.widgets.dialogs import lay_out_message
from hoist.gui.widgets.theme import plain_buttons

#: Files named in the question; the rest are counted.
LISTED = 8


class ReplacePrompt(QDialog):
    """Asks whether a download may replace the files it names (non-blocking: `open()`)."""

    def __init__(self, name: str, paths: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("replace-prompt")
        self.setWindowTitle("Replace files?")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        count = len(paths)
        files = "a file" if count == 1 else f"{count} files"
        self.text_label = QLabel(
            f"The download {name} would replace {files} already in the folder, with other "
            "content. Nothing was written yet.",
            self,
        )
        self.text_label.setTextFormat(Qt.TextFormat.PlainText)
        self.text_label.setWordWrap(True)
        listed = "\n".join(paths[:LISTED]) + (
            f"\nand {count - LISTED} more" if count > LISTED else ""
        )
        self.files_label = QLabel(listed, self)
        self.files_label.setTextFormat(Qt.TextFormat.PlainText)
        self.files_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(self)
        self.replace_button = buttons.addButton("Replace", QDialogButtonBox.ButtonRole.AcceptRole)
        self.keep_button = buttons.addButton(
            "Keep my files", QDialogButtonBox.ButtonRole.RejectRole
        )
        self.keep_button.setDefault(True)  # the safe answer
        plain_buttons(buttons)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay_out_message(self, self.text_label, self.files_label, buttons, minimum=QSize(420, 140))


class ReplaceAsker:
    """A TransferQueue listener: asks once per refusal, and calls `replace(transfer_id)` when
    the user chooses Replace (the window passes `TransferQueue.replace_and_retry`)."""

    def __init__(self, replace: Callable[[str], None], parent: QWidget | None = None) -> None:
        self.replace = replace
        self.parent = parent
        self.prompt: ReplacePrompt | None = None  # the last question shown (tests read it)
        self._asked: dict[str, HoistError] = {}

    def __call__(self, kind: str, item: TransferItem) -> None:
        if kind == "removed":
            self._asked.pop(item.id, None)
            return
        failure = item.failure
        if not isinstance(failure, ReplaceRefused) or item.state != TransferState.FAILED:
            return
        if self._asked.get(item.id) is failure:
            return
        self._asked[item.id] = failure
        prompt = ReplacePrompt(item.transfer.name, [str(p) for p in failure.paths], self.parent)
        transfer_id = item.id
        prompt.accepted.connect(lambda: self.replace(transfer_id))
        self.prompt = prompt
        prompt.open()
