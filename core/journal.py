"""The transfer journal: one JSON file per transfer, written so that a kill never tears it.

Each write goes to a temporary file in the same folder, is fsynced, then renamed over the old
file (`os.replace` is atomic on POSIX and Windows), and the folder is fsynced so the rename itself
survives a power cut (qutebrowser's `savefile_open` does the same). After a SIGKILL at any
instant the file holds the old state or the new one. Files are mode 0600. A `version` field lets
a later Hoist read an older journal. The journal never holds a password or token.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import HoistError
from .paths import state_dir

JOURNAL_VERSION = 2  # 2: downloads (kind "download"), which version 1 would run as pushes


class JournalError(HoistError):
    hint = "The transfer's saved state is unreadable; remove it with `hoist cancel ID`"
    window_hint = (
        "The transfer's saved state is unreadable, so it is not listed; its file is in the "
        "journal folder (the transfers folder of Hoist's state folder)"
    )


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


class TransferJournal:
    """The folder of transfer files (`<state dir>/transfers/<id>.json`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or state_dir() / "transfers"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
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

    def save(self, transfer_id: str, doc: dict[str, Any]) -> None:
        body = {"version": JOURNAL_VERSION, **doc}
        atomic_write(self.path(transfer_id), json.dumps(body, indent=1).encode())

    def load(self, transfer_id: str) -> dict[str, Any]:
        path = self.path(transfer_id)
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise JournalError(
                f"no transfer {transfer_id!r}", hint="See `hoist transfers`"
            ) from exc
        except ValueError as exc:
            raise JournalError(f"the journal of {transfer_id} is corrupt") from exc
        if not isinstance(doc, dict) or int(doc.get("version", 0)) > JOURNAL_VERSION:
            raise JournalError(
                f"the journal of {transfer_id} was written by a newer Hoist",
                hint="Update Hoist to resume it",
            )
        return doc

    def remove(self, transfer_id: str) -> None:
        try:
            self.path(transfer_id).unlink()
        except FileNotFoundError:
            pass

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.json") if not p.name.startswith("."))

    def entries(self) -> Iterator[tuple[str, dict[str, Any] | JournalError]]:
        """Every transfer, or the error that keeps it from being read (shown, never hidden)."""
        for transfer_id in self.ids():
            try:
                yield transfer_id, self.load(transfer_id)
            except JournalError as exc:
                yield transfer_id, exc
