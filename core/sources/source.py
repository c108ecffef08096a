"""What every source format does, and the probe each one recognises a path by.

A format is one module (`artifact`: files, `folder`, `oci_layout`, `oci_archive`,
`docker_archive`, `compressed_archive`) that exports a `FORMAT`: it recognises a path (`detect`)
and opens it as a `Source`, which describes itself for the add sheet and plans its push. The
list of formats, in the order they are asked, is `hoist.core.sources.formats.FORMATS`: the one
place that the command line, the push planning and the window consult.

Two plan shapes, on purpose, because the manifests differ:
- an `ArtifactSource` (a file, a folder) plans blobs that become the layers of one artifact
  manifest that Hoist writes; several of them make one artifact (`artifact.ArtifactPlan`);
- an `ImageSource` (an OCI layout, an OCI archive, a `docker save` archive) is pushed alone and
  plans blobs plus the manifests it already holds, byte for byte (`ImagePlan`).
Both hand out the same `PlannedBlob`: a byte range of a local file, a media type, a digest when
the source verified one, annotations. No source reads its blobs itself: a `FileRange` is all a
push needs, and `content.stream_range` reads every one of them alike.
"""

from __future__ import annotations

import functools
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hoist.core.errors import SourceError
from hoist.core.sources.content import PlannedBlob
from hoist.core.sources.image import ImageEntry, ImagePlan, SourceKind
from hoist.core.sources.image_files import (
    BZIP2_MAGIC,
    GZIP_MAGIC,
    XZ_MAGIC,
    Progress,
    TarScan,
    scan_tar,
)

COMPRESSION_MAGIC = (GZIP_MAGIC, BZIP2_MAGIC, XZ_MAGIC)


class Probe:
    """A path, looked at once for all the formats that ask what it is: its stat, its first
    bytes and (for a tar) its headers are read at most once, however many formats look.

    Raises:
        SourceError: the path can't be read at all.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()
        try:
            self.stat = self.path.stat()
        except OSError as exc:
            raise SourceError(f"can't read {self.path}: {exc.strerror}") from exc

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.stat.st_mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.stat.st_mode)

    @functools.cached_property
    def head(self) -> bytes:
        """The first 512 bytes of a regular file (one tar header); empty for anything else."""
        if not self.is_file:
            return b""
        try:
            with open(self.path, "rb") as f:
                return f.read(512)
        except OSError as exc:
            raise SourceError(f"can't read {self.path}: {exc.strerror}") from exc

    @property
    def compressed(self) -> bool:
        """gzip, bzip2 or xz, by its magic bytes."""
        return self.head.startswith(COMPRESSION_MAGIC)

    @functools.cached_property
    def tar(self) -> TarScan | None:
        """The headers of an uncompressed tar; None when it is no tar (or clearly no image)."""
        head = self.head
        if len(head) < 512 or self.compressed:
            return None
        try:
            tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
        except tarfile.TarError:
            return None
        return scan_tar(self.path)


@dataclass(frozen=True)
class SourceSummary:
    """What the add sheet says of a source before anything is planned.

    `files` and `size` count what is on disk (a folder's regular files, links not followed);
    `images` are the images an image source holds, with their tags and platforms, listed
    without hashing any layer.
    """

    path: Path
    format: str
    files: int
    size: int
    images: list[ImageEntry] = field(default_factory=list)


@dataclass(frozen=True)
class FilesPlan:
    """What one source pushed as files gives its artifact: layers, in order, and the empty
    folders it holds (which the artifact's manifest names)."""

    blobs: list[PlannedBlob]
    empty_dirs: list[str] = field(default_factory=list)


class ArtifactSource(Protocol):
    """A source pushed as files: its blobs are layers of the artifact Hoist writes."""

    path: Path

    def describe(self) -> SourceSummary: ...

    def plan_files(self, part_size: int | None) -> FilesPlan:
        """Its layers; files larger than `part_size` (when given) cut into parts.

        Blocking (it may walk a folder): call it in a worker thread.
        """
        ...


class ImageSource(Protocol):
    """A container image, pushed alone, as the manifests it holds."""

    path: Path
    kind: SourceKind

    def describe(self) -> SourceSummary: ...

    def list_images(self) -> list[ImageEntry]:
        """The images it holds, with their tags and platforms, without hashing layers."""
        ...

    def plan_image(
        self,
        *,
        tag: str | None = None,
        platform: str | None = None,
        skopeo_compatible: bool = False,
        progress: Progress | None = None,
    ) -> ImagePlan:
        """A push plan, checked as far as reading can (blocking: call it in a worker thread):
        manifests and configs are hashed and parsed; a layer the source names by digest is
        not read here (the registry checks it on commit), one it doesn't name is hashed.

        `tag` picks an image when the source holds several (an
        `org.opencontainers.image.ref.name` annotation, or a docker `RepoTags` entry: its tag
        part or the whole `name:tag`). `platform` ("linux/arm64", "linux/arm/v7") narrows a
        multi-platform index to the one manifest for that platform; without it the whole
        index is pushed, every child before its parent. `progress(done, total)` is called as
        bytes are hashed; it may raise to abort. `skopeo_compatible`: see `docker_archive`.
        """
        ...


@dataclass(frozen=True)
class ImageFormat:
    """A kind of container image: recognised by content, never by name."""

    name: str
    detect: Callable[[Probe], bool]
    open: Callable[[Probe], ImageSource]


@dataclass(frozen=True)
class FilesFormat:
    """A kind of path pushed as the files of an artifact."""

    name: str
    detect: Callable[[Probe], bool]
    open: Callable[[Probe], ArtifactSource]


SourceFormat = ImageFormat | FilesFormat
