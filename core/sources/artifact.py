"""Files and folders as ORAS-compatible OCI artifacts, and split mode for very large files.

The manifest is an OCI image manifest with `artifactType`, the empty config
(`application/vnd.oci.empty.v1+json`, `{}`) and one layer per file, titled with
`org.opencontainers.image.title`, so `oras pull` writes each file back under its name.

A folder is pushed as its files (`hoist.core.sources.folder`: one layer per file, titled
`folder/sub/name`; its small files in tar bundles, `hoist.core.sources.bundle`). Asked to pack
it (`--pack`), it is packed as a gzip tar (as oras does; `--pack=tar`: uncompressed),
titled with the folder's name and annotated `io.deis.oras.content.unpack: "true"` and
`io.deis.oras.content.digest` (the tar's own digest), so `oras pull` unpacks it (the gzip tar
only: oras-go gunzips every layer so marked). The tar is written once into the state folder,
so that a resume reads the very same bytes.

Split mode cuts one file into parts of `part_size` bytes, each its own blob, so that a broken
session costs at most one part. Each part is titled `NAME.partNNNN` (NNNN from 0001, zero-padded
to the part count's width) so that plain `oras pull` gives files that `cat` back together in
order, and annotated with `app.hoist.split.*` (see README "Split mode").
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from hoist.core.errors import SourceError, StateFolderError, os_reason
from hoist.core.oci.annotations import (
    ORAS_DIGEST,
    ORAS_UNPACK,
    SPLIT_COUNT,
    SPLIT_FILE,
    SPLIT_FILE_SIZE,
    SPLIT_INDEX,
    SPLIT_OFFSET,
    TITLE,
)
from hoist.core.oci.digest import Descriptor, sha256_bytes
from hoist.core.oci.manifest import (
    DEFAULT_ARTIFACT_TYPE,
    FILE_MEDIA_TYPE,
    FOLDER_MEDIA_TYPE,
    OCI_EMPTY,
    OCI_EMPTY_DATA,
    image_manifest,
)
from hoist.core.sources.content import FileRange, PlannedBlob
from hoist.core.sources.source import FilesFormat, FilesPlan, Probe, SourceSummary

if TYPE_CHECKING:
    import tarfile

EMPTY_CONFIG = Descriptor(OCI_EMPTY, sha256_bytes(OCI_EMPTY_DATA), len(OCI_EMPTY_DATA))
#: gzip level of a packed folder: the fastest. Model weights don't compress, and level 9 ran at
#: ~37 MiB/s on them (issue 19); level 1 costs a few percent of size on text.
PACK_LEVEL = 1
#: What `--pack` may make of a folder: a plain tar, or a gzip tar (the default, as oras packs).
PACK_FORMATS = ("tar", "tar.gz")
DEFAULT_PACK = "tar.gz"


@dataclass(frozen=True)
class SplitOptions:
    part_size: int


@dataclass(frozen=True)
class ArtifactPlan:
    """An artifact's layers, in order, and what its manifest says besides (empty folders)."""

    blobs: list[PlannedBlob]
    annotations: dict[str, str]


class FileSource:
    """One file pushed as a layer titled with its name, or cut into parts (split mode)."""

    def __init__(self, probe: Probe) -> None:
        self.path = probe.path

    def describe(self) -> SourceSummary:
        return SourceSummary(self.path, FORMAT.name, 1, self.path.stat().st_size)

    def plan_files(self, part_size: int | None) -> FilesPlan:
        _check_readable(self.path)
        if part_size is not None and self.path.stat().st_size > part_size:
            return FilesPlan(_split(self.path, part_size))
        title = self.path.name
        return FilesPlan(
            [PlannedBlob(title, FileRange.whole(self.path), FILE_MEDIA_TYPE, {TITLE: title})]
        )


FORMAT = FilesFormat("file", lambda probe: probe.is_file, FileSource)


