"""Where a blob's bytes come from: a byte range of a local file.

Plain files, split-mode parts, and layers inside a `docker save` tarball or an OCI layout are all
byte ranges of some file, so one streaming reader serves them all, and a resume needs nothing but
the path, the offset and the length. A bundle of a folder's small files (`bundle.BundleSource`)
is the one source that is not: its bytes are generated from many files, through the same
reader interface (`FileRange.open_reader`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hoist.core.bandwidth import Throttle
from hoist.core.errors import FileChanged, SourceError
from hoist.core.oci.digest import READ_BLOCK, SequentialHasher, hash_file_range


@dataclass(frozen=True)
class FileIdentity:
    """What tells us a file is still the one we began uploading (as tus fingerprints uploads)."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        try:
            st = path.stat()
        except OSError as exc:
            raise SourceError(f"can't read {path}: {exc.strerror}") from exc
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)

    def to_json(self) -> dict[str, int]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "inode": self.inode}

    @classmethod
    def from_json(cls, doc: dict[str, int]) -> FileIdentity:
        return cls(int(doc["size"]), int(doc["mtime_ns"]), int(doc["inode"]))


@dataclass(frozen=True)
class FileRange:
    """`length` bytes of the file at `path` from `offset`."""

    path: Path
    offset: int
    length: int

    @classmethod
    def whole(cls, path: Path) -> FileRange:
        return cls(path, 0, FileIdentity.of(path).size)

    def check_unchanged(self, identity: FileIdentity) -> None:
        """Raise FileChanged when the file is not the one `identity` describes."""
        now = FileIdentity.of(self.path)
        if now.size != identity.size:
            raise FileChanged(f"{self.path} changed size ({identity.size} → {now.size} bytes)")
        if now.mtime_ns != identity.mtime_ns or now.inode != identity.inode:
            raise FileChanged(f"{self.path} was modified since the upload began")

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "offset": self.offset, "length": self.length}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> FileRange:
        return cls(Path(str(doc["path"])), int(str(doc["offset"])), int(str(doc["length"])))

    @property
    def is_one_file(self) -> bool:
        """Whether the bytes are one range of `path` (sendfile may send them); a small-file
        bundle (`hoist.core.sources.bundle`) overrides it: its bytes are generated."""
        return True

    def open_reader(self) -> RangeReader:
        """A reader of the blob's bytes by position (blocking: opens the file)."""
        return _FileReader(self)

    def hash_prefix(self, length: int, stop: threading.Event | None = None) -> SequentialHasher:
        """The blob's first `length` bytes hashed (blocking: see `hash_file_range`)."""
        return hash_file_range(self.path, self.offset, length, stop)


class RangeReader(Protocol):
    """Reads a blob's bytes by position within the blob (blocking calls)."""

    def pread(self, n: int, pos: int) -> bytes:
        """Exactly `n` bytes from `pos`, or FileChanged when the source ends sooner."""
        ...

    def close(self) -> None: ...


class _FileReader:
    def __init__(self, source: FileRange) -> None:
        self.source = source
        self.fd = os.open(source.path, os.O_RDONLY)

    def pread(self, n: int, pos: int) -> bytes:
        data = os.pread(self.fd, n, self.source.offset + pos)
        if len(data) != n:
            raise FileChanged(f"{self.source.path} is shorter than when the upload began")
        return data

    def close(self) -> None:
        os.close(self.fd)


async def stream_range(
    source: FileRange,
    start: int,
    end: int,
    hasher: SequentialHasher,
    *,
    on_block: Callable[[int], None] | None = None,
    throttle: Throttle | None = None,
    block: int = READ_BLOCK,
) -> AsyncGenerator[bytes, None]:
    """Yield the blob's bytes [start, end) read from disk, hashing them on the way.

    Reading and hashing run in a worker thread (hashlib releases the GIL), one block ahead of
    the network, so the event loop never waits on the disk or on sha256. Memory is two blocks,
    whatever the chunk or file size. Bytes the hasher has already seen (a re-sent chunk) are
    read again but not hashed again.
    """
    reader = await asyncio.to_thread(source.open_reader)
    pending: asyncio.Future[bytes] | None = None

    def read(pos: int) -> bytes:
        data = reader.pread(min(block, end - pos), pos)
        hasher.update(pos, data)
        return data

    try:
        pos = start
        if pos < end:
            pending = asyncio.ensure_future(asyncio.to_thread(read, pos))
        while pending is not None:
            data = await pending
            pos += len(data)
            pending = asyncio.ensure_future(asyncio.to_thread(read, pos)) if pos < end else None
            if throttle is not None:
                await throttle(len(data))
            yield data
            if on_block is not None:
                on_block(len(data))
    finally:
        # A read may still run in its thread: the descriptor is closed only once it is done, so
        # the number can't be reused under it (a read of another file would poison the hash).
        if pending is not None and not pending.done():

            def close_when_read(f: asyncio.Future[bytes]) -> None:
                if not f.cancelled():
                    f.exception()  # retrieved: the generator is gone
                reader.close()

            pending.add_done_callback(close_when_read)
        else:
            if pending is not None and not pending.cancelled():
                pending.exception()  # retrieved: nobody else will
            reader.close()


#: Only these bits are kept: no setuid/setgid/sticky bit travels through a registry.
KEPT_MODE_BITS = 0o777


@dataclass(frozen=True)
class FolderFile:
    """One regular file of a scanned folder."""

    path: Path  # absolute
    title: str  # `folder/sub/name`, forward slashes
    size: int
    mode: int  # permission bits only
    mtime_ns: int = 0  # with size and inode: the identity the digest cache keys bundles by
    inode: int = 0

    @property
    def mode_text(self) -> str:
        return f"{self.mode:04o}"


@dataclass(frozen=True)
class PlannedBlob:
    """One blob a source will send, whatever the source: a file, a split part, a packed folder,
    an image's layer or config. Plain data: the transfer layer turns it into the record it
    journals and uploads.

    `digest` is known when the source has verified the bytes already (an image's blobs); None
    for a file's, which is hashed as it is sent. `identity` is the file as it was when a digest
    was taken, so that a resume can tell it was replaced; None: taken when the push is planned.
    `name` is what a person reads in a transfer's rows (a file's title, a part's name, a short
    digest).
    """

    name: str
    source: FileRange
    media_type: str
    annotations: dict[str, str] = field(default_factory=dict)
    digest: str | None = None
    identity: FileIdentity | None = None

    @property
    def size(self) -> int:
        return self.source.length
