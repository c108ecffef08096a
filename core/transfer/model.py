"""A transfer as plain data: what the journal stores of a push or a download, and what
every run of one shares (`JournaledRun`: its journal writes and state events).
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hoist.core.errors import HoistError, JournalError, JournalUnwritable
from hoist.core.oci.manifest import DEFAULT_ARTIFACT_TYPE
from hoist.core.oci.reference import Reference, parse_reference
from hoist.core.paths import state_dir
from hoist.core.progress import BlobState, ProgressCallback, TransferEvent
from hoist.core.registry.client import RegistryClient
from hoist.core.sources.image import PlanManifest
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.upload import (
    BlobRecord,
)


class TransferState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSING = "pausing"  # a pause was asked; the stream in flight is ending
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: How long a deferred journal write (`JournaledRun.save_soon`) may wait.
JOURNAL_LATER_S = 0.5


def state_at_rest(state: TransferState) -> TransferState:
    """What a journal entry's state means once no run holds it: a transfer caught while
    pausing (the window killed, the machine off) had kept its acknowledged bytes, so it is
    paused, and resumable as any paused one."""
    return TransferState.PAUSED if state == TransferState.PAUSING else state


def manifest_to_json(manifest: PlanManifest) -> dict[str, Any]:
    """How the journal keeps a manifest to push byte for byte (an image's)."""
    return {
        "media_type": manifest.media_type,
        "digest": manifest.digest,
        "data": base64.b64encode(manifest.data).decode(),
        "tag": manifest.tag,
    }


def manifest_from_json(doc: dict[str, Any]) -> PlanManifest:
    return PlanManifest(
        doc["media_type"], doc["digest"], base64.b64decode(doc["data"]), doc.get("tag")
    )


#: The kinds of transfer: two pushes and a download.
ARTIFACT, IMAGE, DOWNLOAD = "artifact", "image", "download"


@dataclass
class DownloadPart:
    """One blob of a download as the journal keeps it: where it goes and how much is there.

    `file` is the final path; its bytes gather in `file + ".partial"` until verified.
    """

    name: str
    size: int
    file: str
    received: int = 0
    state: BlobState = BlobState.PENDING
    kind: str = "file"  # "file", "split", "folder" (`file` is then its hidden archive), ...

    @property
    def finished(self) -> bool:
        return self.state in (BlobState.DONE, BlobState.EXISTS)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "file": self.file,
            "received": self.received,
            "state": self.state.value,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DownloadPart:
        return cls(
            str(doc["name"]),
            int(doc["size"]),
            str(doc["file"]),
            int(doc.get("received", 0)),
            BlobState(doc.get("state", "pending")),
            str(doc.get("kind", "file")),
        )


@dataclass
class Transfer:
    """Everything needed to run (or resume) one push or download; what the journal stores.

    For a download, `target` is what is fetched (pinned by digest, with the tag it was chosen
    by kept for people to read), `destination` the folder, and `parts` are learned from the
    manifest when it first runs (so `total` is 0 until then).
    """

    id: str
    target: Reference
    kind: str  # ARTIFACT, IMAGE or DOWNLOAD
    blobs: list[BlobRecord]
    sources: list[str] = field(default_factory=list)
    manifests: list[PlanManifest] = field(default_factory=list)  # children before parents
    artifact_type: str = DEFAULT_ARTIFACT_TYPE
    state: TransferState = TransferState.QUEUED
    error: str = ""
    result: str | None = None
    plain_http: bool | None = None
    chunk_size: int = 0
    parallel: int = 1
    created: float = field(default_factory=time.time)
    created_iso: str = ""
    mount_from: list[str] = field(default_factory=list)
    destination: str = ""
    platform: str | None = None
    overwrite: bool = False
    parts: list[DownloadPart] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)  # files and folders a download placed
    annotations: dict[str, str] = field(default_factory=dict)  # an artifact manifest's own

    @property
    def is_download(self) -> bool:
        return self.kind == DOWNLOAD

    @property
    def name(self) -> str:
        if self.is_download:
            ref = self.target
            name = ref.repository.rsplit("/", 1)[-1] + (
                f":{ref.tag}" if ref.tag else f"@{(ref.digest or '')[7:19]}"
            )
            return f"{name} ({self.platform})" if self.platform else name
        return ", ".join(Path(s).name for s in self.sources) or str(self.target)

    @property
    def total(self) -> int:
        return sum(b.size for b in self.blobs) + sum(p.size for p in self.parts)

    @property
    def acknowledged(self) -> int:
        return sum(b.size if b.finished else b.acknowledged for b in self.blobs) + sum(
            p.size if p.finished else p.received for p in self.parts
        )

    @property
    def already_there(self) -> tuple[int, int]:
        """(blobs, bytes) the registry already held (or mounted) when this push asked."""
        there = [b for b in self.blobs if b.state in (BlobState.EXISTS, BlobState.MOUNTED)]
        return len(there), sum(b.size for b in there)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": str(self.target),
            "kind": self.kind,
            "sources": self.sources,
            "blobs": [b.to_json() for b in self.blobs],
            "manifests": [manifest_to_json(m) for m in self.manifests],
            "artifact_type": self.artifact_type,
            "state": self.state.value,
            "error": self.error,
            "result": self.result,
            "plain_http": self.plain_http,
            "chunk_size": self.chunk_size,
            "parallel": self.parallel,
            "created": self.created,
            "created_iso": self.created_iso,
            "mount_from": self.mount_from,
            "destination": self.destination,
            "platform": self.platform,
            "overwrite": self.overwrite,
            "parts": [p.to_json() for p in self.parts],
            "completed": self.completed,
            "annotations": self.annotations,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Transfer:
        return cls(
            id=doc["id"],
            target=parse_reference(doc["target"]),
            kind=doc["kind"],
            sources=list(doc.get("sources", [])),
            blobs=[BlobRecord.from_json(b) for b in doc["blobs"]],
            manifests=[manifest_from_json(m) for m in doc.get("manifests", [])],
            artifact_type=doc.get("artifact_type", DEFAULT_ARTIFACT_TYPE),
            state=TransferState(doc.get("state", "queued")),
            error=doc.get("error", ""),
            result=doc.get("result"),
            plain_http=doc.get("plain_http"),
            chunk_size=int(doc.get("chunk_size", 0)),
            parallel=int(doc.get("parallel", 1)),
            created=float(doc.get("created", 0)),
            created_iso=doc.get("created_iso", ""),
            mount_from=list(doc.get("mount_from", [])),
            destination=str(doc.get("destination", "")),
            platform=doc.get("platform"),
            overwrite=bool(doc.get("overwrite", False)),
            parts=[DownloadPart.from_json(p) for p in doc.get("parts", [])],
            completed=[str(p) for p in doc.get("completed", [])],
            annotations={str(k): str(v) for k, v in (doc.get("annotations") or {}).items()},
        )