def _check_readable(path: Path) -> None:
    """Refuse a file that can't be read now, rather than fail once the push has begun."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SourceError(
            f"can't read {path}: {exc.strerror or exc}",
            hint="Nothing was pushed; check the file's permissions",
        ) from exc


def _split(path: Path, part_size: int) -> list[PlannedBlob]:
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
        out.append(PlannedBlob(name, source, FILE_MEDIA_TYPE, annotations))
    return out


class PackingStopped(Exception):
    """The push was stopped (Ctrl-C, Cancel) while its folder was packed: nothing is kept."""


class _HashingWriter:
    """A file-like object that hashes what goes through it (the uncompressed tar), and stops
    the packing as soon as `stop` is set (a 50 GB folder takes minutes to pack)."""

    def __init__(self, inner: BinaryIO, stop: threading.Event | None = None) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.stop = stop

    def write(self, data: bytes) -> int:
        if self.stop is not None and self.stop.is_set():
            raise PackingStopped()
        self.sha.update(data)
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()


def folder_member_filter(
    parts: tuple[str, ...],
) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]:
    """What a folder layer may hold, for `tarfile`'s `filter=`: tarfile's `data` filter (no
    absolute paths, no devices or pipes, no links leaving the destination), plus: every entry
    and link target lies inside the folder `parts`. A pull unpacks with it, and a push packs
    nothing it refuses, so that nothing is pushed that can't be pulled back.

    Raises:
        SourceError, tarfile.FilterError: the member is refused.
    """
    import tarfile

    prefix = "/".join(parts)

    def inside(name: str) -> bool:
        name = posixpath.normpath(name)
        return name == prefix or name.startswith(prefix + "/")

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        if not inside(member.name):
            raise SourceError(
                f"the folder {prefix!r} holds {member.name!r}, outside the folder",
                hint="Nothing of this folder was kept; its archive is not what oras packs",
            )
        if member.issym() and (
            posixpath.isabs(member.linkname)
            or not inside(posixpath.join(posixpath.dirname(member.name), member.linkname))
        ):
            raise SourceError(
                f"the folder {prefix!r} holds a link {member.name!r} to {member.linkname!r}, "
                "outside the folder",
                hint="Nothing of this folder was kept",
            )
        if member.islnk() and not inside(member.linkname):
            raise SourceError(
                f"the folder {prefix!r} holds a hard link to {member.linkname!r}, outside it",
                hint="Nothing of this folder was kept",
            )
        return tarfile.data_filter(member, dest)

    return check


def pack_folder(
    folder: Path, staging: Path, stop: threading.Event | None = None, *, gzipped: bool = True
) -> PlannedBlob:
    """Pack `folder` into `staging/NAME.tar.gz` (or `.tar`: sorted entries, so packing is
    repeatable).

    Refuses, naming the path, what a pull could not restore (a link leading out of the folder
    or by absolute path, a pipe, a device, a socket) and what can't be read, before anything
    is pushed. The archive is removed when packing fails or is stopped.

    Raises SourceError naming an unreadable file of the folder, or StateFolderError when the
    state folder can't take the tar (a full disk).
    """
    import gzip  # only folders need these: kept off every push's start-up

    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = staging / f"{folder.name}.tar{'.gz' if gzipped else ''}"
    try:
        with open(out, "wb") as raw:
            gz = gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=PACK_LEVEL
            ) if gzipped else None  # fmt: skip
            hashing = _HashingWriter(gz or raw, stop)  # type: ignore[arg-type]
            _write_folder_tar(folder, hashing, staging)
            if gz is not None:
                gz.close()
            raw.flush()
            os.fsync(raw.fileno())
    except OSError as exc:
        out.unlink(missing_ok=True)
        if exc.filename and not Path(exc.filename).is_relative_to(staging):
            raise SourceError(f"{exc.filename} can't be read: {exc.strerror}") from exc
        raise StateFolderError(  # packed once, so that a resume sends the very same bytes
            f"Hoist cannot pack {folder} in its state folder {staging.parent.parent}: "
            f"{os_reason(exc)}"
        ) from exc
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    annotations = {
        TITLE: folder.name,
        ORAS_UNPACK: "true",
        ORAS_DIGEST: "sha256:" + hashing.sha.hexdigest(),
    }
    media_type = FOLDER_MEDIA_TYPE if gzipped else FILE_MEDIA_TYPE
    return PlannedBlob(folder.name, FileRange.whole(out), media_type, annotations)


def _write_folder_tar(folder: Path, hashing: _HashingWriter, staging: Path) -> None:
    import tarfile

    allowed = folder_member_filter((folder.name,))
    probe = str(staging / ".unpack-check")  # never created: the filter only reasons on paths

    def unreadable(exc: OSError) -> NoReturn:
        raise SourceError(
            f"can't read {exc.filename}: {exc.strerror or exc}",
            hint="Nothing was pushed; make the folder readable, or leave that part out",
        ) from exc

    with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for root, dirs, files in os.walk(folder, onerror=unreadable):
            dirs.sort()
            # os.walk lists a link to a folder among the folders but never enters it: it is
            # an entry of its own (a link), else it would silently be left out.
            links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
            dirs[:] = [d for d in dirs if d not in links]
            for name in [None, *sorted(files + links)]:
                full = Path(root) if name is None else Path(root) / name
                arcname = os.path.relpath(full, folder.parent)
                try:
                    info = tar.gettarinfo(str(full), arcname=arcname)
                except OSError as exc:
                    unreadable(exc)
                _refuse_unrestorable(full, info, allowed, probe)
                try:
                    if info.isreg():
                        with open(full, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
                except OSError as exc:
                    if exc.filename is None:
                        exc.filename = str(full)
                    unreadable(exc)


def _refuse_unrestorable(
    path: Path,
    info: tarfile.TarInfo | None,
    allowed: Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None],
    probe: str,
) -> None:
    """Raise SourceError naming `path` when a pull would refuse its entry (or tar can't hold
    it at all: a socket)."""
    import tarfile

    hint = "Nothing was pushed; a pull could not restore it: move it out of the folder"
    if info is None:
        raise SourceError(f"{path} is a socket, which an archive can't hold", hint=hint)
    if info.isfifo() or info.isdev():
        what = "a named pipe (FIFO)" if info.isfifo() else "a device file"
        raise SourceError(f"{path} is {what}, which a pull does not create", hint=hint)
    if info.issym() and posixpath.isabs(info.linkname):
        raise SourceError(
            f"{path} is a link by absolute path ({info.linkname}); a pull only restores "
            "relative links inside the folder",
            hint="Nothing was pushed; make the link relative, or replace it with its target",
        )
    try:
        allowed(info, probe)
    except (SourceError, tarfile.FilterError) as exc:
        target = f" to {info.linkname}" if info.issym() or info.islnk() else ""
        raise SourceError(
            f"{path} is a link{target} leading out of the folder"
            if target
            else f"{path} can't be restored by a pull ({exc})",
            hint="Nothing was pushed; replace the link with what it points to, or remove it",
        ) from exc


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
