"""The transfer journal: one JSON file per transfer, written so that a kill never tears it.

Each entry is written with `statefile.atomic_write` (temporary file, fsync, rename, fsync of the
folder): after a SIGKILL at any instant the file holds the old state or the new one. A `version`
field lets a later Hoist read an older journal. The journal never holds a password or token.

One owner per transfer: a process that works on a transfer holds an OS lock (`flock`) on the
transfer's lock file `<id>.lock` beside its entry; the kernel releases it when the process
dies, even by SIGKILL, so a lock is never stale. Other Hoists leave an owned transfer alone, and
one whose owner died is interrupted, not running.

A bad entry (not JSON, not a regular file, too large, unreadable) is reported as a
JournalError naming the file, never read blindly: a FIFO in the folder must not block Hoist.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hoist.core.errors import JournalError, JournalUnwritable, TransferBusy, os_reason
from hoist.core.paths import state_dir
from hoist.core.statefile import atomic_write, read_regular_file
from hoist.core.units import MiB

#: 2: downloads (kind "download"), which version 1 would run as pushes. 3: a download names what
#: it fetches `source` (2 said `target`) and each kind writes only its own fields; a Hoist of
#: version 2 would call it "not a whole transfer", so it says a newer Hoist wrote it instead.
JOURNAL_VERSION = 3

#: A journal entry is a few KiB (a large image: some hundred KiB); anything past this is not one.
MAX_ENTRY_SIZE = 16 * MiB

#: How long a claim waits out other Hoists that only look at a lock (`owner`), never an owner.
_PROBE_WAIT = 1.0


if sys.platform != "win32":
    import fcntl

    def _try_lock(fd: int, *, shared: bool = False) -> bool:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

    LOCKS_WORK = True
else:  # msvcrt.locking locks byte ranges that a reader can't then read; not done yet

    def _try_lock(fd: int, *, shared: bool = False) -> bool:
        return True

    def _unlock(fd: int) -> None:
        pass

    LOCKS_WORK = False

#: Claims this process holds, by lock path: one process never claims a transfer twice.
_held: dict[Path, TransferClaim] = {}
_held_lock = threading.Lock()


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    return None


class TransferClaim:
    """This process's ownership of one transfer: an exclusive flock on `<id>.lock`, with
    the pid written inside so others can say who owns it. `release()` (or the process's
    death) ends it."""

    def __init__(self, transfer_id: str, path: Path, fd: int | None) -> None:
        self.transfer_id = transfer_id
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the transfer up. The lock file goes first (while still locked), so a Hoist
        that opened it meanwhile sees it was replaced and starts over (see `claim`)."""
        with _held_lock:
            if self._fd is None:
                return
            if _held.get(self.path) is self:
                del _held[self.path]
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TransferClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class TransferJournal:
    """The folder of transfer files (`<state dir>/transfers/<id>.json`)."""

    def __init__(self, root: Path | None = None) -> None:
        try:
            self.root = root or state_dir() / "transfers"
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise JournalUnwritable(
                f"Hoist cannot create its state folder {root or 'transfers'}: {os_reason(exc)}"
            ) from exc
        self._sweep()

    def _sweep(self) -> None:
        """Remove temporary files a killed write left behind (older than a minute, so a write
        in flight in another Hoist process is never touched)."""
        cutoff = time.time() - 60
        for tmp in self.root.glob(".*.json.*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    def path(self, transfer_id: str) -> Path:
        if not transfer_id or "/" in transfer_id or transfer_id.startswith("."):
            raise JournalError(f"{transfer_id!r} is not a transfer id")
        return self.root / f"{transfer_id}.json"

    def lock_path(self, transfer_id: str) -> Path:
        return self.path(transfer_id).with_suffix(".lock")

    # -- ownership ----------------------------------------------------------------------------

    def claim(self, transfer_id: str) -> TransferClaim:
        """Own the transfer until `release()` or this process's death. Blocking (a few
        syscalls, and waits of a millisecond while another Hoist merely looks at the lock).

        Raises TransferBusy when another live process (or this one) already owns it. In a
        folder where the lock file can't be made (full, read-only) the claim is not held: no
        journal entry can be written there either, so no other Hoist could take it over.
        """
        path = self.lock_path(transfer_id)
        if not LOCKS_WORK:
            return TransferClaim(transfer_id, path, None)
        with _held_lock:
            if path in _held:
                raise TransferBusy(transfer_id, os.getpid())
        deadline = time.monotonic() + _PROBE_WAIT
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            except OSError:
                return TransferClaim(transfer_id, path, None)
            if not _try_lock(fd):
                owned = not _try_lock(fd, shared=True)  # only `owner` takes it shared
                pid = _read_pid(fd)
                if not owned:
                    _unlock(fd)
                os.close(fd)
                if owned or time.monotonic() > deadline:
                    raise TransferBusy(transfer_id, pid)
                time.sleep(0.001)
                continue
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released (and unlinked) by its owner meanwhile: take the new one
                os.close(fd)
                continue
            with contextlib.suppress(OSError):  # a full disk: owned all the same, pid unsaid
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            claim = TransferClaim(transfer_id, path, fd)
            with _held_lock:
                _held[path] = claim
            return claim

    def owner(self, transfer_id: str) -> int | None:
        """The pid of the live process that owns the transfer (this one's own pid when it is
        this process), or None when nobody does."""
        path = self.lock_path(transfer_id)
        if not LOCKS_WORK:
            return None
        with _held_lock:
            if path in _held:
                return os.getpid()
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            if _try_lock(fd, shared=True):
                _unlock(fd)
                return None
            return _read_pid(fd) or -1
        finally:
            os.close(fd)

    # -- entries ------------------------------------------------------------------------------

    def save(self, transfer_id: str, doc: dict[str, Any]) -> None:
        """Write the entry. Raises JournalUnwritable when the folder can't take it."""
        body = {"version": JOURNAL_VERSION, **doc}
        try:
            atomic_write(self.path(transfer_id), json.dumps(body, indent=1).encode())
        except OSError as exc:
            raise JournalUnwritable(
                f"Hoist cannot save the state of transfer {transfer_id} in {self.root}: "
                f"{os_reason(exc)}"
            ) from exc

    def load(self, transfer_id: str) -> dict[str, Any]:
        path = self.path(transfer_id)
        try:
            doc = json.loads(read_regular_file(path, MAX_ENTRY_SIZE))
        except FileNotFoundError as exc:
            raise JournalError(
                f"no transfer {transfer_id!r}", hint="See `hoist transfers`"
            ) from exc
        except OSError as exc:
            raise JournalError(f"{path} can't be read: {exc.strerror}") from exc
        except ValueError as exc:  # not JSON, not UTF-8, not a regular file, too large
            raise JournalError(f"{path} is not a transfer's saved state: {exc}") from exc
        if not isinstance(doc, dict):
            raise JournalError(f"{path} is not a transfer's saved state")
        version = doc.get("version", 0)
        if not isinstance(version, int) or version < 0:
            raise JournalError(f"{path} has no valid version")
        if version > JOURNAL_VERSION:
            raise JournalError(
                f"the journal of {transfer_id} was written by a newer Hoist",
                hint="Update Hoist to resume it",
            )
        return doc

    def remove(self, transfer_id: str) -> None:
        """Delete the entry (readable or not). A transfer another live Hoist owns is left
        alone (TransferBusy); a folder where an entry should be is only reported."""
        path = self.path(transfer_id)
        lock = self.lock_path(transfer_id)
        with _held_lock:
            mine = lock in _held
        claim = None if mine else self.claim(transfer_id)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except IsADirectoryError as exc:
            raise JournalError(
                f"{path} is a folder, not a transfer", hint="Remove it yourself"
            ) from exc
        except OSError as exc:
            raise JournalError(f"{path} can't be removed: {exc.strerror}") from exc
        finally:
            if claim is not None:
                claim.release()

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.json") if not p.name.startswith("."))