def load_transfer(journal: TransferJournal, transfer_id: str) -> Transfer:
    """The transfer a journal entry holds. Raises JournalError naming the file when the entry
    can't be read or is not a whole transfer (`{"version": 2}`), never KeyError or TypeError."""
    doc = journal.load(transfer_id)
    path = journal.path(transfer_id)
    try:
        transfer = Transfer.from_json(doc)
    except KeyError as exc:
        raise JournalError(f"{path} is not a whole transfer: {exc.args[0]!r} is missing") from exc
    except (TypeError, ValueError, AttributeError, HoistError) as exc:
        raise JournalError(f"{path} is not a whole transfer: {exc}") from exc
    if transfer.id != transfer_id:
        raise JournalError(f"{path} holds transfer {transfer.id!r}, not {transfer_id!r}")
    return transfer


def journal_transfers(journal: TransferJournal) -> Iterator[tuple[str, Transfer | JournalError]]:
    """Every transfer of the journal, or the error naming the file that keeps it from being
    read (for the caller to show and go on: one bad entry never stops Hoist)."""
    for transfer_id in journal.ids():
        try:
            yield transfer_id, load_transfer(journal, transfer_id)
        except JournalError as exc:
            yield transfer_id, exc


async def save_despite_cancellation(save: Callable[[], Awaitable[None]]) -> None:
    """Run a run's last journal write to its end even if the task is cancelled again meanwhile
    (Cancel pressed twice, Cancel then quit): a write that outlived its task could land after
    the queue removed the entry, and bring a cancelled transfer back at the next start."""
    task = asyncio.ensure_future(save())
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


