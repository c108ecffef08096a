"""One file's resumable, verified GET: the bytes of one or more blobs streamed into
`NAME.partial` beside the file, hashed as they are written, checked against the manifest's
sizes and sha256 digests, and only then renamed into place, so a file under its real name is
always complete and verified.

An interrupted fetch resumes with `Range: bytes=N-` after re-hashing the N bytes already on
disk (hashlib state can't be saved; about one second per GB); a registry that ignores Range and
answers 200 from byte 0 costs the prefix again on the wire but not on disk (the bytes already
held are skipped). A split file's parts are appended to the one `.partial`, each checked
against its own digest and the whole file against its digest besides.

Blobs may be redirected to object storage on another host; the client follows the redirect
and httpx and `RegistryAuth` keep credentials from going there (tests check this).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, TypeVar

import httpx

from hoist.core.bandwidth import Throttle
from hoist.core.errors import (
    HoistError,
    NetworkError,
    RegistryError,
    RegistryNotAnswering,
    SourceError,
    VerificationFailed,
    write_failed,
)
from hoist.core.oci.digest import READ_BLOCK
from hoist.core.progress import BlobEvent, BlobState, ProgressCallback, RateEstimator
from hoist.core.registry.client import RegistryClient
from hoist.core.retry import RetryPolicy, retry_temporary

#: The state in which a download's bytes move.
MOVING = BlobState.DOWNLOADING
#: Bytes gathered before one write-and-hash in a worker thread (one thread hop per MiB).
WRITE_BLOCK = READ_BLOCK
#: Seconds between two progress events of one blob while bytes flow (state changes: at once).
PROGRESS_INTERVAL = 0.2
PARTIAL_SUFFIX = ".partial"

T = TypeVar("T")
log = logging.getLogger(__name__)

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@dataclass(frozen=True)
class PulledFile:
    """One thing written under `dest`. `reused` is True when an identical file was there;
    `fetched` counts the bytes received for it (less than `size` after a resume)."""

    path: Path
    size: int
    digest: str
    kind: str  # "file", "split", "folder", "bundle", "blob", "manifest", "config", "layer"
    reused: bool = False
    fetched: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "size": self.size,
            "digest": self.digest,
            "kind": self.kind,
            "reused": self.reused,
            "fetched": self.fetched,
        }


def partial_path(target: Path) -> Path:
    return target.with_name(target.name + PARTIAL_SUFFIX)


# -- one file, from one or more blobs ---------------------------------------------------------


@dataclass(frozen=True)
class FilePart:
    """A blob that becomes bytes [start, start+size) of a file."""

    name: str  # for progress: a title, a part title, a digest
    digest: str
    size: int


class FileCursor:
    """Where a file stands: bytes on disk, the hashes over them, the part being written.

    Touched only from one worker thread at a time (see `settle`), never concurrently.
    """

    def __init__(self, parts: list[FilePart]) -> None:
        self.parts = parts
        self.starts = [0]
        for part in parts:
            self.starts.append(self.starts[-1] + part.size)
        self.index = 0
        self.offset = 0
        self.whole = hashlib.sha256()
        self._whole_at_part = self.whole.copy()
        self.part = hashlib.sha256()

    @property
    def done(self) -> bool:
        return self.index >= len(self.parts)

    @property
    def current(self) -> FilePart:
        return self.parts[self.index]

    @property
    def in_part(self) -> int:
        return self.offset - self.starts[self.index]

    def feed(self, data: bytes | memoryview) -> None:
        self.part.update(data)
        self.whole.update(data)
        self.offset += len(data)

    def settle(self) -> FilePart | None:
        """Check and move past every complete part; on a damaged one, step back to its start
        (the caller truncates the file there) and return it."""
        while not self.done and self.in_part == self.current.size:
            part = self.current
            if "sha256:" + self.part.hexdigest() != part.digest:
                self.offset = self.starts[self.index]
                self.whole = self._whole_at_part.copy()
                self.part = hashlib.sha256()
                return part
            self.index += 1
            self._whole_at_part = self.whole.copy()
            self.part = hashlib.sha256()
        return None


async def settle(call: Callable[[], T]) -> T:
    """Run a blocking call in a worker thread. If the task is cancelled meanwhile, wait for
    the thread to finish before re-raising, so the file and the hashes never disagree."""
    future = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


class _Reporter:
    """BlobEvents for one part: `acknowledged` is bytes on disk, `sent` bytes received."""

    def __init__(self, on_event: ProgressCallback | None, transfer: str, part: FilePart) -> None:
        self.on_event = on_event
        self.transfer = transfer
        self.part = part
        self.rate = RateEstimator()
        self.received = 0
        self.resent = 0
        self._last = 0.0

    def emit(
        self,
        state: BlobState,
        on_disk: int,
        message: str = "",
        *,
        retry_in: float | None = None,
        force: bool = True,
    ) -> None:
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        if self.on_event is None:
            return
        self.rate.add(on_disk, now)
        self.on_event(
            BlobEvent(
                transfer=self.transfer,
                blob=self.part.name,
                state=state,
                sent=self.received,
                acknowledged=on_disk,
                total=self.part.size,
                rate=self.rate.rate(now),
                eta=self.rate.eta(self.part.size - on_disk, now),
                message=message,
                retry_in=retry_in,
                resent=self.resent,
            )
        )


class FileFetch:
    """Downloads the parts of one file, in order, into its `.partial`; verifies; renames.

    A plain file is one part whose digest is the file's; a split file has many parts and a
    whole-file digest besides.
    """

    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        target: Path,
        parts: list[FilePart],
        *,
        whole_digest: str | None,
        kind: str,
        on_event: ProgressCallback | None,
        transfer: str,
        retry: RetryPolicy,
        there: FileCursor | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.client = client
        self.there = there  # the target already checked to hold these very bytes
        self.throttle = throttle
        self.repository = repository
        self.target = target
        self.partial = partial_path(target)
        self.parts = parts
        self.size = sum(p.size for p in parts)
        self.whole_digest = whole_digest
        self.kind = kind
        self.retry = retry
        self.reporters = {p.name: _Reporter(on_event, transfer, p) for p in parts}
        self._index = {p.name: i for i, p in enumerate(parts)}
        self.fetched = 0  # bytes received from the network (for tests and summaries)

    def _on_disk(self, cursor: FileCursor, part: FilePart) -> int:
        start = cursor.starts[self._index[part.name]]
        return max(0, min(part.size, cursor.offset - start))

    def _report(
        self, cursor: FileCursor, part: FilePart, state: BlobState, message: str = ""
    ) -> None:
        self.reporters[part.name].emit(state, self._on_disk(cursor, part), message)

    def pending(self) -> None:
        for part in self.parts:
            self.reporters[part.name].emit(BlobState.PENDING, 0)

    async def run(self) -> PulledFile:
        """Download (or find already there, or resume) the file; return what was written.

        Raises:
            VerificationFailed: the bytes don't match the manifest.
            WriteFailed: the disk refused (DiskFull, permissions); the `.partial` is kept.
        """
        try:
            return await self._run()
        except OSError as exc:
            raise write_failed(exc, self.target) from exc

    async def _run(self) -> PulledFile:
        digest = self.whole_digest or (self.parts[0].digest if len(self.parts) == 1 else "")
        there = await self._already_there()
        if there is not None:
            return PulledFile(
                self.target, self.size, digest or cursor_digest(there), self.kind, reused=True
            )
        # The `.partial` is locked before it is read or cut: two downloads writing the same
        # file (the same folder twice, two versions of a file) would otherwise interleave.
        handle = await settle(functools.partial(_open_locked, self.partial, self.target))
        try:
            cursor = await self._resume(handle)
            while not cursor.done:
                await self._fetch_part(handle, cursor)
            self._check_whole(cursor)
            await settle(functools.partial(os.fsync, handle.fileno()))
            # Renamed while still locked: no other download can slip in between.
            await settle(functools.partial(os.replace, self.partial, self.target))
        finally:
            handle.close()
        for part in self.parts:
            self._report(cursor, part, BlobState.DONE)
        return PulledFile(
            self.target, self.size, digest or cursor_digest(cursor), self.kind,
            fetched=self.fetched,
        )  # fmt: skip

    def _check_whole(self, cursor: FileCursor) -> None:
        if cursor.offset != self.size:
            raise VerificationFailed(
                f"{self.target.name}: {cursor.offset} bytes arrived, the manifest says {self.size}"
            )
        if self.whole_digest and cursor_digest(cursor) != self.whole_digest:
            raise VerificationFailed(
                f"{self.target.name}: every part matched its digest, but the joined file's "
                f"sha256 is {cursor_digest(cursor)}, not {self.whole_digest}",
                hint="The artifact's parts don't make up the file it names; push it again",
            )

    async def _already_there(self) -> FileCursor | None:
        """The verified cursor when the target already holds exactly these bytes (a pull run
        again), else None."""
        if self.there is not None:
            for part in self.parts:
                self._report(self.there, part, BlobState.EXISTS, "already downloaded")
            return self.there
        if (
            self.target.is_symlink()
            or not self.target.is_file()
            or self.target.stat().st_size != self.size
        ):
            return None
        cursor = FileCursor(self.parts)
        for part in self.parts:
            self._report(cursor, part, BlobState.HASHING, "checking the file already there")
        cursor = await scan_stoppable(self.target, self.parts, self.size)
        if not cursor.done or (self.whole_digest and cursor_digest(cursor) != self.whole_digest):
            return None
        for part in self.parts:
            self._report(cursor, part, BlobState.EXISTS, "already downloaded")
        return cursor

    async def _resume(self, handle: IO[bytes]) -> FileCursor:
        """Re-hash what an earlier run left in `.partial` (open and locked as `handle`) and
        keep its verified prefix."""
        held = os.fstat(handle.fileno()).st_size
        if held > self.size:  # not our file
            await settle(functools.partial(_truncate, handle, 0))
            held = 0
        cursor = FileCursor(self.parts)
        if held:
            for part in self.parts:
                self._report(cursor, part, BlobState.HASHING, "checking the part already here")
            cursor = await scan_stoppable(self.partial, self.parts, held)
        else:
            cursor.settle()  # parts of size 0
        if cursor.offset != held:
            await settle(functools.partial(_truncate, handle, cursor.offset))
        else:
            handle.seek(held)
        return cursor

    async def _fetch_part(self, handle: IO[bytes], cursor: FileCursor) -> None:
        """Fill the current part, resuming after temporary errors, waiting as the policy says.

        Gives up when `give_up_after` seconds pass without a byte of progress.
        """
        part = cursor.current
        reporter = self.reporters[part.name]
        resumed = cursor.in_part > 0

        async def waiting(seconds: float, exc: HoistError) -> None:
            if isinstance(exc, RegistryNotAnswering):
                reason = "the registry is not answering"
            elif isinstance(exc, NetworkError):
                reason = "waiting for the network"
            else:
                reason = "the registry had a temporary problem"
            await self._wait(reporter, cursor.in_part, seconds, reason)

        while not cursor.done and cursor.current is part:
            try:
                await retry_temporary(
                    lambda: self._receive(handle, cursor, part),
                    self.retry,
                    wait=waiting,
                    progress=lambda: cursor.offset,
                )
            except VerificationFailed:
                if not resumed or cursor.in_part != 0:
                    raise
                # The bytes an earlier run left were damaged (they can only be checked once
                # the part is whole): the part has been cut back to its start; fetch it again.
                resumed = False
                self._report(
                    cursor, part, MOVING, "the part kept from an earlier download was damaged; "
                    "downloading it again"
                )  # fmt: skip
        self._report(cursor, part, BlobState.DONE)  # this part is in and verified

    async def _wait(self, reporter: _Reporter, on_disk: int, seconds: float, why: str) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            reporter.emit(BlobState.WAITING, on_disk, why, retry_in=round(left))
            await asyncio.sleep(min(1.0, left))

    async def _open(self, part: FilePart, start: int) -> httpx.Response:
        # identity: the blob's own bytes, so that offsets are the blob's offsets.
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        return await self.client.request(
            "GET",
            f"/v2/{self.repository}/blobs/{part.digest}",
            headers=headers,
            what=f"download {part.name}",
            ok=(200, 206),
            follow_redirects=True,
        )

    async def _receive(self, handle: IO[bytes], cursor: FileCursor, part: FilePart) -> None:
        """One GET of the current part from where the disk stands, written as it arrives."""
        reporter = self.reporters[part.name]
        have = cursor.in_part
        if part.size == 0:
            self._after_part(cursor, await settle(cursor.settle), part)
            return
        self._report(cursor, part, MOVING)
        response = await self._open(part, have)
        skip = 0
        buffer = bytearray()
        try:
            if have and response.status_code == 200:
                # The registry (or the storage it redirected to) ignored Range: take the body
                # from byte 0 and drop what the disk already holds.
                skip = have
                reporter.resent += have
                self._report(
                    cursor, part, MOVING, "the registry ignored the resume request; receiving "
                    "this blob from its start"
                )  # fmt: skip
            elif response.status_code == 206:
                _check_content_range(response, have, part)
            async with contextlib.aclosing(_body(response, part)) as chunks:
                async for chunk in chunks:
                    if self.throttle is not None:  # this download's own cap
                        await self.throttle(len(chunk))
                    reporter.received += len(chunk)
                    self.fetched += len(chunk)
                    if skip:
                        cut = min(skip, len(chunk))
                        skip -= cut
                        chunk = chunk[cut:]
                        if not chunk:
                            continue
                    if cursor.in_part + len(buffer) + len(chunk) > part.size:
                        raise VerificationFailed(
                            f"{part.name}: the registry sent more than the {part.size} bytes "
                            "the manifest names"
                        )
                    buffer += chunk
                    if len(buffer) >= WRITE_BLOCK:
                        await settle(functools.partial(_write, handle, cursor, bytes(buffer)))
                        buffer.clear()
                        self._report_moving(cursor, part)
            if buffer:
                await settle(functools.partial(_write, handle, cursor, bytes(buffer)))
                buffer.clear()
        except NetworkError:
            if buffer:  # keep what arrived intact before the break
                await settle(functools.partial(_write, handle, cursor, bytes(buffer)))
            raise
        finally:
            await response.aclose()
        if cursor.in_part < part.size:
            # The answer ended cleanly (a cut connection is a NetworkError above): the registry
            # holds a different blob than the manifest names, and asking again won't change it.
            raise VerificationFailed(
                f"{part.name}: the registry's answer ended after {cursor.in_part} of the "
                f"{part.size} bytes the manifest names"
            )
        damaged = await settle(cursor.settle)
        if damaged is not None:
            await settle(functools.partial(_truncate, handle, cursor.offset))
        self._after_part(cursor, damaged, part)

    def _report_moving(self, cursor: FileCursor, part: FilePart) -> None:
        self.reporters[part.name].emit(MOVING, self._on_disk(cursor, part), force=False)

    def _after_part(self, cursor: FileCursor, damaged: FilePart | None, part: FilePart) -> None:
        if damaged is not None:
            raise VerificationFailed(
                f"{part.name}: the bytes received don't match its digest {part.digest}"
            )


def cursor_digest(cursor: FileCursor) -> str:
    return "sha256:" + cursor.whole.hexdigest()


async def _body(response: httpx.Response, part: FilePart) -> AsyncGenerator[bytes, None]:
    """The response body in chunks; a broken connection becomes a NetworkError (temporary)."""
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.TransportError as exc:
        raise NetworkError(f"{part.name}: the connection broke during the download") from exc


def _check_content_range(response: httpx.Response, start: int, part: FilePart) -> None:
    """A 206 must start where we asked (`Content-Range: bytes START-END/TOTAL`)."""
    value = response.headers.get("Content-Range", "")
    match = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", value)
    if match is None or int(match.group(1)) != start:
        raise RegistryError(
            f"{part.name}: asked for bytes from {start}, the registry sent {value or 'no range'}",
            status=response.status_code,
            hint="The registry or a proxy mishandles resumed downloads",
        )


def _open_partial(path: Path) -> int:
    """Open (or create) a `.partial` for writing, never through a link planted there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags, 0o644)
    except OSError:
        if not path.is_symlink():
            raise
        path.unlink()  # a link is never ours: replace it with a file
        return os.open(path, flags, 0o644)


