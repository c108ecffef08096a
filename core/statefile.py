"""Hoist's own files (journal entries, learned profiles, the window's settings): written so that
a kill never tears them, read so that a damaged or hostile one can't block or flood Hoist.

Each write goes to a temporary file in the same folder, is fsynced, then renamed over the old
file (`os.replace` is atomic on POSIX and Windows), and the folder is fsynced so the rename itself
survives a power cut (qutebrowser's `savefile_open` does the same). After a SIGKILL at any
instant the file holds the old state or the new one. Files are mode 0600.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably, mode 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of `path`, refusing what is not a regular file (a FIFO would block, a device
    never end) or is larger than `limit`. Raises OSError, or ValueError with the reason."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("it is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"it is larger than {limit} bytes")
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limit:
                raise ValueError(f"it is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
