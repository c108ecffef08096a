"""Files and folders as ORAS-compatible OCI artifacts, and split mode for very large files.

The manifest is an OCI image manifest with `artifactType`, the empty config
(`application/vnd.oci.empty.v1+json`, `{}`) and one layer per file, titled with
`org.opencontainers.image.title`, so `oras pull` writes each file back under its name.

A folder is pushed as its files (`hoist.core.sources.folder`: one layer per file, titled
`folder/sub/name`). Asked to pack it (`--pack`), it is packed as a gzip tar (as oras does),
titled with the folder's name and annotated `io.deis.oras.content.unpack: "true"` and
`io.deis.oras.content.digest` (the tar's own digest), so `oras pull` unpacks it. The tar is
written once into the state folder, so that a resume reads the very same bytes.

Split mode cuts one file into parts of `part_size` bytes, each its own blob, so that a broken
session costs at most one part. Each part is titled `NAME.partNNNN` (NNNN from 0001, zero-padded
to the part count's width) so that plain `oras pull` gives files that `cat` back together in
order, and annotated with `app.hoist.split.*` (see README "Split mode").
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hoist.core.errors import SourceError
from hoist.core.oci.digest import Descriptor, sha256_bytes
from hoist.core.oci.manifest import OCI_EMPTY, OCI_EMPTY_DATA, image_manifest
from hoist.core.sources.content import FileRange
from hoist.core.sources.folder import FILE_MODE, empty_dirs_annotation, scan_folder

DEFAULT_ARTIFACT_TYPE = "application/vnd.unknown.artifact.v1"  # what oras uses when none is set
FILE_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"  # oras's default for files
FOLDER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
TITLE = "org.opencontainers.image.title"
CREATED = "org.opencontainers.image.created"
ORAS_UNPACK = "io.deis.oras.content.unpack"
ORAS_DIGEST = "io.deis.oras.content.digest"
SPLIT_PREFIX = "app.hoist.split."
SPLIT_FILE = SPLIT_PREFIX + "file"  # the original file's name
SPLIT_INDEX = SPLIT_PREFIX + "index"  # 1-based
SPLIT_COUNT = SPLIT_PREFIX + "count"
SPLIT_OFFSET = SPLIT_PREFIX + "offset"
SPLIT_FILE_SIZE = SPLIT_PREFIX + "file.size"
SPLIT_FILE_DIGEST = SPLIT_PREFIX + "file.digest"  # sha256 of the whole file (manifest level)
EMPTY_CONFIG = Descriptor(OCI_EMPTY, sha256_bytes(OCI_EMPTY_DATA), len(OCI_EMPTY_DATA))
#: gzip level of a packed folder: the fastest. Model weights don't compress, and level 9 ran at
#: ~37 MiB/s on them (issue 19); level 1 costs a few percent of size on text.
PACK_LEVEL = 1


@dataclass(frozen=True)
class SplitOptions:
    part_size: int


@dataclass(frozen=True)
class ArtifactLayer:
    """One layer an artifact will push: where its bytes are and how the manifest names it.

    Plain data: the transfer layer turns it into the record it journals and uploads.
    """

    name: str
    source: FileRange
    media_type: str
    annotations: dict[str, str]


@dataclass(frozen=True)
class ArtifactPlan:
    """An artifact's layers, in order, and what its manifest says besides (empty folders)."""

    layers: list[ArtifactLayer]
    annotations: dict[str, str]


def plan_artifact(
    paths: list[Path], staging: Path, split: SplitOptions | None = None, *, pack: bool = False
) -> ArtifactPlan:
    """One layer per file (or per part; a folder's files, or with `pack` one tar per folder).

    Blocking (it walks folders, and packs them with `pack`): call it in a worker thread.
    """
    if not paths:
        raise SourceError("nothing to push: name at least one file or folder")
    records: list[ArtifactLayer] = []
    empty_dirs: list[str] = []
    titles: set[str] = set()
    for path in paths:
        path = path.absolute()
        if not path.exists():
            raise SourceError(f"{path} does not exist")
        title = path.name
        if title in titles:
            raise SourceError(
                f"two sources are both named {title!r}",
                hint="Each file's name is its title in the artifact: rename one of them",
            )
        titles.add(title)
        if path.is_dir() and pack:
            records.append(_pack_folder(path, staging))
        elif path.is_dir():
            scan = scan_folder(path)
            empty_dirs.extend(scan.empty_dirs)
            records.extend(
                ArtifactLayer(
                    f.title,
                    FileRange(f.path, 0, f.size),
                    FILE_MEDIA_TYPE,
                    {TITLE: f.title, FILE_MODE: f.mode_text},
                )
                for f in scan.files
            )
        elif path.is_file():
            if split is not None and path.stat().st_size > split.part_size:
                records.extend(_split(path, split.part_size))
            else:
                records.append(
                    ArtifactLayer(title, FileRange.whole(path), FILE_MEDIA_TYPE, {TITLE: title})
                )
        else:
            raise SourceError(f"{path} is not a regular file or a folder")
    return ArtifactPlan(records, empty_dirs_annotation(empty_dirs))


def _split(path: Path, part_size: int) -> list[ArtifactLayer]:
    size = path.stat().st_size
    count = (size + part_size - 1) // part_size
    width = max(4, len(str(count)))
    out = []
    for i in range(count):
        offset = i * part_size
        name = f"{path.name}.part{i + 1:0{width}d}"
        annotations = {
            TITLE: name,
            SPLIT_FILE: path.name,
            SPLIT_INDEX: str(i + 1),
            SPLIT_COUNT: str(count),
            SPLIT_OFFSET: str(offset),
            SPLIT_FILE_SIZE: str(size),
        }
        source = FileRange(path, offset, min(part_size, size - offset))
        out.append(ArtifactLayer(name, source, FILE_MEDIA_TYPE, annotations))
    return out


class _HashingWriter:
    """A file-like object that hashes what goes through it (the uncompressed tar)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()


def _pack_folder(folder: Path, staging: Path) -> ArtifactLayer:
    """Pack `folder` into `staging/NAME.tar.gz` (sorted entries, so packing is repeatable)."""
    import gzip  # only folders need these: kept off every push's start-up
    import tarfile

    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = staging / f"{folder.name}.tar.gz"
    with open(out, "wb") as raw:
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=PACK_LEVEL)
        hashing = _HashingWriter(gz)  # type: ignore[arg-type]
        with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for root, dirs, files in os.walk(folder):
                dirs.sort()
                for name in [None, *sorted(files)]:
                    full = Path(root) if name is None else Path(root) / name
                    arcname = os.path.relpath(full, folder.parent)
                    tar.add(full, arcname=arcname, recursive=False)
        gz.close()
        raw.flush()
        os.fsync(raw.fileno())
    annotations = {
        TITLE: folder.name,
        ORAS_UNPACK: "true",
        ORAS_DIGEST: "sha256:" + hashing.sha.hexdigest(),
    }
    return ArtifactLayer(folder.name, FileRange.whole(out), FOLDER_MEDIA_TYPE, annotations)


def artifact_manifest(
    layers: list[Descriptor],
    *,
    artifact_type: str = DEFAULT_ARTIFACT_TYPE,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """The manifest for pushed layers, in order, with the empty config."""
    return image_manifest(
        EMPTY_CONFIG, layers, artifact_type=artifact_type, annotations=annotations
    )