def try_lock(fd: int) -> bool:
    """An exclusive lock on the open file, if nobody (this process included) holds one."""
    if fcntl is None:  # pragma: no cover - Windows: no advisory locks here
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _open_locked(path: Path, target: Path) -> IO[bytes]:
    """The `.partial`, open for writing and locked for as long as it stays open."""
    fd = _open_partial(path)
    if not try_lock(fd):
        os.close(fd)
        raise SourceError(
            f"another download is writing {target.name} in {target.parent}",
            hint="Let it finish or cancel it, then Retry; or download into another folder",
        )
    handle = os.fdopen(fd, "wb", buffering=0)
    handle.seek(0, os.SEEK_END)
    return handle


def _write(handle: IO[bytes], cursor: FileCursor, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = handle.write(view)
        if not written:
            raise OSError("the disk took no bytes")
        cursor.feed(view[:written])
        view = view[written:]


def _truncate(handle: IO[bytes], size: int) -> None:
    handle.truncate(size)
    handle.seek(size)


async def scan_stoppable(path: Path, parts: list[FilePart], length: int) -> FileCursor:
    """`_scan` in a worker thread that a pause or cancel stops at once: it only reads, so
    nothing needs to wait for it (re-checking 100 GB takes a while; a pause must not)."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_scan, path, parts, length, stop)
    except asyncio.CancelledError:
        stop.set()
        raise


def _scan(
    path: Path, parts: list[FilePart], length: int, stop: threading.Event | None = None
) -> FileCursor:
    """Hash the first `length` bytes of a file part by part; stop at the first damaged part
    (the cursor then stands at its start), or when `stop` is set. Blocking: run it in a
    worker thread."""
    cursor = FileCursor(parts)
    if cursor.settle() is not None:
        return cursor
    buf = bytearray(READ_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while cursor.offset < length and not cursor.done:
            if stop is not None and stop.is_set():
                break
            want = min(READ_BLOCK, cursor.current.size - cursor.in_part, length - cursor.offset)
            n = f.readinto(view[:want])
            if not n:
                break
            cursor.feed(view[:n])
            if cursor.settle() is not None:
                break
    return cursor
