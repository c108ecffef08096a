"""A push (an artifact of files, or an image) from start to manifest.

A `Push` is plain data that the journal stores; `TransferRun` drives it: blobs first (each a
BlobUpload, several at once within a push when asked), the manifest last, checkpointing the
journal after every acknowledged chunk. Running it again after a pause, a crash or a reboot
continues where the registry stands. A `Download` is driven by
`hoist.core.transfer.download.DownloadRun`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hoist.core.errors import FileChanged, HoistError, TransferPaused, os_reason
from hoist.core.oci.annotations import (
    CREATED,
    ORAS_DIGEST,
    SPLIT_FILE,
    SPLIT_FILE_DIGEST,
    SPLIT_FILE_SIZE,
)
from hoist.core.oci.digest import Descriptor, hash_file_range, sha256_bytes
from hoist.core.oci.manifest import DEFAULT_ARTIFACT_TYPE, OCI_EMPTY_DATA
from hoist.core.oci.reference import Reference
from hoist.core.progress import BlobState, ProgressCallback
from hoist.core.registry.client import RegistryClient
from hoist.core.retry import T, retry_temporary
from hoist.core.sources.artifact import EMPTY_CONFIG, SplitOptions, artifact_manifest
from hoist.core.sources.bundle import BundleSource
from hoist.core.sources.content import FileIdentity, FileRange, PlannedBlob
from hoist.core.sources.formats import plan_artifact, require_image
from hoist.core.transfer.digest_cache import DigestCache
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import (
    ARTIFACT,
    IMAGE,
    Download,
    JournaledRun,
    Push,
    Transfer,
    TransferState,
    discard_staging,
    new_transfer_id,
    staging_dir,
)
from hoist.core.transfer.upload import BlobRecord, BlobUpload, UploadSettings, fresh_record

#: Blobs sent at once within one push (files, a folder, an image's layers), unless asked
#: otherwise: see README "Blobs at once" (crane sends 4, oras 5; measured in
#: bench/folder_push.py and bench/image_push.py).
DEFAULT_BLOBS_AT_ONCE = 4

log = logging.getLogger(__name__)


def plan_file_push(
    target: Reference,
    paths: list[Path],
    *,
    artifact_type: str = DEFAULT_ARTIFACT_TYPE,
    split: SplitOptions | None = None,
    chunk_size: int = 0,
    parallel: int = 1,
    plain_http: bool | None = None,
    stop: threading.Event | None = None,
    pack: bool | str = False,
    digest_cache: DigestCache | None = None,
) -> Push:
    """A Push of files/folders as an artifact (blocking: walks folders, and packs
    them with `pack`).

    A file whose (size, mtime, inode) match what the digest cache saw at the last push gets
    its digest now, unread: the upload then asks the registry for it first (a HEAD), and sends
    it only when the registry lacks it. Set `stop` to end the packing at once (Ctrl-C,
    Cancel): it raises PackingStopped. Whatever ends the planning early, nothing it staged is
    left in the state folder.
    """
    transfer_id = new_transfer_id()
    try:
        plan = plan_artifact(paths, staging_dir(transfer_id), split, pack=pack, stop=stop)
    except BaseException:
        discard_staging(transfer_id)
        raise
    blobs = [_record(blob) for blob in plan.blobs]
    cache = digest_cache if digest_cache is not None else DigestCache()
    for blob in blobs:
        if isinstance(blob.source, BundleSource):
            known = cache.lookup_bundle(blob.source.fingerprint())
            if known is not None:
                blob.digest, summary = known
                if summary is not None:
                    blob.source.know(summary)
            # The tar's own digest, for oras' check on unpacking: kept by the cache for an
            # unchanged bundle, else one read of its files (blocking: planning is threaded).
            blob.annotations[ORAS_DIGEST] = blob.source.summary.digest
        elif _is_whole_file(blob):
            blob.digest = cache.lookup(blob.source.path, blob.identity)
    return Push(
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
        annotations=plan.annotations,
    )


async def plan_file_push_in_thread(target: Reference, paths: list[Path], **options: Any) -> Push:
    """plan_file_push in a worker thread, for the window and the command line: cancelling the
    caller (Ctrl-C, closing the window) stops the packing too, and nothing it staged is left
    behind (the thread removes the half-written archive as it stops)."""
    stop = threading.Event()
    planning = asyncio.ensure_future(
        asyncio.to_thread(plan_file_push, target, paths, stop=stop, **options)
    )
    try:
        return await asyncio.shield(planning)
    except asyncio.CancelledError:
        stop.set()
        # The thread ends at its next write; or it had just ended, its archive whole: that
        # one is removed here, since no caller takes the transfer any more.
        with contextlib.suppress(Exception):  # PackingStopped, or the planning's own error
            transfer = await planning
            await asyncio.to_thread(discard_staging, transfer.id)
        raise


def _record(blob: PlannedBlob) -> BlobRecord:
    """The journal's record of a planned blob, the file's identity taken now unless the
    source took it when it verified the blob."""
    record = fresh_record(blob.name, blob.source, blob.media_type, blob.annotations, blob.digest)
    if blob.identity is not None:
        record.identity = blob.identity
    return record


def _is_whole_file(blob: BlobRecord) -> bool:
    """A blob that is one whole local file (not a split part, not an image's layer)."""
    source = blob.source
    return (
        source.is_one_file
        and source.offset == 0
        and source.length == blob.identity.size
        and (SPLIT_FILE not in blob.annotations)
    )


def remember_digests(transfer: Push, cache: DigestCache) -> None:
    """Note each whole file's digest under the identity it was pushed with (blocking: saves).

    The cache only saves reading files again: a state folder that can't take it (a full
    disk) costs the next push a re-hash, never this push.
    """
    for blob in transfer.blobs:
        if not (blob.finished and blob.digest):
            continue
        if isinstance(blob.source, BundleSource):
            cache.remember_bundle(blob.source.fingerprint(), blob.digest, blob.source.summary)
        elif _is_whole_file(blob):
            cache.remember(blob.source.path, blob.identity, blob.digest)
    try:
        cache.save()
    except OSError as exc:
        log.warning(
            "Hoist cannot save the files' digests in %s (%s): the next push reads them again",
            cache.path,
            os_reason(exc),
        )


def plan_image_push(
    target: Reference,
    path: Path,
    *,
    image_tag: str | None = None,
    platform: str | None = None,
    chunk_size: int = 0,
    parallel: int = DEFAULT_BLOBS_AT_ONCE,
    plain_http: bool | None = None,
    mount_from: list[str] | None = None,
) -> Push:
    """A Push of a container image (OCI layout, OCI archive, `docker save` tarball).

    Blocking: it reads the source, checking its manifests and configs against their digests
    (and hashing a legacy `docker save` archive's layers, whose digests it doesn't name); a
    layer the source names by digest is left to the registry's check on commit. Layers stay
    where they are (byte ranges of the layout's files or of the tarball).

    Raises:
        SourceError: `path` is no container image (the formats of
            `hoist.core.sources.formats` are asked), or not a sound one.
    """
    plan = require_image(path).plan_image(tag=image_tag, platform=platform)
    transfer_id = new_transfer_id()
    blobs = [_record(blob) for blob in plan.blobs]
    manifests = list(plan.manifests)
    if not (target.tag or target.digest):
        target = target.with_tag(plan.top.tag or "latest")
    return Push(
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


class TransferRun(JournaledRun):
    """Runs one push against a registry, journaling after every acknowledged chunk.

    Args:
        pause: set it to end every blob's stream in progress cleanly (at the next chunk
            boundary where only sized chunks work); the state is kept.
        digest_cache: where the files' digests are noted once pushed (default: the state
            folder's), so the next push of unchanged files reads none of them.
    """

    transfer: Push

    def __init__(
        self,
        transfer: Push,
        client: RegistryClient,
        *,
        journal: TransferJournal | None = None,
        settings: UploadSettings | None = None,
        on_event: ProgressCallback | None = None,
        pause: asyncio.Event | None = None,
        digest_cache: DigestCache | None = None,
    ) -> None:
        super().__init__(transfer, client, journal=journal, on_event=on_event, pause=pause)
        self.settings = settings or UploadSettings()
        self.digest_cache = digest_cache or DigestCache()
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
            if transfer.is_image:
                whole_file_digests.cancel()
                result = await self._push_image_manifests()
            else:
                await asyncio.to_thread(remember_digests, transfer, self.digest_cache)
                await self._annotate_split(await whole_file_digests)
                result = await self._push_artifact_manifest()
        except TransferPaused:
            self._state(TransferState.PAUSED)
            await self.save_final()
            raise
        except HoistError as exc:
            await self.save_failed(exc)
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
                size = int(blob.annotations[SPLIT_FILE_SIZE])
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
        stream and keeps its progress). A blob that fails (its file changed, the registry
        refused it) ends alone: the others go on to their end, never cancelled (a cancel would
        cut their PATCH, and distribution 2.x drops a session whose chunk was cut), so the
        retry only has the failed one left to send. What reaches the caller is one exception:
        the first failure, else TransferPaused, never an exception group. Cancelling the run
        still stops everything at once.
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
                    checkpoint_soon=self.save_soon,
                    pause=halt,
                    mount_from=tuple(transfer.mount_from),
                )
                await upload.run()

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
        annotations = dict(transfer.annotations)
        if transfer.created_iso:
            annotations[CREATED] = transfer.created_iso
        layers = []
        for blob in transfer.blobs:
            if not blob.digest:
                raise AssertionError(f"{blob.name} has no digest yet")
            layers.append(
                Descriptor(blob.media_type, blob.digest, blob.size, blob.annotations or None)
            )
        data = artifact_manifest(
            layers, artifact_type=transfer.artifact_type, annotations=annotations or None
        )
        from hoist.core.oci.manifest import OCI_MANIFEST

        target = transfer.target
        ref = target.tag or target.digest or "latest"
        return await self._put_manifest(ref, data, OCI_MANIFEST, sha256_bytes(data))

    async def _push_image_manifests(self) -> str:
        """Children by digest, then the top one by the target's tag: byte for byte."""
        transfer = self.transfer
        target = transfer.target
        *children, top = transfer.manifests
        for manifest in children:
            await self._put_manifest(
                manifest.digest, manifest.data, manifest.media_type, manifest.digest
            )
        ref = target.tag or target.digest or top.digest
        return await self._put_manifest(ref, top.data, top.media_type, top.digest)

    async def _put_manifest(self, ref: str, data: bytes, media_type: str, expected: str) -> str:
        """PUT a manifest; return its digest once the registry's answer agrees with the digest
        of the bytes sent (`expected`): `REF@DIGEST` is printed and scripts pull by it, so it
        must name what was pushed, not whatever the registry (or a proxy) claims."""
        repository = self.transfer.target.repository
        put = functools.partial(self.client.put_manifest, repository, ref, data, media_type)
        digest = await self._retrying(put)
        if digest != expected:
            raise HoistError(
                f"the registry says it stored the manifest as {digest[:80]}, but the manifest "
                f"sent has the digest {expected}",
                hint="The registry (or a proxy in front of it) rewrote or misreported the "
                "manifest; check with `hoist inspect` what the tag now holds",
            )
        return digest


