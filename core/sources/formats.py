"""The source formats Hoist knows, in the order they are asked, and what is decided by asking.

`FORMATS` is the one list: the command line (`hoist push PATH`), the push planning
(`hoist.core.transfer.push`) and the window's add sheet all recognise a path through it, so a
new format is its module, its test, and one line here. The first format whose `detect` answers
yes is the path's format: more specific ones come first (a Docker 25+ archive holds an OCI
layout too; an OCI layout is a folder; every archive is a file). What every format refuses
alike (a path that is missing or unreadable) is checked here too, by `check_sources`.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from hoist.core.errors import SourceError
from hoist.core.sources import (
    artifact,
    compressed_archive,
    docker_archive,
    folder,
    oci_archive,
    oci_layout,
)
from hoist.core.sources.artifact import (
    DEFAULT_PACK,
    PACK_FORMATS,
    ArtifactPlan,
    SplitOptions,
    pack_folder,
)
from hoist.core.sources.folder import empty_dirs_annotation
from hoist.core.sources.image import ImageEntry, ImagePlan, SourceKind
from hoist.core.sources.image_files import Progress
from hoist.core.sources.source import (
    ArtifactSource,
    FilesFormat,
    ImageFormat,
    ImageSource,
    Probe,
    SourceFormat,
)

FORMATS: tuple[SourceFormat, ...] = (
    docker_archive.FORMAT,
    oci_archive.FORMAT,
    oci_layout.FORMAT,
    compressed_archive.FORMAT,
    folder.FORMAT,
    artifact.FORMAT,
)


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


def recognise(path: Path, *, as_files: bool = False) -> tuple[SourceFormat, Probe] | None:
    """The format of `path` (with its probe, for opening it), None when no format takes it.

    With `as_files`, only the formats pushed as files are asked (an image pushed as a file).
    Blocking (it reads a tar's headers): call it in a worker thread.

    Raises:
        SourceError: the path can't be read.
    """
    probe = Probe(path)
    for fmt in FORMATS:
        if as_files and not isinstance(fmt, FilesFormat):
            continue
        if fmt.detect(probe):
            return fmt, probe
    return None


def image_source(path: Path) -> ImageSource | None:
    """`path` opened as an image source, None when it is not a container image."""
    found = recognise(path)
    if found is None:
        return None
    fmt, probe = found
    return fmt.open(probe) if isinstance(fmt, ImageFormat) else None


def files_source(path: Path) -> ArtifactSource:
    """`path` opened as a source pushed as files (a folder, a file).

    Raises:
        SourceError: it is neither (a FIFO, a socket, a device).
    """
    found = recognise(path, as_files=True)
    if found is not None and isinstance(found[0], FilesFormat):
        return found[0].open(found[1])
    raise SourceError(f"{path.absolute()} is not a regular file or a folder")


def push_as_image(paths: list[Path], *, as_files: bool = False) -> ImageSource | None:
    """The image to push when `paths` are pushed as one (a single image source, not forced
    to files); None when they are pushed as the files of an artifact. Blocking."""
    if as_files or len(paths) != 1:
        return None
    return image_source(paths[0])


def detect_source(path: str | os.PathLike[str]) -> SourceKind | None:
    """What kind of image `path` holds, judged by content; None when it is not an image.

    Cheap: a folder is checked for three names, a tar's headers are read (not its data), and a
    compressed file is decompressed only far enough to see its first few tar headers.
    """
    source = image_source(Path(path))
    return None if source is None else source.kind


def require_image(path: Path) -> ImageSource:
    """`path` opened as an image source, or a SourceError saying it is none."""
    source = image_source(path)
    if source is None:
        raise SourceError(
            f"{path.absolute()} is not a container image: it is neither an OCI image layout "
            "(oci-layout, index.json, blobs/) nor a `docker save` archive",
            hint="Push it as a plain file instead",
        )
    return source


def open_image(
    path: str | os.PathLike[str],
    *,
    tag: str | None = None,
    platform: str | None = None,
    skopeo_compatible: bool = False,
    progress: Progress | None = None,
) -> ImagePlan:
    """Read an image source into a push plan (blocking: call it in a worker thread); see
    `ImageSource.plan_image` for what is checked here and what the registry checks.

    Raises:
        SourceError: it is no image, or not a sound one.
    """
    return require_image(Path(path)).plan_image(
        tag=tag, platform=platform, skopeo_compatible=skopeo_compatible, progress=progress
    )


def list_images(path: str | os.PathLike[str]) -> list[ImageEntry]:
    """The images a source holds, with their tags and platforms, without hashing layers; none
    when it is no image."""
    source = image_source(Path(path))
    return [] if source is None else source.list_images()


def plan_artifact(
    paths: list[Path],
    staging: Path,
    split: SplitOptions | None = None,
    *,
    pack: bool | str = False,
    stop: threading.Event | None = None,
) -> ArtifactPlan:
    """One artifact of files and folders: each path's layers in order (a folder's files, its
    small files in bundles, or with `pack` one tar per folder, packed into `staging`: `pack`
    is one of PACK_FORMATS, True meaning DEFAULT_PACK).

    Blocking (it walks folders, and packs them with `pack`): call it in a worker thread, and
    set `stop` to end the packing at once (PackingStopped).
    """
    pack_format = DEFAULT_PACK if pack is True else (pack or None)
    if pack_format is not None and pack_format not in PACK_FORMATS:
        raise SourceError(f"a folder is packed as {' or '.join(PACK_FORMATS)}, not {pack_format}")
    if not paths:
        raise SourceError("nothing to push: name at least one file or folder")
    blobs = []
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
        if pack_format is not None and path.is_dir():
            blobs.append(pack_folder(path, staging, stop, gzipped=pack_format == "tar.gz"))
            continue
        part = files_source(path).plan_files(split.part_size if split else None)
        blobs.extend(part.blobs)
        empty_dirs.extend(part.empty_dirs)
    return ArtifactPlan(blobs, empty_dirs_annotation(empty_dirs))
