"""One manifest's details: `manifest_details()` turns a `ManifestInfo` into rows of data
(tested without widgets); `ManifestDetailModel` shows those rows as a tree."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    Qt,
)

from hoist.core.oci.digest import short_digest
from hoist.core.registry.browse import (
    ManifestInfo,
    ManifestKind,
)
from hoist.core.units import format_size
from hoist.gui.browse.models import (
    CopyRole,
    KeyRole,
    format_created,
    size_text,
)
from hoist.gui.widgets.item_models import ROOT, Index, read_only_flags

log = logging.getLogger(__name__)


# -- manifest details -----------------------------------------------------------------------


@dataclass(frozen=True)
class DetailRow:
    """One line of the details tree: a label, a value, what Copy copies, and children."""

    label: str
    value: str = ""
    children: tuple[DetailRow, ...] = ()
    copy: str = ""
    key: str = ""
    tooltip: str = ""


KIND_LABELS = {
    ManifestKind.OCI_IMAGE: "OCI image",
    ManifestKind.DOCKER_IMAGE: "Docker image",
    ManifestKind.OCI_INDEX: "OCI image index (multi-platform)",
    ManifestKind.DOCKER_LIST: "Docker manifest list (multi-platform)",
    ManifestKind.ARTIFACT: "OCI artifact",
}


def kind_label(info: ManifestInfo) -> str:
    if info.kind.is_index and info.artifact_type:
        return "OCI artifact index"
    return KIND_LABELS.get(info.kind, str(info.kind))


def manifest_details(info: ManifestInfo) -> list[DetailRow]:
    """The details tree of a manifest, as data: what it is, its size and date, its files or
    layers (with titles and sizes), its platforms with each one's size, its annotations, the
    manifests that refer to it, and the pull command."""
    rows = [
        DetailRow("Reference", info.reference, copy=info.reference),
        DetailRow("Kind", kind_label(info)),
        DetailRow("Media type", info.media_type, copy=info.media_type),
    ]
    if info.artifact_type:
        rows.append(DetailRow("Artifact type", info.artifact_type, copy=info.artifact_type))
    rows.append(DetailRow("Digest", info.digest, copy=info.digest))
    size_label = "Size (all platforms)" if info.kind.is_index else "Size"
    rows.append(
        DetailRow(size_label, size_text(info.total_size), tooltip="config and layers, each once")
    )
    rows.append(DetailRow("Created", format_created(info.created), tooltip=info.created or ""))
    if info.pull_command:
        rows.append(
            DetailRow("Pull command", info.pull_command, copy=info.pull_command, key="pull")
        )
    if info.kind.is_index:
        rows.append(_platform_rows(info))
    elif info.kind == ManifestKind.ARTIFACT:
        rows.append(_file_rows(info))
    else:
        rows.append(_layer_rows(info))
    if info.subject:
        rows.append(DetailRow("Refers to", info.subject, copy=info.subject))
    if info.annotations:
        rows.append(
            DetailRow(
                f"Annotations ({len(info.annotations)})",
                children=tuple(
                    DetailRow(key, value, copy=value)
                    for key, value in sorted(info.annotations.items())
                ),
            )
        )
    if info.referrers:
        rows.append(
            DetailRow(
                f"Referrers ({len(info.referrers)})",
                "signatures, SBOMs and other manifests about this one",
                children=tuple(
                    DetailRow(
                        r.artifact_type or r.media_type,
                        f"{short_digest(r.digest)} · {format_size(r.size)}",
                        copy=r.digest,
                    )
                    for r in info.referrers
                ),
            )
        )
    if info.warnings:
        rows.append(
            DetailRow(
                f"Could not read ({len(info.warnings)})",
                children=tuple(DetailRow(w) for w in info.warnings),
            )
        )
    return rows


def _blob_children(digest: str, media_type: str) -> tuple[DetailRow, ...]:
    return (
        DetailRow("Digest", digest, copy=digest),
        DetailRow("Media type", media_type, copy=media_type),
    )


def _file_rows(info: ManifestInfo) -> DetailRow:
    files = []
    for number, layer in enumerate(info.layers, 1):
        label = layer.title or f"layer {number} (untitled)"
        files.append(
            DetailRow(
                label,
                size_text(layer.size),
                children=_blob_children(layer.digest, layer.media_type),
                copy=layer.title or layer.digest,
                key=f"file:{number}",
            )
        )
    total = sum(layer.size for layer in info.layers)
    return DetailRow(f"Files ({len(files)})", format_size(total), children=tuple(files))


def _layer_rows(info: ManifestInfo) -> DetailRow:
    children = []
    if info.config is not None:
        children.append(
            DetailRow(
                "config",
                size_text(info.config.size),
                children=_blob_children(info.config.digest, info.config.media_type),
                copy=info.config.digest,
            )
        )
    for number, layer in enumerate(info.layers, 1):
        children.append(
            DetailRow(
                f"layer {number}",
                size_text(layer.size),
                children=_blob_children(layer.digest, layer.media_type),
                copy=layer.digest,
                key=f"layer:{number}",
            )
        )
    total = sum(layer.size for layer in info.layers)
    return DetailRow(f"Layers ({len(info.layers)})", format_size(total), children=tuple(children))


def _platform_rows(info: ManifestInfo) -> DetailRow:
    children = []
    for platform in info.platforms:
        if platform.attestation:
            label = f"attestation ({short_digest(platform.digest)})"
        else:
            label = platform.platform or f"no platform ({short_digest(platform.digest)})"
        if platform.artifact_type and not platform.attestation:
            label += f" · {platform.artifact_type}"
        value = (
            size_text(platform.content_size)
            if platform.content_size is not None
            else "size unknown (its manifest could not be read)"
        )
        children.append(
            DetailRow(
                label,
                value,
                children=(
                    DetailRow("Digest", platform.digest, copy=platform.digest),
                    DetailRow("Media type", platform.media_type, copy=platform.media_type),
                    DetailRow("Created", format_created(platform.created)),
                ),
                copy=platform.digest,
                key=f"platform:{platform.platform}" if platform.platform else "",
            )
        )
    runnable = [p for p in info.platforms if not p.attestation]
    return DetailRow(
        f"Platforms ({len(runnable)})",
        "each platform's config and layers",
        children=tuple(children),
    )


@dataclass
class _Node:
    row: DetailRow
    parent: int  # node id of the parent, -1 for a top-level row
    number: int  # row number under its parent
    children: list[int] = field(default_factory=list)


class ManifestDetailModel(QAbstractItemModel):
    """The `manifest_details` rows as a two-column tree (field, value)."""

    HEADERS = ("Field", "Value")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._nodes: list[_Node] = []
        self._top: list[int] = []
        self.info: ManifestInfo | None = None

    def set_info(self, info: ManifestInfo | None) -> None:
        self.set_rows(manifest_details(info) if info is not None else [])
        self.info = info

    def set_rows(self, rows: Sequence[DetailRow]) -> None:
        self.beginResetModel()
        self._nodes, self._top = [], []
        self.info = None
        for number, row in enumerate(rows):
            self._top.append(self._add(row, -1, number))
        self.endResetModel()

    def _add(self, row: DetailRow, parent: int, number: int) -> int:
        node_id = len(self._nodes)
        node = _Node(row, parent, number)
        self._nodes.append(node)
        for i, child in enumerate(row.children):
            node.children.append(self._add(child, node_id, i))
        return node_id

    def row_data(self, index: Index) -> DetailRow | None:
        node = self._node(index)
        return node.row if node is not None else None

    def find(self, label: str, parent: Index = ROOT) -> QModelIndex:
        """The first row labelled `label` under `parent` (tests and "show platform")."""
        for r in range(self.rowCount(parent)):
            index = self.index(r, 0, parent)
            if self.data(index) == label:
                return index
        return QModelIndex()

    def _node(self, index: Index) -> _Node | None:
        if not index.isValid():
            return None
        node_id = int(index.internalId())
        return self._nodes[node_id] if 0 <= node_id < len(self._nodes) else None

    def _ids(self, parent: Index) -> list[int]:
        if not parent.isValid():
            return self._top
        node = self._node(parent)
        if node is None or parent.column() != 0:
            return []
        return node.children

    def index(self, row: int, column: int, parent: Index = ROOT) -> QModelIndex:
        ids = self._ids(parent)
        if not 0 <= row < len(ids) or not 0 <= column < len(self.HEADERS):
            return QModelIndex()
        return self.createIndex(row, column, ids[row])

    def parent(self, index: Index = ROOT) -> QModelIndex:  # type: ignore[override]
        node = self._node(index)
        if node is None or node.parent < 0:
            return QModelIndex()
        parent = self._nodes[node.parent]
        return self.createIndex(parent.number, 0, node.parent)

    def rowCount(self, parent: Index = ROOT) -> int:
        return len(self._ids(parent))

    def columnCount(self, parent: Index = ROOT) -> int:
        return len(self.HEADERS)

    def hasChildren(self, parent: Index = ROOT) -> bool:
        return bool(self._ids(parent))

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(self.HEADERS)
        ):
            return self.HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        return read_only_flags(index)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        node = self._node(index)
        if node is None:
            return None
        row = node.row
        if role == Qt.ItemDataRole.DisplayRole:
            return row.label if index.column() == 0 else row.value
        if role == Qt.ItemDataRole.ToolTipRole:
            text = row.tooltip or (row.value if index.column() == 1 else row.label)
            return text or None
        if role == CopyRole:
            return row.copy or row.value or row.label
        if role == KeyRole:
            return row.key
        return None
