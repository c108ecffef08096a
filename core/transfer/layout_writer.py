"""Writing a pulled image as an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/...`)
with `manifest.json` beside it, joining a layout already in the folder: `index.json` keeps its
other entries, each named by its tag (`org.opencontainers.image.ref.name`, as skopeo's
`oci:DIR:TAG` reads it).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hoist.core.errors import (
    ReplaceRefused,
    write_failed,
)
from hoist.core.oci.digest import sha256_bytes
from hoist.core.oci.manifest import OCI_INDEX
from hoist.core.transfer.fetch import PulledFile, partial_path, settle

#: `index.json` entry annotation naming the entry's tag (what `skopeo ... oci:DIR:TAG` reads).
REF_NAME = "org.opencontainers.image.ref.name"
#: An existing `index.json` is read up to this size (a layout's index lists a few entries).
MAX_LAYOUT_INDEX = 4 * 1024 * 1024
OCI_LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass
class LayoutWriter:
    """The OCI layout an image is pulled into: what `index.json` lists already (other images
    pulled there before are kept), and the entry the pulled image takes, named by its tag."""

    dest: Path
    ref_name: str | None
    entries: list[dict[str, Any]]
    replace_index: bool  # `index.json` is not an OCI index and the user allowed replacing it

    @classmethod
    def read(
        cls, dest: Path, manifest: bytes, ref_name: str | None, overwrite: bool
    ) -> LayoutWriter:
        """Check, before anything is written, that the layout files already in `dest` are a
        layout's (blocking).

        Raises:
            ReplaceRefused: `index.json`, `oci-layout` or `manifest.json` hold something else
                and `overwrite` is not set.
        """
        refused: list[Path] = []
        entries = _index_entries(dest / "index.json")
        if entries is None:
            refused.append(dest / "index.json")
        layout_file = dest / "oci-layout"
        if os.path.lexists(layout_file) and not _is_layout_marker(layout_file):
            refused.append(layout_file)
        beside = dest / "manifest.json"
        if os.path.lexists(beside):
            # Hoist writes the last pulled manifest there: one the index lists is its own.
            listed = {str(e.get("digest")) for e in entries or []}
            held = _small_file(beside)
            if held is None or (held != manifest and sha256_bytes(held) not in listed):
                refused.append(beside)
        if refused and not overwrite:
            raise ReplaceRefused(
                f"{', '.join(str(p) for p in refused)} would be replaced: not part of an OCI "
                "layout Hoist can add an image to",
                refused,
            )
        return cls(dest, ref_name, entries or [], entries is None)

    async def write(self, manifest: bytes, media_type: str, digest: str) -> list[PulledFile]:
        """`manifest.json`, and the manifest as a blob with `index.json` (merged) and
        `oci-layout` around it, so that the folder is an OCI layout other tools read."""
        dest = self.dest
        if not self.replace_index:  # read again: another pull may have added its entry since
            now = await settle(functools.partial(_index_entries, dest / "index.json"))
            if now is not None:
                self.entries = now
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(manifest)}
        if self.ref_name:
            entry["annotations"] = {REF_NAME: self.ref_name}
        kept = [e for e in self.entries if not self._replaced_by(e, digest)]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*kept, entry]}
        algorithm, _, hexpart = digest.partition(":")
        files = {
            dest / "manifest.json": manifest,
            dest / "blobs" / algorithm / hexpart: manifest,
            dest / "index.json": json.dumps(index, separators=(",", ":")).encode(),
        }
        if not _is_layout_marker(dest / "oci-layout"):
            files[dest / "oci-layout"] = OCI_LAYOUT_FILE
        for path, body in files.items():
            try:
                await settle(functools.partial(_replace_with, path, body))
            except OSError as exc:
                raise write_failed(exc, path) from exc
        return [PulledFile(dest / "manifest.json", len(manifest), digest, "manifest")]

    def _replaced_by(self, entry: dict[str, Any], digest: str) -> bool:
        """An entry of the same tag (the tag moved), or the same image without a tag."""
        annotations = entry.get("annotations")
        name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
        if self.ref_name:
            return name == self.ref_name
        return name is None and entry.get("digest") == digest


def _small_file(path: Path, limit: int = MAX_LAYOUT_INDEX) -> bytes | None:
    """A regular file's bytes when it is at most `limit` bytes, else None."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > limit:
        return None
    return path.read_bytes()


def _index_entries(path: Path) -> list[dict[str, Any]] | None:
    """The entries of the OCI index at `path` ([] when there is none), or None when what is
    there is not an OCI index."""
    if not os.path.lexists(path):
        return []
    data = _small_file(path)
    try:
        doc = json.loads(data) if data is not None else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        return None
    entries = doc.get("manifests")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return None
    return entries


def _is_layout_marker(path: Path) -> bool:
    data = _small_file(path, 4096)
    try:
        doc = json.loads(data) if data is not None else None
    except ValueError:
        return False
    return isinstance(doc, dict) and "imageLayoutVersion" in doc


def _replace_with(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    tmp.write_bytes(body)
    os.replace(tmp, path)
