"""One blob's upload: check existing → open a session → send chunks → commit.

The steps mirror the protocol (go-containerregistry's `write.go:uploadOne`); on trouble the
upload asks the registry where it stands (regclient's `blobUploadStatus`) instead of trusting
only what it saved. Every acknowledged chunk is checkpointed, so a resume, in this process or in
another one days later, never re-sends more than the registry lacks.

Registry behaviours handled here, each named where it is handled:
- distribution 2.x cancels a session whose `_state` disagrees with what it stored, so a chunk
  cut half-way (or a 202 that never arrived) loses the session: the blob starts again alone.
- distribution 3.x and GitLab answer GET with the size they really hold: resume from there.
- ECR answers PATCH with 201, wants parts ≥ 5 MiB (`OCI-Chunk-Min-Length`), and its `Range`
  can be stuck; Quay's is one too high: a 202/201 means the whole chunk was taken.
- GHCR refuses PATCH bodies over 4 MiB with 416; proxies answer 413: the chunk shrinks.
- Google Artifact Registry has no chunked upload: one streamed PUT instead.

Each chunk goes as a streamed PATCH (`Transfer-Encoding: chunked`, no `Content-Range`): an
append that Hoist can end cleanly at any byte, so a pause (Ctrl-C, SIGTERM, Quit) keeps every
byte sent; the `Range` of the answer is checked (end + 1 = bytes sent, else a GET must
confirm: zot counts only the request's bytes). A registry or proxy that refuses it (411, 400,
413, 416, a second streamed PATCH refused, a `Range` nobody confirms) gets sized chunks
(`Content-Range`) from then on, learned per host (profile.py); there a pause waits for the end
of the chunk, and says what that costs.

Why one module of about 900 lines: `BlobUpload` is one state machine over one `BlobRecord`. The
protocol steps, the chunk sender (streamed or sized, adaptive, shrinking) and the recovery after
a cut all read and move the same session state (location, acknowledged bytes, hasher, chunk
size, streamed or not, pause); cut apart, each part would take that state and hand it back, and
the order of the steps could no longer be read in one place. What is checked before a push
(push access) is `preflight`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hoist.core.bandwidth import Throttle
from hoist.core.errors import (
    AuthenticationFailed,
    FileChanged,
    HoistError,
    NetworkError,
    RangeNotSatisfiable,
    RegistryError,
    RegistryNotAnswering,
    RequestTooLarge,
    TransferPaused,
    UploadSessionLost,
)
from hoist.core.oci.digest import SequentialHasher, TrustedDigest
from hoist.core.progress import BlobEvent, BlobState, ProgressCallback, RateEstimator
from hoist.core.registry.client import FileBody, RegistryClient, UploadStatus
from hoist.core.registry.filebody import StreamEnd
from hoist.core.registry.profile import RegistryProfile
from hoist.core.retry import RetryPolicy, T, retry_temporary
from hoist.core.sources.bundle import source_from_json
from hoist.core.sources.content import FileIdentity, FileRange
from hoist.core.units import MiB, format_duration, format_size

#: The default chunk: see README "Chunk size". Big enough that per-request overhead is noise
#: (a PATCH costs a round trip and a registry-side state save), small enough that on a registry
#: that keeps partial uploads a lost chunk costs seconds, and under Cloudflare's 100 MB limit.
DEFAULT_CHUNK = 64 * MiB
#: A chunk never shrinks below this (and never below the registry's `OCI-Chunk-Min-Length`).
SMALLEST_CHUNK = 1 * MiB
#: Adaptive chunks grow while a chunk takes less than this many seconds...
ADAPTIVE_FAST = 1.0
#: ...up to this size.
ADAPTIVE_MAX_CHUNK = 1024 * MiB
#: How many times one blob may start over from byte 0 before the upload gives up.
MAX_RESTARTS = 5


@dataclass
class BlobRecord:
    """What the journal keeps of one blob: enough to resume it in a new process.

    The upload `location` may carry the registry's `_state`, which is needed to resume and is
    not a secret; no credential ever goes here.
    """

    name: str
    source: FileRange
    identity: FileIdentity
    media_type: str
    annotations: dict[str, str] = field(default_factory=dict)
    digest: str | None = None  # known up front (an image's layer) or once committed
    state: BlobState = BlobState.PENDING
    location: str | None = None
    acknowledged: int = 0
    prefix_digest: str | None = None  # sha256 of the acknowledged prefix
    restarts: int = 0
    chunk_size: int = 0  # 0: the transfer's chunk size
    mounted_from: str | None = None

    @property
    def size(self) -> int:
        return self.source.length

    @property
    def finished(self) -> bool:
        return self.state in (BlobState.DONE, BlobState.EXISTS, BlobState.MOUNTED)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source.to_json(),
            "identity": self.identity.to_json(),
            "media_type": self.media_type,
            "annotations": self.annotations,
            "digest": self.digest,
            "state": self.state.value,
            "location": self.location,
            "acknowledged": self.acknowledged,
            "prefix_digest": self.prefix_digest,
            "restarts": self.restarts,
            "chunk_size": self.chunk_size,
            "mounted_from": self.mounted_from,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BlobRecord:
        return cls(
            name=str(doc["name"]),
            source=source_from_json(doc["source"]),
            identity=FileIdentity.from_json(doc["identity"]),
            media_type=str(doc["media_type"]),
            annotations=dict(doc.get("annotations") or {}),
            digest=doc.get("digest"),
            state=BlobState(doc.get("state", "pending")),
            location=doc.get("location"),
            acknowledged=int(doc.get("acknowledged", 0)),
            prefix_digest=doc.get("prefix_digest"),
            restarts=int(doc.get("restarts", 0)),
            chunk_size=int(doc.get("chunk_size", 0)),
            mounted_from=doc.get("mounted_from"),
        )


@dataclass
class UploadSettings:
    """How blobs are sent. `max_chunk`, `min_chunk` and `chunked` are what the host taught us
    (see profile.py).

    `adaptive`: the chunk starts at `chunk_size` and doubles while chunks go through in under
    a second, up to ADAPTIVE_MAX_CHUNK (or the host's limit). Each PATCH costs the registry a
    turnaround (about 20 ms for distribution on this machine: 3 % at 64 MiB on loopback); on a
    fast link a larger chunk hides it, and on a slow one the chunk stays small, so what a cut
    chunk costs stays about a second of upload whatever the link. An explicit chunk size from
    the user is kept exactly (adaptive off).
    """

    chunk_size: int = DEFAULT_CHUNK
    adaptive: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    throttle: Throttle | None = None
    max_chunk: int | None = None  # the largest PATCH body the host (or a proxy) accepts
    min_chunk: int = 0
    chunked: bool = True  # False: the host takes no PATCH (Google Artifact Registry)
    streamed: bool = True  # False: the host (or a proxy) refuses streamed PATCH bodies
    on_limit: Callable[[RegistryProfile], None] | None = None  # a lesson: what was just learned


class BlobUpload:
    """Uploads one blob described by a BlobRecord, updating the record as it goes.

    Args:
        checkpoint: awaited after every change worth keeping (an acknowledged chunk, a new
            session, the commit) so the journal on disk follows the registry.
        pause: when set, the upload ends the streamed chunk in progress at once (at the next
            chunk boundary where only sized chunks work), saves, and raises TransferPaused.
    """

    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        record: BlobRecord,
        *,
        transfer_id: str = "",
        settings: UploadSettings | None = None,
        on_event: ProgressCallback | None = None,
        checkpoint: Callable[[], Awaitable[None]] | None = None,
        pause: asyncio.Event | None = None,
        mount_from: tuple[str, ...] = (),
        checkpoint_soon: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.mount_from = mount_from
        self.repository = repository
        self.record = record
        self.transfer_id = transfer_id
        self.settings = settings or UploadSettings()
        self.on_event = on_event
        self._checkpoint = checkpoint
        self._checkpoint_soon = checkpoint_soon
        self.pause = pause or asyncio.Event()
        # A digest known before the first byte is sent is not computed again (see TrustedDigest).
        self.hasher = TrustedDigest(record.digest) if record.digest else SequentialHasher()
        self.rate = RateEstimator()
        self.sent = 0
        self.resent = 0
        self._high_water = 0  # the furthest byte ever sent
        self._chunk = record.chunk_size or self.settings.chunk_size
        self._min_chunk = self.settings.min_chunk
        self._last_emit = 0.0
        self._state = record.state
        self._finalize_started = 0.0
        self._streamed = self.settings.streamed
        self._streams_taken = 0  # streamed PATCHes this session accepted
        self._position = 0  # where the body being sent has got to

    # -- reporting --------------------------------------------------------------------------

    def _emit(
        self,
        state: BlobState | None = None,
        message: str = "",
        retry_in: float | None = None,
        force: bool = True,
    ) -> None:
        if state is not None:
            self._state = state
        now = time.monotonic()
        if not force and now - self._last_emit < 0.2:
            return
        self._last_emit = now
        if self.on_event is None:
            return
        acked = self.record.acknowledged if not self.record.finished else self.record.size
        self.rate.add(self.sent)  # bytes sent by this run: a resumed offset is not speed
        elapsed = now - self._finalize_started if self._state == BlobState.FINALIZING else 0.0
        self.on_event(
            BlobEvent(
                transfer=self.transfer_id,
                blob=self.record.name,
                state=self._state,
                sent=self.sent,
                acknowledged=acked,
                total=self.record.size,
                rate=self.rate.rate(now),
                eta=self.rate.eta(self.record.size - acked, now),
                message=message,
                retry_in=retry_in,
                resent=self.resent,
                elapsed=elapsed,
            )
        )

    def _counter(self, start: int) -> Callable[[int], None]:
        """A callback counting bytes sent from `start`; bytes below the furthest point ever
        sent are counted as re-sent, so progress says so instead of moving backwards."""
        position = start

        def on_block(n: int) -> None:
            nonlocal position
            position += n
            self._position = position
            self.sent += n
            if position <= self._high_water:
                self.resent += n
            else:
                self.resent += max(0, self._high_water - (position - n))
                self._high_water = position
            self._emit(force=False)

        return on_block

    async def _save(self) -> None:
        if self._checkpoint is not None:
            await self._checkpoint()

    async def _save_settled(self) -> None:
        """Checkpoint a blob the registry now holds in full, found there or sent in one PUT:
        if a crash loses this write, the resume's HEAD finds it again. Deferred when the
        caller can (`checkpoint_soon`), so thousands of small blobs don't wait on thousands
        of journal writes."""
        if self._checkpoint_soon is not None:
            self._checkpoint_soon()
        else:
            await self._save()

    # -- the steps --------------------------------------------------------------------------

    async def run(self) -> str:
        """Upload (or skip, or resume) the blob; return its digest once the registry has it."""
        record = self.record
        if record.finished:
            assert record.digest
            return record.digest
        # Planned, paused or interrupted: the byte range was fixed when the file was read, so a
        # file changed since then must not be pushed (it would go truncated, or mixed).
        record.source.check_unchanged(record.identity)
        if record.digest and await self._already_there(record.digest):
            return record.digest
        if record.digest and not record.location and await self._mount(record.digest):
            return record.digest
        if record.location:
            await self._resume()
        while True:
            try:
                return await self._upload()
            except UploadSessionLost as exc:
                await self._restart(
                    f"the registry dropped the upload session ({exc.code or exc.status})"
                )

    async def _already_there(self, digest: str) -> bool:
        size = await self._with_retry(lambda: self.client.blob_size(self.repository, digest))
        if size is None or size != self.record.size:
            return False
        self.record.state = BlobState.EXISTS
        self.record.location = None
        await self._save_settled()
        self._emit(BlobState.EXISTS, "already in the registry")
        return True

    async def _mount(self, digest: str) -> bool:
        """Cross-repository mount from repositories that hold the blob (same registry).

        A registry that can't mount answers 202 with a fresh session instead: keep it.
        """
        for source in self.mount_from:
            if source == self.repository:
                continue
            status = await self.client.start_upload(self.repository, mount=digest, from_repo=source)
            if status is None:
                self.record.state = BlobState.MOUNTED
                self.record.mounted_from = source
                self.record.location = None
                await self._save()
                self._emit(BlobState.MOUNTED, f"mounted from {source}")
                return True
            self.record.location = status.location
            self.record.acknowledged = 0
            await self._save()
            return False
        return False

    async def _resume(self) -> None:
        """Pick up a session saved in the journal: check the file, re-hash its prefix, ask the
        registry where it stands."""
        record = self.record
        record.source.check_unchanged(record.identity)
        if record.acknowledged:
            self._emit(BlobState.HASHING, "checking the part already uploaded")
            self.hasher = await self._hash_prefix(record.acknowledged)
            if record.prefix_digest and self.hasher.prefix_digest() != record.prefix_digest:
                raise FileChanged(f"{record.source.path} was modified since the upload began")
        self._high_water = record.acknowledged
        assert record.location
        try:
            await self._adopt(await self._status_with_retry(record.location))
        except UploadSessionLost as exc:
            await self._restart(f"the registry no longer has the upload session ({_code(exc)})")

    async def _adopt(self, status: UploadStatus) -> None:
        """Take the registry's word for how much it holds (and its newest Location).

        Raises UploadSessionLost when that word makes no sense (no usable `Range`, or more than
        could have been sent): the only safe way on is a new session. So does `0-0` where
        chunks are streamed: it can't tell one byte held from none, and a streamed PATCH
        appends after whatever is there (a sized one would get 416 instead).
        """
        record = self.record
        offset = status.offset
        if self._streamed and status.known and offset == 0:
            raise UploadSessionLost(
                "the registry's upload status (Range 0-0) can't say whether it holds a byte",
                status=0,
                code="RANGE_AMBIGUOUS",
            )
        could_hold = max(
            self._high_water, record.acknowledged + self._chunk_len(record.acknowledged)
        )
        if status.known and offset == could_hold + 1:
            offset = could_hold  # Quay reports the end one too high
        if not status.known or offset > could_hold or offset > record.size:
            raise UploadSessionLost(
                f"the registry's upload status made no sense (Range {offset - 1 if offset else 0})",
                status=0,
                code="RANGE_INVALID",
            )
        record.location = status.location
        if offset > self.hasher.position:
            # It holds more than we know was acknowledged (a PATCH whose 202 we never saw, on a
            # registry that keeps partial chunks): hash up to there and carry on.
            self.hasher = await self._hash_prefix(offset)
        record.acknowledged = offset
        record.prefix_digest = self._prefix_digest_at(record.acknowledged)
        self._high_water = max(self._high_water, record.acknowledged)
        await self._save()

    async def _hash_prefix(self, length: int) -> SequentialHasher:
        """The first `length` bytes of the blob hashed in a worker thread that Pause (or a
        cancel) stops at once: re-hashing takes about 1 s per GB, and a pause must not wait
        for all of it. Raises TransferPaused when paused meanwhile."""
        source = self.record.source
        stop = threading.Event()
        job = asyncio.ensure_future(asyncio.to_thread(source.hash_prefix, length, stop))
        paused = asyncio.ensure_future(self.pause.wait())
        try:
            await asyncio.wait({job, paused}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            stop.set()
            job.cancel()
            raise
        finally:
            paused.cancel()
        if not job.done():
            stop.set()
            job.cancel()
            self._emit(BlobState.PAUSED, "paused")
            raise TransferPaused(self.record.name)
        return job.result()

    def _prefix_digest_at(self, offset: int) -> str | None:
        if self.hasher.position == offset:
            return self.hasher.prefix_digest()
        return None  # the hasher ran ahead (prefetch); the next acknowledged chunk sets it

    async def _restart(self, why: str) -> None:
        record = self.record
        record.restarts += 1
        if record.restarts > MAX_RESTARTS:
            raise UploadSessionLost(
                f"{record.name}: the registry dropped the upload {record.restarts} times",
                status=0,
                hint="The registry or a proxy keeps breaking uploads; try split mode (--split)",
            )
        record.location = None
        record.acknowledged = 0
        record.prefix_digest = None
        await self._save()
        self._emit(BlobState.UPLOADING, f"{why}: starting this blob again from the beginning")

    async def _open_session(self) -> None:
        status = await self._with_retry(lambda: self.client.start_upload(self.repository))
        assert status is not None
        if status.min_chunk > self._min_chunk:
            self._min_chunk = status.min_chunk  # ECR: parts of at least 5 MiB
            self._learn(RegistryProfile(min_chunk=status.min_chunk))
        self.record.location = status.location
        self.record.acknowledged = 0
        self.record.prefix_digest = None
        self._streams_taken = 0
        await self._save()

    def _chunk_len(self, offset: int) -> int:
        chunk = self._chunk
        if self.settings.max_chunk:
            chunk = min(chunk, self.settings.max_chunk)
        chunk = max(chunk, self._min_chunk, 2)  # never a 1-byte first chunk: `0-0` is ambiguous
        return min(chunk, self.record.size - offset)

    async def _upload(self) -> str:
        record = self.record
        # One PUT for a blob within one chunk (and within what the host takes in one body): a
        # round trip saved. Where chunks are streamed, only for a small blob: a PUT can't be
        # paused without losing it.
        one_put = self._chunk if not self._streamed else min(self._chunk, SMALLEST_CHUNK)
        small = (
            record.acknowledged == 0
            and record.size <= one_put
            and self._chunk_len(0) >= record.size
        )
        if not record.location and (small or not self.settings.chunked):
            return await self._monolithic()
        if not record.location:
            await self._open_session()
        self._emit(BlobState.UPLOADING)
        auth_retried = False
        while record.acknowledged < record.size:
            if self.pause.is_set():
                self._emit(BlobState.PAUSED, "paused")
                raise TransferPaused(record.name)
            offset = record.acknowledged
            length = self._chunk_len(offset)
            assert record.location
            started = time.monotonic()
            streamed = self._streamed
            try:
                if streamed:
                    status, sent = await self._stream(record.location, offset, length)
                else:
                    status = await self._send(record.location, offset, length)
                    sent = length
            except AuthenticationFailed:
                # The auth flow fetched a fresh token but can't replay a streamed body: send the
                # chunk again once, re-read from disk (a 5-minute GitLab token ran out mid-push).
                if auth_retried:
                    raise
                auth_retried = True
                continue
            except (RequestTooLarge, RangeNotSatisfiable) as exc:
                if streamed:
                    await self._leave_streaming(exc)
                else:
                    await self._shrink(exc, length)
                continue
            except UploadSessionLost:
                if streamed and self._streams_taken:
                    # A second streamed PATCH refused (BLOB_UPLOAD_UNKNOWN): this host takes
                    # one only; the blob starts again in sized chunks.
                    self._streamed = False
                    self._learn(RegistryProfile(streamed=False))
                raise
            except RegistryError as exc:
                if streamed and exc.status in (400, 411):
                    await self._leave_streaming(exc)  # a proxy refusing chunked bodies
                    continue
                if exc.status in (404, 405) and offset == 0 and exc.code in ("", "UNSUPPORTED"):
                    # Google Artifact Registry: no chunked upload. Note it, push in one PUT.
                    self._learn(RegistryProfile(chunked=False))
                    record.location = None
                    return await self._monolithic()
                if not exc.temporary:
                    raise
                await self._recover(exc)
                continue
            except NetworkError as exc:
                if streamed and self.pause.is_set():
                    # The stream was ended for a pause and no answer came in time: give up
                    # on that chunk only (a resume asks the registry where it stands).
                    self._emit(BlobState.PAUSED, f"paused; the last chunk went unanswered ({exc})")
                    raise TransferPaused(record.name) from exc
                await self._recover(exc)
                continue
            auth_retried = False
            if streamed:
                await self._settle_stream(status, offset, sent)
            else:
                # A 202 (ECR: 201) means the whole chunk was taken. The `Range` it reports is
                # not trusted over that: ECR's can be stuck, Quay's is one too high.
                record.location = status.location
                record.acknowledged = offset + length
                record.prefix_digest = self._prefix_digest_at(record.acknowledged)
                await self._save()
            self._emit(BlobState.UPLOADING)
            self._adapt(sent, time.monotonic() - started)
        return await self._commit()

    async def _stream(self, location: str, offset: int, length: int) -> tuple[UploadStatus, int]:
        """One streamed PATCH of up to `length` bytes, ended early (cleanly) by a pause.

        It never ends before 2 bytes of the blob went (`0-0` is ambiguous), nor below the
        host's minimum part (ECR, Cloudflare: 5 MiB) unless the blob ends first.
        """
        least = min(length, max(2 if offset == 0 else 1, self._min_chunk))
        body = FileBody(
            self.record.source, self.hasher, self._counter(offset), self.settings.throttle
        )
        end = StreamEnd(self.pause.is_set, least)
        status = await self.client.stream_chunk(location, body, offset, length, end)
        return status, body.sent

    async def _settle_stream(self, status: UploadStatus, offset: int, sent: int) -> None:
        """Take a streamed PATCH's answer: its `Range` must end where the bytes sent end; if it
        doesn't, a GET must say so (zot counts only the request's bytes). Where nothing
        confirms it (ECR's stuck `Range`), the 202 is trusted as for a sized chunk, and this
        host gets sized chunks from then on."""
        record = self.record
        expected = offset + sent
        record.location = status.location
        if not (status.known and status.offset == expected):
            try:
                confirmed: UploadStatus | None = await self._status_with_retry(status.location)
            except RegistryError:
                confirmed = None
            if confirmed is not None:
                record.location = confirmed.location  # the newest, whatever its Range says
            held = confirmed.offset if confirmed is not None and confirmed.known else None
            if held is not None and held > expected:
                raise UploadSessionLost(
                    f"the registry holds {held} bytes of the blob, but only {expected} were sent",
                    status=0,
                    code="RANGE_INVALID",
                )
            if held != expected:
                self._streamed = False
                self._learn(RegistryProfile(streamed=False))
                self._emit(
                    BlobState.UPLOADING,
                    f"the registry's Range after a streamed chunk said {status.offset} bytes, "
                    f"its status {'nothing' if held is None else held}, not {expected}: "
                    "sending sized chunks",
                )
                if confirmed is not None and held is not None and held < expected:
                    await self._adopt(confirmed)  # it holds less than went: continue from there
                    return
        self._streams_taken += 1
        record.acknowledged = expected
        record.prefix_digest = self._prefix_digest_at(expected)
        self._high_water = max(self._high_water, expected)
        await self._save()

    async def _leave_streaming(self, exc: RegistryError) -> None:
        """The host (or a proxy) refused a streamed PATCH: sized chunks from now on, for this
        host too (profile.py); continue from where the registry stands."""
        self._streamed = False
        self._learn(RegistryProfile(streamed=False))
        self._emit(
            BlobState.UPLOADING,
            f"the registry refused a streamed chunk ({_code(exc)}); sending sized chunks",
        )
        try:
            status = await self._status_with_retry(self.record.location or "")
            await self._adopt(status)
        except UploadSessionLost as lost:
            await self._restart(f"the registry dropped the upload session ({_code(lost)})")
            await self._open_session()

    def _adapt(self, length: int, seconds: float) -> None:
        """Grow the chunk on a fast link (see UploadSettings.adaptive). A throttled upload is
        left alone: its chunks are slow by design."""
        settings = self.settings
        if not settings.adaptive or settings.throttle is not None or length < self._chunk:
            return
        if seconds < ADAPTIVE_FAST:
            ceiling = min(ADAPTIVE_MAX_CHUNK, settings.max_chunk or ADAPTIVE_MAX_CHUNK)
            self._chunk = max(self._chunk, min(self._chunk * 2, ceiling))

    async def _send(self, location: str, offset: int, length: int) -> UploadStatus:
        """One sized PATCH (Content-Range). It can't end early without losing the chunk, so a
        pause meanwhile waits for its end, and says what that costs."""
        body = FileBody(
            self.record.source, self.hasher, self._counter(offset), self.settings.throttle
        )
        self._position = offset
        watcher = asyncio.ensure_future(self._say_pause_cost(offset + length))
        try:
            return await self.client.send_chunk(location, body, offset, length)
        finally:
            watcher.cancel()

    async def _say_pause_cost(self, chunk_end: int) -> None:
        """Once paused during a sized chunk: what finishing the chunk still costs, each second."""
        await self.pause.wait()
        while True:
            left = max(0, chunk_end - self._position)
            rate = self.rate.rate()
            when = f", about {format_duration(left / rate)}" if rate else ""
            self._emit(
                BlobState.UPLOADING,
                f"pausing after this chunk: {format_size(left)} left to send{when}",
            )
            await asyncio.sleep(1.0)

    async def _shrink(self, exc: RegistryError, length: int) -> None:
        """413 (a proxy's body limit) or 416 (GHCR's 4 MiB limit, or an out-of-order chunk):
        ask where the registry stands; if the chunk was too large, halve it and remember. A 416
        that the registry's status doesn't explain (it says `0-0` but holds a byte) can only be
        settled by a new session."""
        too_large = isinstance(exc, RequestTooLarge) or "exceed" in exc.message.lower()
        try:
            status = await self._status_with_retry(self.record.location or "")
        except UploadSessionLost as lost:
            await self._restart(f"the registry dropped the upload session ({_code(lost)})")
            await self._open_session()
            if not too_large:
                return
            status = None
        if not too_large:
            if status is not None and status.known and status.offset != self.record.acknowledged:
                await self._adopt(status)  # out of order: continue from the registry's place
                return
            raise UploadSessionLost(
                f"the registry refused the chunk at byte {self.record.acknowledged} ({_code(exc)}) "
                "and its status doesn't say why",
                status=exc.status,
                code=exc.code,
            )
        if status is not None:
            self.record.location = status.location
        smaller = max(length // 2, self._min_chunk, SMALLEST_CHUNK)
        if smaller >= length:
            raise exc
        self._chunk = smaller
        self.record.chunk_size = smaller
        self._learn(RegistryProfile(max_chunk=smaller))
        msg = f"the registry refused a {length} byte chunk; using {smaller}"
        self._emit(BlobState.UPLOADING, msg)

    def _learn(self, lesson: RegistryProfile) -> None:
        if self.settings.on_limit is not None:
            self.settings.on_limit(lesson)

    async def _recover(self, exc: HoistError) -> None:
        """After a temporary failure: wait, then ask the registry where the upload stands."""
        location = self.record.location
        assert location
        try:
            status = await self._status_with_retry(location, first_error=exc)
        except UploadSessionLost as lost:
            self._learn(RegistryProfile(resumable=False))
            await self._restart(
                f"the connection broke and the registry dropped the upload ({_code(lost)})"
            )
            await self._open_session()
            return
        self._learn(RegistryProfile(resumable=True))
        await self._adopt(status)

    async def _status_with_retry(
        self, location: str, first_error: HoistError | None = None
    ) -> UploadStatus:
        status: UploadStatus = await self._with_retry(
            lambda: self.client.upload_status(location), first_error=first_error
        )
        return status

    async def _with_retry(
        self, call: Callable[[], Awaitable[T]], *, first_error: HoistError | None = None
    ) -> T:
        """retry_temporary with this upload's policy, its countdown shown as WAITING events."""
        return await retry_temporary(
            call, self.settings.retry, wait=self._wait_out, first_error=first_error
        )

    async def _wait_out(self, seconds: float, error: HoistError) -> None:
        if isinstance(error, RegistryNotAnswering):
            reason = "the registry is not answering"
        elif isinstance(error, NetworkError):
            reason = "waiting for the network"
        elif isinstance(error, RegistryError) and error.status == 429:
            reason = "the registry asked us to slow down"
        else:
            reason = "the registry had a temporary problem"
        await self._wait(seconds, reason)

    async def _wait(self, seconds: float, reason: str) -> None:
        """Sleep, telling listeners the countdown once a second ("retry in 8 s"). A pause
        meanwhile stops at once (TransferPaused): nothing is in flight while waiting."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._emit(BlobState.WAITING, reason, retry_in=round(left))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.pause.wait(), min(1.0, left))
            if self.pause.is_set():
                self._emit(BlobState.PAUSED, "paused")
                raise TransferPaused(self.record.name)
        self._emit(BlobState.UPLOADING, f"{reason}: trying again")

    async def _commit(self) -> str:
        """PUT ?digest=. If the answer is lost, HEAD the blob first: a large commit can take the
        registry many seconds, and a blind retry meets BLOB_UPLOAD_UNKNOWN for a stored blob."""
        record = self.record
        if self.hasher.position != record.size:
            # Resumed from a journal whose prefix hash we carried but never fed: hash the rest.
            self.hasher = await self._hash_prefix(record.size)
        digest = self.hasher.digest()
        if record.digest and record.digest != digest:
            raise FileChanged(f"{record.source.path} no longer has digest {record.digest}")
        # Every byte was read by now: a file edited meanwhile would commit a mix of old and new
        # bytes that never existed on disk, which the registry's digest check can't catch.
        record.source.check_unchanged(record.identity)
        self._finalize_started = time.monotonic()
        self._emit(BlobState.FINALIZING, "the registry is committing the blob")
        assert record.location
        ticker = asyncio.ensure_future(self._tick_finalizing())
        try:
            await self.client.finish_upload(record.location, digest)
        except RegistryError as exc:
            if exc.has_code("DIGEST_INVALID"):
                if isinstance(self.hasher, TrustedDigest):
                    raise _no_longer_matches(record, digest) from exc
                # What the registry holds is not our file: never commit a corrupt blob.
                self.hasher = SequentialHasher()
                raise UploadSessionLost(str(exc), status=exc.status, code=exc.code) from exc
            if not (exc.temporary or isinstance(exc, UploadSessionLost)):
                raise
            await self._after_lost_commit(digest, exc)
        except NetworkError as exc:
            await self._after_lost_commit(digest, exc)
        finally:
            ticker.cancel()
        return await self._done(digest)

    async def _tick_finalizing(self) -> None:
        """While the registry commits (seconds for a large blob), say so every second with the
        elapsed time, so a bar at 100 % never looks hung."""
        while True:
            await asyncio.sleep(1.0)
            self._emit(BlobState.FINALIZING, "the registry is committing the blob")

    async def _after_lost_commit(self, digest: str, exc: HoistError) -> None:
        for attempt in range(1, 6):
            size = await self._with_retry(lambda: self.client.blob_size(self.repository, digest))
            if size == self.record.size:
                return
            if attempt < 5:
                await self._wait(self.settings.retry.delay(attempt), "the registry is committing")
        if isinstance(exc, UploadSessionLost):
            raise exc
        # The session may still be there: ask, and commit again.
        assert self.record.location
        status = await self._status_with_retry(self.record.location)
        self.record.location = status.location
        await self.client.finish_upload(status.location, digest)

    async def _monolithic(self) -> str:
        """POST, then one PUT ?digest= with the whole blob as a streamed body.

        For blobs below one chunk and registries without chunked upload. The digest goes in the
        URL, so an unknown one is hashed first (small blobs: the second read hits the page cache).
        """
        record = self.record
        digest = record.digest
        if digest is None:
            self._emit(BlobState.HASHING, "hashing")
            digest = (await asyncio.to_thread(record.source.hash_prefix, record.size)).digest()
            record.digest = digest
            if await self._already_there(digest):
                return digest
        self._emit(BlobState.UPLOADING)
        while True:
            status = await self._with_retry(lambda: self.client.start_upload(self.repository))
            assert status is not None  # None only answers a mount, and none was asked
            body = FileBody(
                record.source, TrustedDigest(digest), self._counter(0), self.settings.throttle
            )  # the digest is in the URL: the registry checks it, nothing to hash here
            self._finalize_started = time.monotonic()
            try:
                await self.client.finish_upload(status.location, digest, body, record.size)
            except RequestTooLarge as exc:
                await self._chunks_instead(exc, status.location)
                return await self._upload()
            except (NetworkError, RegistryError) as exc:
                if isinstance(exc, RegistryError) and exc.has_code("DIGEST_INVALID"):
                    raise _no_longer_matches(record, digest) from exc
                if isinstance(exc, RegistryError) and not exc.temporary:
                    raise
                size = await self._with_retry(
                    lambda: self.client.blob_size(self.repository, digest)
                )
                if size == record.size:
                    break
                await self._wait(self.settings.retry.delay(1), "the upload broke")
                continue
            break
        # The PUT read the file once more: it must still be the file the digest was taken of.
        record.source.check_unchanged(record.identity)
        return await self._done(digest, settled=True)

    async def _chunks_instead(self, exc: RequestTooLarge, location: str) -> None:
        """A 413 to the single-request PUT (nginx's default `client_max_body_size` is 1 MiB):
        send the blob in chunks of half its size (or less) in a new session instead, as the
        413's hint promises, and remember the limit for this host. Raises `exc` when the chunk
        was already smaller than the blob (a second 413 here) or can't shrink."""
        record = self.record
        smaller = max(min(self._chunk, record.size) // 2, self._min_chunk, SMALLEST_CHUNK)
        if self._chunk < record.size or smaller >= record.size:
            raise exc
        try:
            await self.client.cancel_upload(location)
        except HoistError:
            pass  # the proxy refused before the registry saw anything: the session just expires
        self._chunk = smaller
        record.chunk_size = smaller
        self._learn(RegistryProfile(max_chunk=smaller))
        self._emit(
            BlobState.UPLOADING,
            f"the registry refused the blob in one request; sending {smaller} byte chunks",
        )
        await self._open_session()

    async def _done(self, digest: str, *, settled: bool = False) -> str:
        """The blob is committed. `settled`: sent in one PUT, so the journal knew no session
        for it (see `_save_settled`)."""
        record = self.record
        record.digest = digest
        record.state = BlobState.DONE
        record.location = None
        record.acknowledged = record.size
        if settled:
            await self._save_settled()
        else:
            await self._save()
        self._emit(BlobState.DONE)
        return digest


def _no_longer_matches(record: BlobRecord, digest: str) -> FileChanged:
    """The registry refused the digest Hoist knew before reading the bytes: the local bytes
    are not what that digest names (a corrupt image source, or a file rewritten in place with
    its size and mtime kept)."""
    return FileChanged(
        f"{record.source.path}: the bytes sent don't match {digest}, the digest they had when "
        "Hoist read them (the registry checked), so the local copy is corrupt or was changed",
        hint="Nothing was committed; check the file, add it (or the image) again and push",
    )


def fresh_record(
    name: str,
    source: FileRange,
    media_type: str,
    annotations: dict[str, str] | None = None,
    digest: str | None = None,
) -> BlobRecord:
    """A BlobRecord for a blob not yet started, with the file's identity taken now."""
    return BlobRecord(
        name=name,
        source=source,
        identity=FileIdentity.of(source.path),
        media_type=media_type,
        annotations=dict(annotations or {}),
        digest=digest,
    )


__all__ = [
    "DEFAULT_CHUNK",
    "BlobRecord",
    "BlobUpload",
    "UploadSettings",
    "fresh_record",
]


def _code(exc: RegistryError) -> str:
    return exc.code or str(exc.status)
