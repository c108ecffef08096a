"""The window's small message dialogs: About, How resuming works, Keyboard shortcuts."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QKeySequence, QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QWidget

from hoist.core import __version__
from hoist.gui.widgets import icons
from hoist.gui.widgets.dialogs import lay_out_message
from hoist.gui.widgets.theme import plain_buttons


class MessageDialog(QDialog):
    """A small non-blocking message: an icon, selectable text, and OK.

    Used instead of QMessageBox, which fixes its own size after it is shown (a size hint the
    offscreen platform of the tests can't take, and a jump on screen for users).
    """

    def __init__(
        self, title: str, text: str, parent: QWidget | None = None, *, informative: str = "",
        pixmap: QPixmap | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.setObjectName("message-dialog")
        self.setWindowTitle(title)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.text_label = QLabel(text, self)
        self.text_label.setObjectName("message-text")
        self.text_label.setWordWrap(True)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.informative_label = QLabel(informative, self)
        self.informative_label.setWordWrap(True)
        self.informative_label.setVisible(bool(informative))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok, self)
        plain_buttons(buttons)
        buttons.accepted.connect(self.accept)
        lay_out_message(
            self, self.text_label, self.informative_label, buttons, minimum=QSize(380, 120),
            pixmap=pixmap,
        )  # fmt: skip

    def text(self) -> str:
        return self.text_label.text()


HOW_RESUMING_WORKS = (
    "Hoist sends a file in chunks and writes down, after every chunk, what the registry "
    "acknowledged. After a pause, a lost network, or a restart of Hoist or the computer, it "
    "asks the registry where the upload stands and continues from there, after re-reading "
    "the part already sent to check it (about a second per GiB).\n\n"
    "Some registries (distribution 2, Harbor) keep nothing of a chunk cut in the middle: "
    "that upload starts again from the beginning. Split mode, offered for very large files, "
    "limits what a cut costs to one part.\n\n"
    "Downloads resume from their .partial files in the download folder. Cancel throws away "
    "what was sent; Pause keeps it."
)


def open_message(parent: QWidget, title: str, text: str, informative: str) -> MessageDialog:
    """Show a help text beside the window (non-blocking) with the app's icon."""
    box = MessageDialog(title, text, parent, informative=informative,
                        pixmap=icons.app_icon().pixmap(48, 48))  # fmt: skip
    box.open()
    return box


def open_about(parent: QWidget) -> MessageDialog:
    box = MessageDialog(
        "About Hoist",
        f"<b>Hoist {__version__}</b>",
        parent,
        informative=(
            "Pushes large files and container images to OCI registries, and resumes them "
            "after a broken connection or a restart.\nLicensed under the Apache License 2.0."
        ),
        pixmap=icons.app_icon().pixmap(64, 64),
    )
    box.open()
    return box


def keyboard_map(panes: list[tuple[QWidget, str]]) -> list[tuple[str, str]]:
    """(keys, what they do) for every action with a shortcut of each (widget, prefix)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for widget, where in panes:
        for action in widget.actions():
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            what = action.text().replace("&", "")
            if keys and what and (keys, what) not in out and keys + what not in seen:
                seen.add(keys + what)
                out.append((keys, where + what))
    return out
