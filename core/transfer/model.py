"""A transfer as plain data: a `Push` or a `Download` over what both share (`TransferBase`),
as the journal stores it, and what every run of one shares (`JournaledRun`: its journal writes
and state events). `load_transfer` reads either from its journal entry, in any earlier format.
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
from typing import Any, TypeAlias

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


#: The kinds of transfer the journal names: two pushes and a download.
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


@dataclass(kw_only=True)
class TransferBase:
    """What every push and download shares, and what the journal keeps of it; a transfer is
    always a `Push` or a `Download` (`Transfer` names either).

    `kind` is what the journal calls it (ARTIFACT or IMAGE for a push, DOWNLOAD); callers ask
    `isinstance(t, Download)` or the type's own properties rather than branch on it.
    """

    id: str
    kind: str
    state: TransferState = TransferState.QUEUED
    error: str = ""
    result: str | None = None
    plain_http: bool | None = None
    chunk_size: int = 0
    parallel: int = 1
    created: float = field(default_factory=time.time)
    created_iso: str = ""

    @property
    def reference(self) -> Reference:
        """The registry reference it talks to: what a push goes to, what a download fetches
        (the registry, its client and settings are chosen by it)."""
        raise NotImplementedError

    @property
    def pinned_reference(self) -> Reference:
        """The reference by digest once it is known, for "Copy reference" and "Show in
        Browse": what a finished push stored, a download's source (pinned when queued)."""
        raise NotImplementedError

    @property
    def comes_from(self) -> str:
        """Where its bytes come from, for people: a push's files (one a line), a download's
        reference."""
        raise NotImplementedError

    @property
    def goes_to(self) -> str:
        """Where its bytes go, for people: a push's reference, a download's folder."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def total(self) -> int:
        raise NotImplementedError

    @property
    def acknowledged(self) -> int:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state.value,
            "error": self.error,
            "result": self.result,
            "plain_http": self.plain_http,
            "chunk_size": self.chunk_size,
            "parallel": self.parallel,
            "created": self.created,
            "created_iso": self.created_iso,
        }

    @staticmethod
    def _shared_from_json(doc: dict[str, Any]) -> dict[str, Any]:
        """The shared fields of a journal document, as keyword arguments."""
        return {
            "state": TransferState(doc.get("state", "queued")),
            "error": doc.get("error", ""),
            "result": doc.get("result"),
            "plain_http": doc.get("plain_http"),
            "chunk_size": int(doc.get("chunk_size", 0)),
            "parallel": int(doc.get("parallel", 1)),
            "created": float(doc.get("created", 0)),
            "created_iso": doc.get("created_iso", ""),
        }


@dataclass(kw_only=True)
class Push(TransferBase):
    """Files, a folder or an image sent to `target`: its blobs (each a BlobRecord the upload
    engine resumes), and for an image its manifests byte for byte (children before parents)."""

    target: Reference
    kind: str  # ARTIFACT or IMAGE
    blobs: list[BlobRecord]
    sources: list[str] = field(default_factory=list)
    manifests: list[PlanManifest] = field(default_factory=list)  # children before parents
    artifact_type: str = DEFAULT_ARTIFACT_TYPE
    mount_from: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)  # an artifact manifest's own

    @property
    def reference(self) -> Reference:
        return self.target

    @property
    def pinned_reference(self) -> Reference:
        target = self.target
        if self.result:
            return Reference(target.registry, target.repository, target.tag, self.result)
        return target

    @property
    def comes_from(self) -> str:
        return "\n".join(self.sources) or str(self.target)

    @property
    def goes_to(self) -> str:
        return str(self.target)

    @property
    def is_image(self) -> bool:
        return self.kind == IMAGE

    @property
    def name(self) -> str:
        return ", ".join(Path(s).name for s in self.sources) or str(self.target)

    @property
    def total(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def acknowledged(self) -> int:
        return sum(b.size if b.finished else b.acknowledged for b in self.blobs)

    @property
    def already_there(self) -> tuple[int, int]:
        """(blobs, bytes) the registry already held (or mounted) when this push asked."""
        there = [b for b in self.blobs if b.state in (BlobState.EXISTS, BlobState.MOUNTED)]
        return len(there), sum(b.size for b in there)

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {
            "target": str(self.target),
            "sources": self.sources,
            "blobs": [b.to_json() for b in self.blobs],
            "manifests": [manifest_to_json(m) for m in self.manifests],
            "artifact_type": self.artifact_type,
            "mount_from": self.mount_from,
            "annotations": self.annotations,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Push:
        """A push from its journal document (any version: a key added later has a default).

        Raises KeyError for a missing key, ValueError for a kind that is no push's."""
        transfer_id = doc["id"]
        kind = doc["kind"]
        if kind not in (ARTIFACT, IMAGE):
            raise ValueError(f"{kind!r} is not a kind of transfer Hoist knows")
        return cls(
            id=transfer_id,
            kind=kind,
            target=parse_reference(doc["target"]),
            sources=list(doc.get("sources", [])),
            blobs=[BlobRecord.from_json(b) for b in doc["blobs"]],
            manifests=[manifest_from_json(m) for m in doc.get("manifests", [])],
            artifact_type=doc.get("artifact_type", DEFAULT_ARTIFACT_TYPE),
            mount_from=list(doc.get("mount_from", [])),
            annotations={str(k): str(v) for k, v in (doc.get("annotations") or {}).items()},
            **cls._shared_from_json(doc),
        )


