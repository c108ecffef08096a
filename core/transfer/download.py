"""`hoist pull` and the window's Download: what a manifest names, into a folder.

`pull` reads the manifest (an index: the platform asked for), plans what to write where
(`pull_jobs`: every name checked before anything is written), fetches each file resumably and
verified (`fetch`), unpacks folder layers (`unpack`), and writes an image as an OCI layout
(`layout_writer`). `DownloadRun` runs a `Download` of the queue through `pull`, keeping its
journal told; `plan_download` makes one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hoist.core.bandwidth import Throttle
from hoist.core.errors import (
    HoistError,
    JournalUnwritable,
    NotFound,
    RegistryError,
    ReplaceRefused,
    SourceError,
    TransferPaused,
    VerificationFailed,
    WriteFailed,
    write_failed,
)
from hoist.core.oci.digest import EMPTY_SHA256, is_digest
from hoist.core.oci.reference import Reference
from hoist.core.progress import BlobEvent, BlobState, Event, ProgressCallback
from hoist.core.registry.browse import (
    ManifestKind,
    classify,
    fetch_manifest,
    gather_bounded,
    parse_descriptor,
    parse_image,
    reference_text,
)
from hoist.core.registry.client import RegistryClient
from hoist.core.retry import RetryPolicy
from hoist.core.sources.bundle import unpack_bundle
from hoist.core.sources.folder import parse_empty_dirs
from hoist.core.transfer.fetch import (
    FileCursor,
    FileFetch,
    FilePart,
    PulledFile,
    cursor_digest,
    partial_path,
    scan_stoppable,
    settle,
    try_lock,
)
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.layout_writer import LayoutWriter
from hoist.core.transfer.model import (
    Download,
    DownloadPart,
    JournaledRun,
    TransferState,
    new_transfer_id,
    save_despite_cancellation,
)
from hoist.core.transfer.pull_jobs import (
    PullJob,
    artifact_jobs,
    check_digest,
    image_jobs,
    safe_parts,
    target_path,
)
from hoist.core.transfer.unpack import unpack_folder

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class PullResult:
    """What a pull wrote. `skipped` names layers left out (no title, as oras skips them)."""

    reference: str
    digest: str
    kind: ManifestKind
    files: list[PulledFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "kind": self.kind.value,
            "files": [f.to_json() for f in self.files],
            "skipped": self.skipped,
        }


def _make_dest(dest: Path) -> None:
    """Create the target folder (after every check passed: nothing is written before)."""
    if dest.exists() and not dest.is_dir():
        raise SourceError(f"{dest} is not a folder", hint="Name a folder to pull into")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SourceError(f"can't create the folder {dest}: {exc.strerror or exc}") from exc


# -- the public operations ------------------------------------------------------------------


async def pull(
    client: RegistryClient,
    repository: str,
    reference: str,
    dest: Path,
    *,
    platform: str | None = None,
    overwrite: bool = False,
    parallel: int = 1,
    on_event: ProgressCallback | None = None,
    transfer_id: str = "",
    retry: RetryPolicy | None = None,
    throttle: Throttle | None = None,
    on_plan: Callable[[list[DownloadPart]], None] | None = None,
    on_file: Callable[[PulledFile], None] | None = None,
    keep_folders: Collection[Path] = (),
    untitled: bool = False,
    tag: str | None = None,
) -> PullResult:
    """Download what `reference` names into the folder `dest`.

    An artifact's files land under their titles (split files joined, folders unpacked); an
    image is written as an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/...`) with
    `manifest.json` beside it. For an index, `platform` (`linux/amd64`) picks one manifest.

    Files already there with the same bytes are kept. A file there with other bytes (or a
    link, or anything else by that name) is the user's own: it is replaced only with
    `overwrite`, else ReplaceRefused names it before anything is written (oras replaces them
    silently; a pull into a home folder replaced `.bashrc`). An existing folder is replaced by
    a folder layer only with `overwrite` too. A pulled image joins an OCI layout already in
    `dest`: `index.json` keeps its other entries, each named by its tag in
    `org.opencontainers.image.ref.name` (as skopeo's `oci:DIR:TAG` reads it): `tag`, or
    `reference` when it is a tag. Layers without
    a title are left out (listed in `skipped`, as oras does), or, with `untitled`, written as
    `sha256-HEX` files. `on_plan` hears every blob to fetch, with its size and file,
    before the first byte is (a download's total is known only from the manifest), and
    `on_file` each file or folder as it is put in place. `keep_folders` are folders an earlier
    run of the same download unpacked: they are kept as they are, not refused as existing.

    Raises:
        SourceError: a title would escape `dest` (nothing written), a folder exists, or an
            index and no `platform`.
        VerificationFailed: received bytes don't match the manifest.
        ReplaceRefused: files there would be replaced (nothing written).
        WriteFailed: the disk refused (DiskFull); what was written is kept to resume from.
        RegistryError, NetworkError: from the registry.
    """
    policy = retry or RetryPolicy()
    data, doc = await fetch_manifest(client, repository, reference)
    what = reference_text(client, repository, reference)
    kind = classify(doc, data.media_type, what=what)
    if kind.is_index:
        child = _pick_platform(doc, platform, what)
        data, doc = await fetch_manifest(client, repository, child)
        kind = classify(doc, data.media_type, what=f"{what} → {child}")
        if kind.is_index:
            raise SourceError(f"{what}: the platform's manifest is itself an index")
    image = parse_image(doc, what=what)
    result = PullResult(what, data.digest, kind)
    kept: list[PulledFile] = []
    there: dict[Path, FileCursor] = {}
    layout: LayoutWriter | None = None
    empty_dirs: list[Path] = []
    if kind == ManifestKind.ARTIFACT:
        empty_dirs = [target_path(dest, d) for d in parse_empty_dirs(image.annotations)]
        jobs, result.skipped = artifact_jobs(dest, image.layers, image.annotations, untitled)
        planned = list(jobs)
        jobs, kept = _kept_folders(dest, jobs, {str(p) for p in keep_folders})
        for job in jobs:
            final = dest.joinpath(*safe_parts(job.title))
            if job.kind == "folder" and (final.exists() or final.is_symlink()) and not overwrite:
                raise SourceError(
                    f"{final} already exists",
                    hint="Nothing was written; remove it, or pull with overwrite",
                )
            if job.kind not in ("folder", "bundle") and final.is_dir() and not final.is_symlink():
                raise SourceError(
                    f"{final} is a folder, and the artifact has a file by that name",
                    hint="Nothing was written; move the folder away or pull elsewhere",
                )
        if not overwrite:
            there = await _files_there(jobs)
    else:
        jobs = planned = image_jobs(dest, image.config, image.layers)
        ref_name = tag or (None if is_digest(reference) else reference)
        layout = await settle(
            functools.partial(LayoutWriter.read, dest, data.data, ref_name, overwrite)
        )
    _make_dest(dest)
    for folder in empty_dirs:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"can't create the folder {folder}: {exc.strerror or exc}") from exc
    fetches = [
        (job, FileFetch(
            client, repository, job.target, job.parts, whole_digest=job.whole_digest,
            kind=job.kind, on_event=on_event, transfer=transfer_id, retry=policy,
            there=there.get(job.target),
            throttle=throttle,
        ))
        for job in jobs
    ]  # fmt: skip
    if on_plan is not None:
        on_plan([
            DownloadPart(part.name, part.size, str(job.target), kind=job.kind)
            for job in planned for part in job.parts
        ])  # fmt: skip
    for _, fetch in fetches:
        fetch.pending()

    async def one(job: PullJob, fetch: FileFetch) -> PulledFile:
        pulled = await placed(job, fetch)
        if on_file is not None:
            on_file(pulled)
        return pulled

    async def placed(job: PullJob, fetch: FileFetch) -> PulledFile:
        pulled = await fetch.run()
        if job.mode is not None:
            await settle(functools.partial(os.chmod, job.target, job.mode))
        if job.kind == "bundle":
            where, into = functools.partial(target_path, dest), target_path(dest, job.title)
            unpack = functools.partial(unpack_bundle, job.target, job.title, where, overwrite)
            try:
                await settle(unpack)
            except OSError as exc:
                raise write_failed(exc, exc.filename or into) from exc
            return PulledFile(into, pulled.size, pulled.digest, "bundle", fetched=pulled.fetched)
        if job.kind != "folder":
            return pulled
        final = dest.joinpath(*safe_parts(job.title))
        try:
            await settle(
                functools.partial(unpack_folder, job.target, job.title, dest, job.tar_digest)
            )
        except WriteFailed:
            raise  # the disk refused (full): the archive stays, and a new try unpacks it
        except HoistError:
            # The archive matched its digest but can't be unpacked safely: it never will be.
            await settle(functools.partial(job.target.unlink, missing_ok=True))
            raise
        except OSError as exc:
            raise write_failed(exc, final) from exc
        try:
            await settle(functools.partial(job.target.unlink, missing_ok=True))
        except OSError as exc:
            raise SourceError(f"can't unpack the folder {final}: {exc.strerror or exc}") from exc
        return PulledFile(final, pulled.size, pulled.digest, "folder", fetched=pulled.fetched)

    calls = [functools.partial(one, job, fetch) for job, fetch in fetches]
    result.files = kept + await gather_bounded(calls, max(1, parallel))
    if layout is not None:
        result.files.extend(await layout.write(data.data, data.media_type, data.digest))
    return result


async def _files_there(jobs: list[PullJob]) -> dict[Path, FileCursor]:
    """Check the files already where an artifact's files go, before anything is written.

    Returns those holding exactly the artifact's bytes (kept as they are, not hashed again).

    Raises:
        ReplaceRefused: others are there (other bytes, a link, a pipe...): the user's own.
    """
    same: dict[Path, FileCursor] = {}
    refused: list[Path] = []
    for job in jobs:
        if job.kind == "folder" or not os.path.lexists(job.target):
            continue
        size = sum(p.size for p in job.parts)
        target = job.target
        if target.is_symlink() or not target.is_file() or target.stat().st_size != size:
            refused.append(target)
            continue
        cursor = await scan_stoppable(target, job.parts, size)
        if cursor.done and (not job.whole_digest or cursor_digest(cursor) == job.whole_digest):
            same[target] = cursor
        else:
            refused.append(target)
    if refused:
        names = ", ".join(str(p) for p in refused[:5]) + (" ..." if len(refused) > 5 else "")
        raise ReplaceRefused(
            f"{len(refused)} file{'s' if len(refused) > 1 else ''} already there would be "
            f"replaced by the download's: {names}",
            refused,
        )
    return same


def _kept_folders(
    dest: Path, jobs: list[PullJob], keep: set[str]
) -> tuple[list[PullJob], list[PulledFile]]:
    """Split off folder layers an earlier run of this download already unpacked (unpacking
    is atomic: a folder there is whole)."""
    rest: list[PullJob] = []
    kept: list[PulledFile] = []
    for job in jobs:
        final = dest.joinpath(*safe_parts(job.title))
        there = final.is_dir() and not final.is_symlink()
        if job.kind == "folder" and str(final) in keep and there:
            size = sum(p.size for p in job.parts)
            kept.append(PulledFile(final, size, job.whole_digest or "", "folder", reused=True))
        else:
            rest.append(job)
    return rest, kept


def _pick_platform(doc: dict[str, Any], platform: str | None, what: str) -> str:
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise RegistryError(f"{what}: malformed index (`manifests` is not a list)", status=200)
    choices: dict[str, str] = {}
    for i, entry in enumerate(entries):
        d = parse_descriptor(entry, what=what, where=f"manifest {i + 1}")
        p = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(p, dict):
            os_arch = f"{p.get('os', '')}/{p.get('architecture', '')}"
            name = f"{os_arch}/{p['variant']}" if p.get("variant") else os_arch
            choices.setdefault(name, d.digest)
            choices.setdefault(os_arch, d.digest)
    if platform is not None and platform in choices:
        return choices[platform]
    listed = ", ".join(sorted(c for c in choices if c != "unknown/unknown")) or "none named"
    if platform is None:
        raise SourceError(
            f"{what} is an index of several platforms ({listed})",
            hint="Name one platform to pull (e.g. linux/amd64), or pull a platform's digest",
        )
    raise SourceError(f"{what} has no platform {platform!r} (it has {listed})")


async def pull_blob(
    client: RegistryClient,
    repository: str,
    digest: str,
    dest: Path,
    *,
    name: str | None = None,
    size: int | None = None,
    on_event: ProgressCallback | None = None,
    transfer_id: str = "",
    retry: RetryPolicy | None = None,
    overwrite: bool = False,
) -> PulledFile:
    """Download one blob by digest into `dest/name` (default `sha256-<hex>`), verified.

    `size` skips the HEAD that otherwise learns it. A file already there with other bytes is
    replaced only with `overwrite` (as in `pull`).

    Raises:
        NotFound: the registry has no such blob in this repository.
        ReplaceRefused: another file is there by that name (nothing written).
    """
    check_digest(digest, "the blob")
    filename = name or digest.replace(":", "-")
    target = target_path(dest, filename)
    if size is None:
        size = await client.blob_size(repository, digest)
        if size is None:
            raise NotFound(
                f"{reference_text(client, repository, digest)}: no such blob",
                status=404,
                code="BLOB_UNKNOWN",
            )
    if size == 0 and digest != EMPTY_SHA256:
        raise VerificationFailed(f"the registry says {digest} is empty, which it can't be")
    parts = [FilePart(filename, digest, size)]
    there = (
        {} if overwrite else await _files_there([PullJob(filename, target, parts, digest, "blob")])
    )
    _make_dest(dest)
    fetch = FileFetch(
        client, repository, target, parts, whole_digest=digest, kind="blob", on_event=on_event,
        transfer=transfer_id, retry=retry or RetryPolicy(), there=there.get(target),
    )  # fmt: skip
    fetch.pending()
    return await fetch.run()


# -- a download as a transfer of the queue ------------------------------------------------------

#: Seconds between two journal checkpoints of a running download (state changes: at once).
CHECKPOINT_INTERVAL = 2.0


class DownloadRun(JournaledRun):
    """Runs one Download: `pull` into its folder, keeping the journal told.

    A download has no upload session to keep: what it holds is the `.partial` files, which
    `pull` continues from. So a pause stops at once (the bytes written so far are kept and
    re-hashed on resume), and the journal records each part's size and bytes on disk only so
    that a paused download shows where it stands before it runs again.

    Args:
        pause: set it to stop; `run` then raises TransferPaused.
    """

    transfer: Download

    def __init__(
        self,
        transfer: Download,
        client: RegistryClient,
        *,
        journal: TransferJournal | None = None,
        retry: RetryPolicy | None = None,
        throttle: Throttle | None = None,
        on_event: ProgressCallback | None = None,
        pause: asyncio.Event | None = None,
    ) -> None:
        if not isinstance(transfer, Download):  # a caller without type checks
            raise ValueError(f"transfer {transfer.id} is a push, not a download")
        super().__init__(transfer, client, journal=journal, on_event=on_event, pause=pause)
        self.retry = retry or RetryPolicy()
        self.throttle = throttle
        self._last_save = 0.0
        self._saving: asyncio.Task[None] | None = None

    async def _checkpoint(self) -> None:
        try:
            await self.save()
        except (OSError, JournalUnwritable) as exc:  # the download goes on; the next may succeed
            log.error("journal checkpoint of %s failed: %s", self.transfer.id, exc)

    def _on_plan(self, parts: list[DownloadPart]) -> None:
        """The manifest's blobs; what an earlier run recorded of the same ones is kept."""
        known = {(p.name, p.size, p.file): p for p in self.transfer.parts}
        self.transfer.parts = [known.get((p.name, p.size, p.file), p) for p in parts]

    def _on_event(self, event: Event) -> None:
        if isinstance(event, BlobEvent):
            for part in self.transfer.parts:
                if part.name == event.blob:
                    # The re-check of a resumed file starts from 0: what is on disk stays
                    # counted until the check says otherwise.
                    if event.state != BlobState.HASHING:
                        part.received = event.acknowledged
                    part.state = event.state
                    break
            due = time.monotonic() - self._last_save >= CHECKPOINT_INTERVAL
            if due and (self._saving is None or self._saving.done()):
                self._last_save = time.monotonic()
                self._saving = asyncio.ensure_future(self._checkpoint())
        if self.on_event is not None:
            self.on_event(event)

    async def run(self) -> str:
        """Download; return the manifest's digest. Raises TransferPaused or a HoistError."""
        transfer = self.transfer
        self._state(TransferState.RUNNING)
        await self.save()
        self._last_save = time.monotonic()  # the next checkpoint is one interval from here
        pulling = asyncio.ensure_future(
            pull(
                self.client,
                transfer.source.repository,
                transfer.source.manifest_ref,
                Path(transfer.destination),
                platform=transfer.platform,
                overwrite=transfer.overwrite,
                parallel=max(1, transfer.parallel),
                on_event=self._on_event,
                transfer_id=transfer.id,
                retry=self.retry,
                throttle=self.throttle,
                on_plan=self._on_plan,
                on_file=self._on_file,
                keep_folders=[Path(p) for p in transfer.completed],
                tag=transfer.source.tag,
            )
        )
        paused = asyncio.ensure_future(self.pause.wait())
        try:
            await asyncio.wait({pulling, paused}, return_when=asyncio.FIRST_COMPLETED)
            if not pulling.done():
                pulling.cancel()
                await asyncio.wait({pulling})
            if pulling.cancelled():  # else it ended as the pause came: its outcome stands
                self._state(TransferState.PAUSED)
                await self.save_final()
                raise TransferPaused(transfer.id)
            result = pulling.result()
        except HoistError as exc:
            await self.save_failed(exc)
            raise
        except asyncio.CancelledError:
            pulling.cancel()
            self._state(TransferState.PAUSED, "stopped")
            await save_despite_cancellation(lambda: self._stop(pulling))  # pull ends first
            raise
        finally:
            paused.cancel()
        transfer.result = result.digest
        for part in transfer.parts:
            if not part.finished:
                part.state, part.received = BlobState.DONE, part.size
        message = f"saved in {transfer.destination}"
        if result.skipped:  # as oras: a layer without a title has no file name to write
            count = len(result.skipped)
            message += (
                f"; {count} layer{'s' if count > 1 else ''} without a file name "
                f"(org.opencontainers.image.title) {'were' if count > 1 else 'was'} not written"
            )
        self._state(TransferState.DONE, message)
        await self.save_final()
        return result.digest

    def _on_file(self, pulled: PulledFile) -> None:
        self.transfer.completed.append(str(pulled.path))

    async def _stop(self, pulling: asyncio.Future[PullResult]) -> None:
        """After a cancel: let the pull end (a write in a worker thread finishes first), then
        write the journal."""
        await asyncio.wait({pulling})
        if not pulling.cancelled() and pulling.exception() is not None:
            log.info("download %s ended while stopping: %s", self.transfer.id, pulling.exception())
        await self._write_final()

    async def _write_final(self) -> None:
        """After any checkpoint in flight, so that the last word is the final state."""
        if self._saving is not None:
            await asyncio.wait({self._saving})
        await self.save()


def discard_partial_files(transfer: Download) -> list[str]:
    """Remove what a cancelled download left: its `.partial` files and a folder's hidden
    archive (blocking). Finished files stay: they are complete and verified, and may be what
    the user came for. A `.partial` another download has locked is its own: left alone.

    Returns sentences for what could not be removed (the cancel goes on regardless).
    """
    problems = []
    for part in {(p.file, p.kind): p for p in transfer.parts}.values():
        file = Path(part.file)
        leftovers = [partial_path(file)] + ([file] if part.kind in ("folder", "bundle") else [])
        for path in leftovers:
            try:
                _remove_unless_locked(path)
            except OSError as exc:
                problems.append(f"can't delete {path}: {exc.strerror or exc}")
    return problems


def _remove_unless_locked(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return
    try:
        if try_lock(fd):
            path.unlink()
    finally:
        os.close(fd)


__all__ = [
    "DownloadRun",
    "PullResult",
    "discard_partial_files",
    "pull",
    "pull_blob",
]


def plan_download(
    source: Reference,
    destination: Path,
    *,
    platform: str | None = None,
    overwrite: bool = False,
    parallel: int = 2,
    plain_http: bool | None = None,
) -> Download:
    """A Download of what `source` names into the folder `destination`.

    Pin `source` by digest where it can be: a tag moved while the download is paused would
    otherwise join bytes of two different artifacts.
    """
    return Download(
        id=new_transfer_id(),
        source=source,
        parallel=parallel,
        plain_http=plain_http,
        created_iso=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        destination=str(destination.absolute()),
        platform=platform,
        overwrite=overwrite,
    )
