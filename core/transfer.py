"""A transfer: one push (an artifact of files, or an image) from start to manifest, or one
download into a folder.

A Transfer is plain data that the journal stores; `TransferRun` drives a push: blobs first (each
a BlobUpload, several at once within a transfer when asked), the manifest last, checkpointing
the journal after every acknowledged chunk. Running it again after a pause, a crash or a reboot
continues where the registry stands. A download (`kind == "download"`) is driven by
`core.download.DownloadRun`; its state is the `.partial` files in its folder, and the journal
keeps what each holds only so that a paused download shows its progress before it resumes.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .artifact import (
    CREATED,
    DEFAULT_ARTIFACT_TYPE,
    EMPTY_CONFIG,
    SPLIT_FILE,
    SPLIT_FILE_DIGEST,
    SplitOptions,
    artifact_manifest,
    plan_artifact,
)
from .content import FileIdentity, FileRange
from .digest import hash_file_range
from .errors import FileChanged, HoistError
from .journal import TransferJournal
from .manifest import OCI_EMPTY_DATA
from .paths import state_dir
from .progress import BlobState, ProgressCallback, TransferEvent
from .reference import Reference, parse_reference
from .registry import RegistryClient
from .retry import T, retry_temporary
from .upload import BlobRecord, BlobUpload, TransferPaused, UploadSettings, fresh_record


class TransferState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class PlannedManifest:
    """A manifest to push byte for byte (an image's), children before parents."""

    media_type: str
    digest: str
    data: bytes
    tag: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "media_type": self.media_type,
            "digest": self.digest,
            "data": base64.b64encode(self.data).decode(),
            "tag": self.tag,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PlannedManifest:
        return cls(doc["media_type"], doc["digest"], base64.b64decode(doc["data"]), doc.get("tag"))


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
    manifests: list[PlannedManifest] = field(default_factory=list)
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

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": str(self.target),
            "kind": self.kind,
            "sources": self.sources,
            "blobs": [b.to_json() for b in self.blobs],
            "manifests": [m.to_json() for m in self.manifests],
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
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Transfer:
        return cls(
            id=doc["id"],
            target=parse_reference(doc["target"]),
            kind=doc["kind"],
            sources=list(doc.get("sources", [])),
            blobs=[BlobRecord.from_json(b) for b in doc["blobs"]],
            manifests=[PlannedManifest.from_json(m) for m in doc.get("manifests", [])],
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
        )


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


def plan_file_push(
    target: Reference,
    paths: list[Path],
    *,
    artifact_type: str = DEFAULT_ARTIFACT_TYPE,
    split: SplitOptions | None = None,
    chunk_size: int = 0,
    parallel: int = 1,
    plain_http: bool | None = None,
) -> Transfer:
    """A Transfer pushing files/folders as an artifact (blocking: packs folders)."""
    transfer_id = new_transfer_id()
    blobs = plan_artifact(paths, staging_dir(transfer_id), split)
    return Transfer(
        id=transfer_id,
        target=target if target.tag or target.digest else target.with_tag("latest"),
        kind=ARTIFACT,
        blobs=blobs,
        sources=[str(p.absolute()) for p in paths],
        artifact_type=artifact_type,
        chunk_size=chunk_size,
        parallel=parallel,
        plain_http=plain_http,
        created_iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def plan_image_push(
    target: Reference,
    path: Path,
    *,
    image_tag: str | None = None,
    platform: str | None = None,
    chunk_size: int = 0,
    parallel: int = 3,
    plain_http: bool | None = None,
    mount_from: list[str] | None = None,
) -> Transfer:
    """A Transfer pushing a container image (OCI layout, OCI archive, `docker save` tarball).

    Blocking: it reads the source and verifies every blob's digest before anything is pushed.
    Layers stay where they are (byte ranges of the layout's files or of the tarball); blobs
    the source holds only in memory (a generated config) are written to the state folder so a
    resume reads the very same bytes.
    """
    from .image import open_image

    plan = open_image(path, tag=image_tag, platform=platform)
    transfer_id = new_transfer_id()
    staging = staging_dir(transfer_id)
    blobs: list[BlobRecord] = []
    for blob in plan.blobs:
        d = blob.descriptor
        if isinstance(blob.source, bytes):
            staging.mkdir(parents=True, exist_ok=True, mode=0o700)
            staged = staging / d.digest.replace(":", "-")
            staged.write_bytes(blob.source)
            source = FileRange(staged, 0, len(blob.source))
        else:
            source = blob.source
        record = fresh_record(d.digest[7:19], source, d.media_type, digest=d.digest)
        if blob.identity is not None:
            record.identity = blob.identity
        blobs.append(record)
    manifests = [PlannedManifest(m.media_type, m.digest, m.data, m.tag) for m in plan.manifests]
    if not (target.tag or target.digest):
        target = target.with_tag(plan.top.tag or "latest")
    return Transfer(
        id=transfer_id,
        target=target,
        kind=IMAGE,
        blobs=blobs,
        sources=[str(path.absolute())],
        manifests=manifests,
        chunk_size=chunk_size,
        parallel=parallel,
        plain_http=plain_http,
        created_iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        mount_from=list(mount_from or []),
    )


def plan_download(
    source: Reference,
    destination: Path,
    *,
    platform: str | None = None,
    overwrite: bool = False,
    parallel: int = 2,
    plain_http: bool | None = None,
) -> Transfer:
    """A Transfer downloading what `source` names into the folder `destination`.

    Pin `source` by digest where it can be: a tag moved while the download is paused would
    otherwise join bytes of two different artifacts.
    """
    return Transfer(
        id=new_transfer_id(),
        target=source,
        kind=DOWNLOAD,
        blobs=[],
        parallel=parallel,
        plain_http=plain_http,
        created_iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        destination=str(destination.absolute()),
        platform=platform,
        overwrite=overwrite,
    )


class JournaledRun:
    """What every run of a Transfer shares (a push's TransferRun, core.download's
    DownloadRun): it writes the transfer to the journal, one write at a time, and tells
    listeners when its state changes.

    Args:
        pause: set it to stop the run (where it can stop: see each kind of run).
    """

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

    async def save(self) -> None:
        """Write the journal (in a worker thread: fsync can take a while on a busy disk)."""
        if self.journal is None:
            return
        async with self._save_lock:
            doc = self.transfer.to_json()
            await asyncio.to_thread(self.journal.save, self.transfer.id, doc)

    async def run(self) -> str:
        """Run to the end; return the manifest digest. Raises TransferPaused or a HoistError."""
        raise NotImplementedError

    async def save_final(self) -> None:
        """The journal's last word on this run (paused, failed, stopped, done), written to
        its end even if the task is cancelled again meanwhile (save_despite_cancellation)."""
        await save_despite_cancellation(self._write_final)

    async def _write_final(self) -> None:
        await self.save()

    def _state(self, state: TransferState, message: str = "") -> None:
        self.transfer.state = state
        if state != TransferState.FAILED:
            self.transfer.error = ""
        if self.on_event is not None:
            self.on_event(
                TransferEvent(self.transfer.id, state.value, message, self.transfer.result)
            )


class TransferRun(JournaledRun):
    """Runs one push against a registry, journaling after every acknowledged chunk.

    Args:
        pause: set it to end every blob's stream in progress cleanly (at the next chunk
            boundary where only sized chunks work); the state is kept.
    """

    def __init__(
        self,
        transfer: Transfer,
        client: RegistryClient,
        *,
        journal: TransferJournal | None = None,
        settings: UploadSettings | None = None,
        on_event: ProgressCallback | None = None,
        pause: asyncio.Event | None = None,
    ) -> None:
        super().__init__(transfer, client, journal=journal, on_event=on_event, pause=pause)
        self.settings = settings or UploadSettings()
        if transfer.chunk_size:  # chosen for this transfer: kept exactly
            self.settings.chunk_size = transfer.chunk_size
            self.settings.adaptive = False

    async def run(self) -> str:
        """Push; return the manifest digest. Raises TransferPaused or a HoistError."""
        transfer = self.transfer
        self._state(TransferState.RUNNING)
        await self.save()
        whole_file_digests: asyncio.Future[dict[str, str]] | None = None
        try:
            if self.client.auth is None:
                await self.client.ping()  # a refusal here is this transfer's failure too
            if self.client.auth is not None:
                self.client.auth.expect_push(transfer.target.repository)
            whole_file_digests = self._hash_split_files()
            await self._push_blobs()
            if transfer.kind == ARTIFACT:
                await self._annotate_split(await whole_file_digests)
                result = await self._push_artifact_manifest()
            else:
                whole_file_digests.cancel()
                result = await self._push_image_manifests()
        except TransferPaused:
            self._state(TransferState.PAUSED)
            await self.save_final()
            raise
        except HoistError as exc:
            transfer.error = exc.sentence()
            self._state(TransferState.FAILED, transfer.error)
            await self.save_final()
            raise
        except asyncio.CancelledError:
            self._state(TransferState.PAUSED, "stopped")
            await self.save_final()
            raise
        finally:
            if whole_file_digests is not None and not whole_file_digests.done():
                whole_file_digests.cancel()  # the push ended first: no use hashing on
        transfer.result = result
        self._state(TransferState.DONE)
        await self.save_final()
        await asyncio.to_thread(discard_staging, transfer.id)
        return result

    def _hash_split_files(self) -> asyncio.Future[dict[str, str]]:
        """Hash each split file whole, beside the upload (one extra read at disk speed)."""
        files: dict[str, tuple[Path, int]] = {}
        for blob in self.transfer.blobs:
            name = blob.annotations.get(SPLIT_FILE)
            if name and SPLIT_FILE_DIGEST not in blob.annotations:
                size = int(blob.annotations["app.hoist.split.file.size"])
                files[name] = (blob.source.path, size)

        async def hash_all() -> dict[str, str]:
            out = {}
            for name, (path, size) in files.items():
                out[name] = (await asyncio.to_thread(hash_file_range, path, 0, size)).digest()
            return out

        return asyncio.ensure_future(hash_all())

    async def _annotate_split(self, digests: dict[str, str]) -> None:
        for blob in self.transfer.blobs:
            name = blob.annotations.get(SPLIT_FILE)
            if name in digests:
                blob.annotations[SPLIT_FILE_DIGEST] = digests[name]
        if digests:
            await self.save()

    async def _push_blobs(self) -> None:
        """Every unfinished blob, `parallel` at once.

        Several blobs in flight stop together and cleanly: a pause reaches each (each ends its
        stream and keeps its progress), and one blob's failure pauses the others the same way
        (it sets the run's pause event) instead of cancelling them: a cancel would cut their
        PATCH, and distribution 2.x drops a session whose chunk was cut. What reaches the
        caller is one exception: the first failure, else TransferPaused, never an exception
        group. Cancelling the run still stops everything at once.
        """
        transfer = self.transfer
        limit = asyncio.Semaphore(max(1, transfer.parallel))
        halt = self.pause

        async def one(record: BlobRecord) -> None:
            async with limit:
                if halt.is_set():
                    raise TransferPaused(record.name)
                upload = BlobUpload(
                    self.client,
                    transfer.target.repository,
                    record,
                    transfer_id=transfer.id,
                    settings=self.settings,
                    on_event=self.on_event,
                    checkpoint=self.save,
                    pause=halt,
                    mount_from=tuple(transfer.mount_from),
                )
                try:
                    await upload.run()
                except TransferPaused:
                    raise
                except Exception:
                    halt.set()
                    raise

        pending = [b for b in transfer.blobs if not b.finished]
        tasks = [asyncio.ensure_future(one(record)) for record in pending]
        try:
            if tasks:
                await asyncio.wait(tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()  # stop at once: asked for by cancelling this run
            if tasks:
                await asyncio.wait(tasks)
            raise
        errors = [e for t in tasks if (e := t.exception()) is not None]
        failures = [e for e in errors if not isinstance(e, TransferPaused)]
        if failures:
            raise failures[0]
        if errors:
            raise errors[0]

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """For idempotent steps (the config blob and manifest PUTs): the blobs' retry policy."""
        return await retry_temporary(call, self.settings.retry)

    async def _push_bytes(self, digest: str, data: bytes) -> None:
        """A small blob held in memory (the empty config): HEAD, else POST + PUT."""
        await self._retrying(lambda: self._push_bytes_once(digest, data))

    async def _push_bytes_once(self, digest: str, data: bytes) -> None:
        repo = self.transfer.target.repository
        if await self.client.blob_size(repo, digest) == len(data):
            return
        status = await self.client.start_upload(repo)
        assert status is not None
        await self.client.finish_upload(status.location, digest, data, len(data))

    async def _push_artifact_manifest(self) -> str:
        transfer = self.transfer
        await self._push_bytes(EMPTY_CONFIG.digest, OCI_EMPTY_DATA)
        annotations = {CREATED: transfer.created_iso} if transfer.created_iso else None
        data = artifact_manifest(
            transfer.blobs, artifact_type=transfer.artifact_type, annotations=annotations
        )
        from .manifest import OCI_MANIFEST

        target = transfer.target
        return await self._retrying(
            lambda: self.client.put_manifest(
                target.repository, target.tag or target.digest or "latest", data, OCI_MANIFEST
            )
        )

    async def _push_image_manifests(self) -> str:
        """Children by digest, then the top one by the target's tag: byte for byte."""
        transfer = self.transfer
        target = transfer.target
        *children, top = transfer.manifests
        for manifest in children:
            put = functools.partial(
                self.client.put_manifest,
                target.repository, manifest.digest, manifest.data, manifest.media_type,
            )  # fmt: skip
            await self._retrying(put)
        ref = target.tag or target.digest or top.digest
        digest = await self._retrying(
            lambda: self.client.put_manifest(target.repository, ref, top.data, top.media_type)
        )
        if digest != top.digest:
            raise HoistError(
                f"the registry stored the manifest as {digest}, not {top.digest}",
                hint="The registry rewrote the manifest; report this registry's behaviour",
            )
        return digest


def open_run(
    transfer: Transfer,
    client: RegistryClient,
    *,
    journal: TransferJournal | None = None,
    settings: UploadSettings | None = None,
    on_event: ProgressCallback | None = None,
    pause: asyncio.Event | None = None,
) -> JournaledRun:
    """The run for a transfer's kind: TransferRun for a push, DownloadRun for a download."""
    if transfer.is_download:
        from .download import DownloadRun  # with browsing: loaded only when a download runs

        retry = (settings or UploadSettings()).retry
        return DownloadRun(
            transfer, client, journal=journal, retry=retry, on_event=on_event, pause=pause
        )
    return TransferRun(
        transfer, client, journal=journal, settings=settings, on_event=on_event, pause=pause
    )


@dataclass
class Discarded:
    """What throwing a cancelled transfer's work away could not do, as sentences."""

    sessions: list[str] = field(default_factory=list)  # upload sessions left (they expire)
    files: list[str] = field(default_factory=list)  # a download's files left on disk


async def discard_work(transfer: Transfer, client: RegistryClient) -> Discarded:
    """Throw away what a cancelled transfer holds: its open upload sessions (DELETE), a
    download's partial files, and the files it staged. Goes on past each refusal."""
    discarded = Discarded()
    if transfer.is_download:
        from .download import discard_partial_files

        discarded.files = await asyncio.to_thread(discard_partial_files, transfer)
    for blob in transfer.blobs:
        if blob.location and not blob.finished:
            try:
                await client.cancel_upload(blob.location)
            except HoistError as exc:  # the session may be gone already
                # Not the error's hint: "check the repository name" is no advice here.
                discarded.sessions.append(
                    f"{blob.name}: could not remove its upload session ({exc.message}); "
                    "the registry discards it when it expires"
                )
    await asyncio.to_thread(discard_staging, transfer.id)
    return discarded


def restart_changed_blobs(transfer: Transfer) -> list[str]:
    """Start again, from byte 0, every unfinished blob whose file changed since it began.

    The one action behind "restart this transfer to push the new content": the new identity
    is taken, the old session is forgotten (it can't hold the new bytes), and the digest goes
    too (a file's digest is computed anew as it is sent). An image's layers can't change
    without the image changing: those raise, asking for the image to be added again.
    Returns the names of the blobs restarted.
    """
    restarted = []
    for blob in transfer.blobs:
        if blob.finished:
            continue
        try:
            blob.source.check_unchanged(blob.identity)
            continue
        except FileChanged:
            pass
        if transfer.kind == IMAGE:
            raise FileChanged(
                f"{blob.source.path} changed since the image was read",
                hint="Add the image again to push what it holds now",
            )
        now = FileIdentity.of(blob.source.path)
        if blob.annotations.get(SPLIT_FILE) is not None and now.size != blob.identity.size:
            raise FileChanged(
                f"{blob.source.path} changed size, so its parts no longer line up",
                hint="Push the file again as a new transfer",
            )
        blob.identity = now
        if transfer.kind == ARTIFACT and SPLIT_FILE not in blob.annotations:
            blob.source = FileRange(blob.source.path, blob.source.offset, now.size)
        blob.location = None
        blob.acknowledged = 0
        blob.prefix_digest = None
        blob.digest = None
        blob.state = BlobState.PENDING
        blob.annotations.pop(SPLIT_FILE_DIGEST, None)
        restarted.append(blob.name)
    return restarted


__all__ = [
    "ARTIFACT",
    "DOWNLOAD",
    "IMAGE",
    "BlobState",
    "Discarded",
    "DownloadPart",
    "JournaledRun",
    "PlannedManifest",
    "Transfer",
    "TransferRun",
    "TransferState",
    "discard_work",
    "new_transfer_id",
    "open_run",
    "plan_download",
    "plan_file_push",
]