def staging_dir(transfer_id: str) -> Path:
    """Where a transfer keeps what it had to write (a folder's tar, an image's generated
    config) so that a resume reads the very same bytes."""
    return state_dir() / "staging" / transfer_id


def discard_staging(transfer_id: str) -> None:
    """Remove a transfer's staged files once it is done or cancelled (blocking: a folder's tar
    can be large). A folder push of 50 GB must not leave 50 GB behind."""
    shutil.rmtree(staging_dir(transfer_id), ignore_errors=True)


def new_transfer_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


class JournaledRun:
    """What every run of a Transfer shares (a push's TransferRun, hoist.core.transfer.download's
    DownloadRun): it writes the transfer to the journal, one write at a time, and tells
    listeners when its state changes.

    Args:
        pause: set it to stop the run (where it can stop: see each kind of run).

    `on_unwritable` is asked once when the journal can't be written (a full disk): True goes on
    without it (the transfer can't be resumed if interrupted), False or no one to ask fails the
    run with the JournalUnwritable sentence.
    """

    on_unwritable: Callable[[JournalUnwritable], Awaitable[bool]] | None = None

    def __init__(
        self,
        transfer: Transfer,
        client: RegistryClient,
        *,
        journal: TransferJournal | None = None,
        on_event: ProgressCallback | None = None,
        pause: asyncio.Event | None = None,
    ) -> None:
        self.transfer = transfer
        self.client = client
        self.journal = journal
        self.on_event = on_event
        self.pause = pause or asyncio.Event()
        self._save_lock = asyncio.Lock()
        self._dirty = False
        self._soon: asyncio.Task[None] | None = None

    async def save(self) -> None:
        """Write the journal (in a worker thread: fsync can take a while on a busy disk).

        Returns once a write that began after this call has ended. Calls that arrive while a
        write runs share the next one: a folder of thousands of files checkpoints thousands of
        times, and each write serializes every blob, so one write per caller would cost time
        quadratic in the number of files.
        """
        if self.journal is None:
            return
        self._dirty = True
        async with self._save_lock:
            if self.journal is None:  # given up while this save waited
                return
            if not self._dirty:
                return  # a write that began after our call already holds our state
            self._dirty = False
            doc = self.transfer.to_json()
            journal, transfer_id = self.journal, self.transfer.id
            try:
                # A cancel can't stop the worker thread: wait for its write, so that it can
                # never land after a Cancel has removed the entry.
                await save_despite_cancellation(
                    lambda: asyncio.to_thread(journal.save, transfer_id, doc)
                )
            except JournalUnwritable as exc:
                if self.on_unwritable is None or not await self.on_unwritable(exc):
                    raise
                self.journal = None  # go on unjournaled, as the user chose

    def save_soon(self) -> None:
        """Write the journal within JOURNAL_LATER_S, without waiting: for changes whose loss in
        a crash costs only a question to the registry on resume (a blob found already there,
        a small blob committed in one PUT: the resume HEADs it again). The run's final write
        includes them anyway."""
        if self.journal is None:
            return
        self._dirty = True
        if self._soon is None or self._soon.done():
            self._soon = asyncio.ensure_future(self._save_after_delay())

    async def _save_after_delay(self) -> None:
        await asyncio.sleep(JOURNAL_LATER_S)
        if self._dirty:
            await self.save()

    async def run(self) -> str:
        """Run to the end; return the manifest digest. Raises TransferPaused or a HoistError."""
        raise NotImplementedError

    async def save_final(self) -> None:
        """The journal's last word on this run (paused, failed, stopped, done), written to
        its end even if the task is cancelled again meanwhile (save_despite_cancellation)."""
        await save_despite_cancellation(self._write_final)

    async def _write_final(self) -> None:
        # A deferred write still pending is not cancelled (cut in its thread, it could land
        # after this one): it finds nothing left to write and ends.
        await self.save()

    def _state(self, state: TransferState, message: str = "") -> None:
        self.transfer.state = state
        if state != TransferState.FAILED:
            self.transfer.error = ""
        if self.on_event is not None:
            self.on_event(
                TransferEvent(self.transfer.id, state.value, message, self.transfer.result)
            )