@dataclass(kw_only=True)
class Download(TransferBase):
    """What `source` names, fetched into the folder `destination`.

    `source` is pinned by digest where it can be, with the tag it was chosen by kept for
    people to read (and for the OCI layout's entry); `parts` are learned from the manifest
    when it first runs (so `total` is 0 until then); `completed` are the files and folders
    it placed, kept as they are by a resume.
    """

    source: Reference
    destination: str
    kind: str = field(default=DOWNLOAD, init=False)
    platform: str | None = None
    overwrite: bool = False
    parts: list[DownloadPart] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)

    @property
    def reference(self) -> Reference:
        return self.source

    @property
    def pinned_reference(self) -> Reference:
        return self.source

    @property
    def comes_from(self) -> str:
        return str(self.source)

    @property
    def goes_to(self) -> str:
        return self.destination

    @property
    def name(self) -> str:
        ref = self.source
        name = ref.repository.rsplit("/", 1)[-1] + (
            f":{ref.tag}" if ref.tag else f"@{(ref.digest or '')[7:19]}"
        )
        return f"{name} ({self.platform})" if self.platform else name

    @property
    def total(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def acknowledged(self) -> int:
        return sum(p.size if p.finished else p.received for p in self.parts)

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {
            "source": str(self.source),
            "destination": self.destination,
            "platform": self.platform,
            "overwrite": self.overwrite,
            "parts": [p.to_json() for p in self.parts],
            "completed": self.completed,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Download:
        """A download from its journal document; one written before version 3 names its
        source `target`."""
        transfer_id = doc["id"]
        source = doc["source"] if "source" in doc else doc["target"]
        return cls(
            id=transfer_id,
            source=parse_reference(source),
            destination=str(doc["destination"]),
            platform=doc.get("platform"),
            overwrite=bool(doc.get("overwrite", False)),
            parts=[DownloadPart.from_json(p) for p in doc.get("parts", [])],
            completed=[str(p) for p in doc.get("completed", [])],
            **cls._shared_from_json(doc),
        )


#: A push or a download: what the queue holds, the journal keeps and a run runs.
Transfer: TypeAlias = Push | Download


def transfer_from_json(doc: dict[str, Any]) -> Transfer:
    """The Push or Download a journal document holds, by its `kind`.

    Raises KeyError, TypeError or ValueError when it is not a whole transfer."""
    if doc.get("kind") == DOWNLOAD:
        return Download.from_json(doc)
    return Push.from_json(doc)


def load_transfer(journal: TransferJournal, transfer_id: str) -> Transfer:
    """The transfer a journal entry holds. Raises JournalError naming the file when the entry
    can't be read or is not a whole transfer (`{"version": 2}`), never KeyError or TypeError."""
    doc = journal.load(transfer_id)
    path = journal.path(transfer_id)
    try:
        transfer = transfer_from_json(doc)
    except KeyError as exc:
        raise JournalError(f"{path} is not a whole transfer: {exc.args[0]!r} is missing") from exc
    except (TypeError, ValueError, AttributeError, HoistError) as exc:
        raise JournalError(f"{path} is not a whole transfer: {exc}") from exc
    if transfer.id != transfer_id:
        raise JournalError(f"{path} holds transfer {transfer.id!r}, not {transfer_id!r}")
    return transfer


def journal_transfers(
    journal: TransferJournal,
) -> Iterator[tuple[str, Transfer | JournalError]]:
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

    async def save_failed(self, exc: HoistError) -> None:
        """End the run as FAILED: `exc`'s sentence becomes the transfer's error, told to
        listeners and written as the journal's last word (save_final)."""
        self.transfer.error = exc.sentence()
        self._state(TransferState.FAILED, self.transfer.error)
        await self.save_final()

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
