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
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from hoist.core.errors import SourceError, StateFolderError, os_reason
from hoist.core.oci.digest import Descriptor, sha256_bytes
from hoist.core.oci.manifest import OCI_EMPTY, OCI_EMPTY_DATA, image_manifest
from hoist.core.sources.bundle import (
    BUNDLE,
    BUNDLE_FILES,
    BUNDLE_FORMAT,
    BUNDLE_MEDIA_TYPE,
    bundle_title,
    plan_bundles,
)
from hoist.core.sources.content import FileRange
from hoist.core.sources.folder import FILE_MODE, FolderFile, empty_dirs_annotation, scan_folder

if TYPE_CHECKING:
    import tarfile

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
#: What `--pack` may make of a folder: a plain tar, or a gzip tar (the default, as oras packs).
PACK_FORMATS = ("tar", "tar.gz")
DEFAULT_PACK = "tar.gz"


@dataclass(frozen=True)
class SplitOptions:
    part_size: int


def check_sources(paths: list[Path]) -> None:
    """Refuse at once, by name, a source that is not there or can't be read (before a sheet
    or a plan is made for it). Blocking (it stats each path): call it in a worker thread.

    Raises:
        SourceError: naming the first path that can't be pushed.
    """
    for path in paths:
        try:
            info = path.stat()
        except FileNotFoundError:
            raise SourceError(
                f"{path} does not exist", hint="Check the path: it was moved, renamed or deleted"
            ) from None
        except OSError as exc:
            raise SourceError(f"can't read {path.name}: {exc.strerror}") from exc
        is_dir = stat.S_ISDIR(info.st_mode)
        if not (is_dir or stat.S_ISREG(info.st_mode)):
            raise SourceError(f"{path.name} is not a regular file or a folder ({path})")
        if not os.access(path, os.R_OK | (os.X_OK if is_dir else 0)):
            raise SourceError(
                f"can't read {path.name}: permission denied ({path})",
                hint="Give your user read access to it, or push a copy",
            )


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
    paths: list[Path],
    staging: Path,
    split: SplitOptions | None = None,
    *,
    pack: bool | str = False,
    stop: threading.Event | None = None,
) -> ArtifactPlan:
    """One layer per file (or per part; a folder's files, its small files in bundles, or with
    `pack` one tar per folder: `pack` is one of PACK_FORMATS, True meaning DEFAULT_PACK).

    Blocking (it walks folders, and packs them with `pack`): call it in a worker thread, and
    set `stop` to end the packing at once (PackingStopped).
    """
    pack_format = DEFAULT_PACK if pack is True else (pack or None)
    if pack_format is not None and pack_format not in PACK_FORMATS:
        raise SourceError(f"a folder is packed as {' or '.join(PACK_FORMATS)}, not {pack_format}")
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
        if path.is_dir() and pack_format is not None:
            records.append(_pack_folder(path, staging, stop, gzipped=pack_format == "tar.gz"))
        elif path.is_dir():
            scan = scan_folder(path)
            empty_dirs.extend(scan.empty_dirs)
            records.extend(_folder_layers(path, scan.files))
        elif path.is_file():
            _check_readable(path)
            if split is not None and path.stat().st_size > split.part_size:
                records.extend(_split(path, split.part_size))
            else:
                records.append(
                    ArtifactLayer(title, FileRange.whole(path), FILE_MEDIA_TYPE, {TITLE: title})
                )
        else:
            raise SourceError(f"{path} is not a regular file or a folder")
    return ArtifactPlan(records, empty_dirs_annotation(empty_dirs))


def _folder_layers(folder: Path, files: list[FolderFile]) -> list[ArtifactLayer]:
    """A scanned folder's layers: its small files in bundles (first), then one per file."""
    bundles, alone = plan_bundles(folder.absolute(), files)
    titles = {f.title for f in files}
    layers = []
    for index, bundle in enumerate(bundles, 1):
        title = bundle_title(folder.name, index)
        if title in titles:
            raise SourceError(
                f"the folder holds a file named {title!r}, the name Hoist gives a bundle",
                hint="Rename that file, or push the folder with --pack",
            )
        annotations = {TITLE: title, BUNDLE: BUNDLE_FORMAT, BUNDLE_FILES: str(len(bundle.members))}
        name = f"{title} ({len(bundle.members)} files)"  # what progress and the window show
        layers.append(ArtifactLayer(name, bundle, BUNDLE_MEDIA_TYPE, annotations))
    layers.extend(
        ArtifactLayer(
            f.title, FileRange(f.path, 0, f.size), FILE_MEDIA_TYPE,
            {TITLE: f.title, FILE_MODE: f.mode_text},
        )
        for f in alone
    )  # fmt: skip
    return layers


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


def _pack_folder(
    folder: Path, staging: Path, stop: threading.Event | None = None, *, gzipped: bool = True
) -> ArtifactLayer:
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
    return ArtifactLayer(folder.name, FileRange.whole(out), media_type, annotations)


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
