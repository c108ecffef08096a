"""How the window takes sources to push: the file pickers, and files or image for a choice.

The add sheet (hoist.gui.add.sheet) then asks where to push them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QWidget

from hoist.core.errors import HoistError
from hoist.core.sources.formats import check_sources
from hoist.gui.add.planning import SourceChoice, classify_sources


@dataclass(frozen=True)
class Picker:
    """One Add… file dialog: what it asks for, and what its answer is pushed as."""

    title: str
    mode: QFileDialog.FileMode
    kind: str  # "files" or "image"
    name_filter: str = ""


PICK_FILES = Picker("Add files", QFileDialog.FileMode.ExistingFiles, "files")
PICK_FOLDER = Picker("Add folder", QFileDialog.FileMode.Directory, "files")
PICK_IMAGE = Picker(
    "Add image", QFileDialog.FileMode.ExistingFile, "image",
    "Image archives (*.tar *.oci *.docker);;All files (*)",
)  # fmt: skip
PICK_IMAGE_FOLDER = Picker("Add image folder (OCI layout)", QFileDialog.FileMode.Directory, "image")


def open_picker(
    parent: QWidget, picker: Picker, on_chosen: Callable[[list[Path], str], None]
) -> QFileDialog:
    """Open the dialog (non-blocking); `on_chosen(paths, kind)` gets the user's answer."""
    dialog = QFileDialog(parent, picker.title)
    dialog.setFileMode(picker.mode)
    if picker.name_filter:
        dialog.setNameFilter(picker.name_filter)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.filesSelected.connect(lambda files: on_chosen([Path(f) for f in files], picker.kind))
    dialog.open()
    return dialog


def choose_sources(paths: list[Path], kind: str | None = None) -> SourceChoice:
    """Files or an image (`kind` None: decided by what the paths hold). Reads the disk: run it
    in a worker thread. A missing path is refused by name; so is a non-image asked as one."""
    check_sources(paths)
    choice = classify_sources(paths)
    if kind == "image" and choice.kind != "image":
        raise HoistError(
            f"{paths[0].name} is not a container image (neither an OCI image layout nor "
            "a `docker save` archive)",
            hint="Use Add files… to push it as a file",
        )
    if kind == "files":
        return SourceChoice("files", paths)
    return choice
