"""What the window's item models (transfer list, repositories, tags, manifest details) share:
the index type Qt passes them, the root default, read-only flags and column headings."""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex
#: The invisible root (a shared default argument: Qt passes its own when it calls).
ROOT = QModelIndex()


def read_only_flags(index: Index, *, leaf: bool = False) -> Qt.ItemFlag:
    """Flags of a row one selects but never edits. `leaf`: a flat list's row, which views
    then never ask for children."""
    if not index.isValid():
        return Qt.ItemFlag.NoItemFlags
    flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
    return flags | Qt.ItemFlag.ItemNeverHasChildren if leaf else flags


def column_heading(
    headers: Sequence[str],
    section: int,
    orientation: Qt.Orientation,
    role: int,
    right_aligned: Container[int] = (),
) -> Any:
    """`headerData` of a table whose columns are `headers`: the title, and the alignment,
    right for the `right_aligned` columns (numbers: their headings line up with them)."""
    if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(headers):
        return None
    if role == Qt.ItemDataRole.DisplayRole:
        return headers[section]
    if role == Qt.ItemDataRole.TextAlignmentRole:
        right = section in right_aligned
        horizontal = Qt.AlignmentFlag.AlignRight if right else Qt.AlignmentFlag.AlignLeft
        return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
    return None