def restart_changed_blobs(transfer: Transfer) -> list[str]:
    """Start again, from byte 0, every unfinished blob whose file changed since it began.

    The one action behind "restart this transfer to push the new content": the new identity
    is taken, the old session is forgotten (it can't hold the new bytes), and the digest goes
    too (a file's digest is computed anew as it is sent). An image's layers can't change
    without the image changing: those raise, asking for the image to be added again.
    Returns the names of the blobs restarted (none for a download: its files are fetched).
    """
    restarted: list[str] = []
    if isinstance(transfer, Download):
        return restarted
    for blob in transfer.blobs:
        if blob.finished:
            continue
        try:
            blob.source.check_unchanged(blob.identity)
            continue
        except FileChanged:
            pass
        if transfer.is_image:
            raise FileChanged(
                f"{blob.source.path} changed since the image was read",
                hint="Add the image again to push what it holds now",
            )
        if isinstance(blob.source, BundleSource):  # its files are planned with the folder
            raise FileChanged(
                f"small files of {blob.source.path} changed since the push began",
                hint="Push the folder again as a new transfer",
            )
        now = FileIdentity.of(blob.source.path)
        if blob.annotations.get(SPLIT_FILE) is not None and now.size != blob.identity.size:
            raise FileChanged(
                f"{blob.source.path} changed size, so its parts no longer line up",
                hint="Push the file again as a new transfer",
            )
        blob.identity = now
        if SPLIT_FILE not in blob.annotations:  # a whole file (an image's raised above)
            blob.source = FileRange(blob.source.path, blob.source.offset, now.size)
        blob.location = None
        blob.acknowledged = 0
        blob.prefix_digest = None
        blob.digest = None
        blob.state = BlobState.PENDING
        blob.annotations.pop(SPLIT_FILE_DIGEST, None)
        restarted.append(blob.name)
    return restarted
