"""A gzip, bzip2 or xz-compressed image tarball: a format recognised only to be refused.

Hoist pushes each layer as a byte range of the file, and a layer inside a compressed stream
has none; saying so (and how to decompress it) beats pushing a `.tar.gz` image as a plain file.
Recognising one decompresses only far enough to see its first few tar headers.
"""

from __future__ import annotations

import bz2
import lzma
import re
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from hoist.core.errors import SourceError
from hoist.core.sources.image import ImageEntry, ImagePlan, SourceKind
from hoist.core.sources.image_files import BZIP2_MAGIC, GZIP_MAGIC, Progress, lenient_name
from hoist.core.sources.source import ImageFormat, Probe, SourceSummary

#: Detection decompresses at most this much.
_DETECT_DECOMPRESS_LIMIT = 4 * 1024 * 1024
#: Names that only an image tarball holds: what a compressed file is judged by.
_IMAGE_MEMBER = re.compile(r"(?:oci-layout|blobs/sha256/[0-9a-f]{64}|[0-9a-f]{64}/layer\.tar)\Z")


class _Budget(Exception):
    pass


class _LimitedReader:
    """A file-like view of a decompressing stream that gives up after `limit` bytes."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self._raw = raw
        self._left = limit

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise _Budget
        n = self._left if n < 0 else min(n, self._left)
        data = self._raw.read(n)
        self._left -= len(data)
        return data


def _compressed_image(path: Path, head: bytes) -> bool:
    """Whether a compressed file holds an image tarball, from its first tar headers only."""
    opener: Callable[[Path], BinaryIO]
    if head.startswith(GZIP_MAGIC):
        import gzip

        opener = gzip.open  # type: ignore[assignment]
    elif head.startswith(BZIP2_MAGIC):
        opener = bz2.open  # type: ignore[assignment]
    else:
        opener = lzma.open  # type: ignore[assignment]
    seen: list[str] = []
    try:
        with opener(path) as raw:
            limited = _LimitedReader(raw, _DETECT_DECOMPRESS_LIMIT)
            with tarfile.open(fileobj=limited, mode="r|") as tf:  # type: ignore[call-overload]
                for ti in tf:
                    name = lenient_name(ti.name)
                    if name is not None:
                        seen.append(name)
                    if len(seen) >= 64:
                        break
    except (_Budget, tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
        pass
    if not seen:
        return False
    # The layout may sit in one top folder (`tar czf x.tgz myimage/`).
    candidates = {n.split("/", 1)[1] for n in seen if "/" in n} | set(seen)
    return any(_IMAGE_MEMBER.match(n) for n in candidates)


class CompressedArchiveSource:
    """A compressed image tarball: described, listed as holding nothing, never planned."""

    kind = SourceKind.COMPRESSED_ARCHIVE

    def __init__(self, probe: Probe) -> None:
        self.path = probe.path

    def describe(self) -> SourceSummary:
        return SourceSummary(self.path, FORMAT.name, 1, self.path.stat().st_size)

    def list_images(self) -> list[ImageEntry]:
        return []

    def plan_image(
        self,
        *,
        tag: str | None = None,
        platform: str | None = None,
        skopeo_compatible: bool = False,
        progress: Progress | None = None,
    ) -> ImagePlan:
        raise SourceError(
            f"{self.path} is a compressed image archive; Hoist pushes each layer as a byte "
            "range of the file and can't address layers inside a compressed stream",
            hint=f"Decompress it first (e.g. `gunzip -k {self.path.name}`) and push the .tar",
        )


def _detect(probe: Probe) -> bool:
    return probe.compressed and _compressed_image(probe.path, probe.head)


FORMAT = ImageFormat("compressed image archive", _detect, CompressedArchiveSource)
