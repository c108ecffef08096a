"""Unpacking a folder layer (`io.deis.oras.content.unpack`) as oras does, but safely: every
entry must lie inside the folder, checked with tarfile's `data` filter besides (no absolute
paths, no `..`, no links leaving the folder, no devices), and the tar must match
`io.deis.oras.content.digest`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import IO

from hoist.core.errors import (
    ArtifactInvalid,
    SourceError,
    VerificationFailed,
    write_failed,
)
from hoist.core.oci.digest import READ_BLOCK
from hoist.core.sources.artifact import (
    folder_member_filter,
)
from hoist.core.transfer.pull_jobs import safe_parts

# -- folders --------------------------------------------------------------------------------


class _HashingReader:
    """A read-only stream that hashes what passes through it (the uncompressed tar)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.sha.update(data)
        return data

    def drain(self) -> None:
        while self.read(READ_BLOCK):
            pass


def unpack_folder(archive: Path, title: str, dest: Path, tar_digest: str | None) -> None:
    """Extract a folder layer into a staging folder inside `dest`, check the tar's digest,
    then move the folder into place (blocking: run in a worker thread)."""
    parts = safe_parts(title)
    target = dest.joinpath(*parts)
    staging = Path(tempfile.mkdtemp(prefix=f".{parts[-1]}.", suffix=".unpack", dir=dest))
    try:
        with contextlib.ExitStack() as stack:
            raw = stack.enter_context(open(archive, "rb"))
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream: IO[bytes] = raw
            if compressed:
                unzipped = gzip.GzipFile(fileobj=raw, mode="rb")
                stack.callback(unzipped.close)
                stream = unzipped  # type: ignore[assignment]
            reader = _HashingReader(stream)
            try:
                with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                    tar.errorlevel = 2
                    tar.extractall(staging, filter=folder_member_filter(parts))
                reader.drain()
            except tarfile.FilterError as exc:
                raise SourceError(
                    f"the folder {title!r} holds an unsafe entry ({exc})",
                    hint="Nothing of this folder was kept",
                ) from exc
            except OSError as exc:
                if exc.errno is None:  # gzip's BadGzipFile: the archive, not the disk
                    raise VerificationFailed(
                        f"the folder {title!r} is not a readable tar ({exc})"
                    ) from exc
                # The disk refused (full, permissions): the archive is fine and is kept.
                raise write_failed(exc, exc.filename or target) from exc
            except (tarfile.TarError, EOFError, zlib.error) as exc:
                raise VerificationFailed(
                    f"the folder {title!r} is not a readable tar ({exc})"
                ) from exc
        if tar_digest and "sha256:" + reader.sha.hexdigest() != tar_digest:
            raise VerificationFailed(
                f"the folder {title!r} unpacked to a tar whose sha256 is not {tar_digest}"
            )
        unpacked = staging.joinpath(*parts)
        if not unpacked.is_dir():
            raise ArtifactInvalid(f"the folder layer {title!r} holds no folder {title!r}")
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(unpacked, target)
    finally:
        # Best effort: the staging folder holds only what this call extracted.
        shutil.rmtree(staging, ignore_errors=True)
