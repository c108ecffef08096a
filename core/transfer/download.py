"""`hoist pull`: an artifact's files (or an image's blobs, or one blob) into a folder.

Every file is streamed into `NAME.partial` beside its target, hashed as it is written, checked
against the manifest's size and sha256, and only then renamed into place, so a file under its
real name is always complete and verified. An interrupted download resumes with
`Range: bytes=N-` after re-hashing the N bytes already on disk (hashlib state can't be saved;
about one second per GB); a registry that ignores Range and answers 200 from byte 0 costs the
prefix again on the wire but not on disk (the bytes already held are skipped).

Split-mode artifacts (`app.hoist.split.*`) are joined while downloading: each part is appended
to the original file's `.partial`, checked against its own digest, and the whole file against
`app.hoist.split.file.digest`, so the file is written once. Folder layers
(`io.deis.oras.content.unpack`) are unpacked as oras does, but safely: every entry must lie
inside the folder, checked with tarfile's `data` filter besides (no absolute paths, no `..`, no
links leaving the folder, no devices), and the tar must match `io.deis.oras.content.digest`.

Titles are checked before anything is written: a title that would land outside the target
folder (`../x`, `/etc/x`, empty) is refused with a SourceError.

Blobs may be redirected to object storage on another host; the client follows the redirect
and httpx and `RegistryAuth` keep credentials from going there (tests check this).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import AsyncGenerator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any, TypeVar

import httpx
from hoist.core.bandwidth import Throttle
from hoist.core.errors import (
    ArtifactInvalid,
    HoistError,
    JournalUnwritable,
    NetworkError,
    NotFound,
    RegistryError,
    RegistryNotAnswering,
    ReplaceRefused,
    SourceError,
    TransferPaused,
    VerificationFailed,
    WriteFailed,
    write_failed,
)
from hoist.core.oci.digest import EMPTY_SHA256, READ_BLOCK, is_digest, sha256_bytes
from hoist.core.oci.manifest import OCI_INDEX
from hoist.core.oci.reference import Reference
from hoist.core.progress import BlobEvent, BlobState, Event, ProgressCallback, RateEstimator
from hoist.core.registry.browse import (
    BlobInfo,
    ManifestKind,
    classify,
    fetch_manifest,
    gather_bounded,
    parse_descriptor,
    parse_image,
    reference_text,
)
from hoist.core.registry.client import RegistryClient
from hoist.core.retry import RetryPolicy, retry_temporary
from hoist.core.sources.artifact import (
    ORAS_DIGEST,
    ORAS_UNPACK,
    SPLIT_COUNT,
    SPLIT_FILE,
    SPLIT_FILE_DIGEST,
    SPLIT_FILE_SIZE,
    SPLIT_INDEX,
    SPLIT_OFFSET,
    folder_member_filter,
)
from hoist.core.sources.bundle import BUNDLE, unpack_bundle
from hoist.core.sources.folder import parse_empty_dirs, parse_mode
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import (
    DOWNLOAD,
    DownloadPart,
    JournaledRun,
    Transfer,
    TransferState,
    new_transfer_id,
    save_despite_cancellation,
)

#: The state in which a download's bytes move.
MOVING = BlobState.DOWNLOADING
#: Bytes gathered before one write-and-hash in a worker thread (one thread hop per MiB).
WRITE_BLOCK = READ_BLOCK
#: Seconds between two progress events of one blob while bytes flow (state changes: at once).
PROGRESS_INTERVAL = 0.2
PARTIAL_SUFFIX = ".partial"
_DRIVE = re.compile(r"^[A-Za-z]:")

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


# -- names ----------------------------------------------------------------------------------


def safe_parts(title: str) -> tuple[str, ...]:
    """The path components of a title, refusing any that would leave the target folder.

    Raises:
        SourceError: empty, absolute (`/x`, `\\\\x`, `C:x`), or with a `..` component.
    """
    if not title or not title.strip() or "\x00" in title:
        raise SourceError(
            f"the artifact names a file {title!r}, which is empty or not a file name",
            hint="Nothing was written; the artifact's titles must be file names",
        )
    if title.startswith(("/", "\\")) or _DRIVE.match(title):
        raise SourceError(
            f"the artifact names a file by the absolute path {title!r}",
            hint="Nothing was written; Hoist only writes inside the folder you name",
        )
    pieces = re.split(r"[/\\]", title)
    if ".." in pieces:
        raise SourceError(
            f"the artifact's file name {title!r} would escape the target folder",
            hint="Nothing was written; Hoist only writes inside the folder you name",
        )
    parts = tuple(p for p in title.split("/") if p not in ("", "."))
    if not parts:
        raise SourceError(f"the artifact names a file {title!r}, which is not a file name")
    return parts


def target_path(dest: Path, title: str) -> Path:
    """Where a title is written under `dest`; also refuses a path that an existing symlink
    inside `dest` would carry elsewhere."""
    target = dest.joinpath(*safe_parts(title))
    root = dest.resolve()
    resolved = target.parent.resolve() / target.name
    if resolved != root and root not in resolved.parents:
        raise SourceError(
            f"the artifact's file {title!r} would be written outside {dest} (through a link)",
            hint="Nothing was written; pull into a folder without links leading out of it",
        )
    return target


def _make_dest(dest: Path) -> None:
    """Create the target folder (after every check passed: nothing is written before)."""
    if dest.exists() and not dest.is_dir():
        raise SourceError(f"{dest} is not a folder", hint="Name a folder to pull into")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SourceError(f"can't create the folder {dest}: {exc.strerror or exc}") from exc


def _partial(target: Path) -> Path:
    return target.with_name(target.name + PARTIAL_SUFFIX)


def _check_digest(digest: str, what: str) -> None:
    if not is_digest(digest):
        raise ArtifactInvalid(
            f"{what} has the digest {digest[:80]!r}, which Hoist can't verify",
            hint="Hoist verifies sha256 digests",
        )


# -- one file, from one or more blobs ---------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """A blob that becomes bytes [start, start+size) of a file."""

    name: str  # for progress: a title, a part title, a digest
    digest: str
    size: int


class _Cursor:
    """Where a file stands: bytes on disk, the hashes over them, the part being written.

    Touched only from one worker thread at a time (see `_settle`), never concurrently.
    """

    def __init__(self, parts: list[_Part]) -> None:
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
    def current(self) -> _Part:
        return self.parts[self.index]

    @property
    def in_part(self) -> int:
        return self.offset - self.starts[self.index]

    def feed(self, data: bytes | memoryview) -> None:
        self.part.update(data)
        self.whole.update(data)
        self.offset += len(data)

    def settle(self) -> _Part | None:
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


async def _settle(call: Callable[[], T]) -> T:
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

    def __init__(self, on_event: ProgressCallback | None, transfer: str, part: _Part) -> None:
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


class _FileFetch:
    """Downloads the parts of one file, in order, into its `.partial`; verifies; renames.

    A plain file is one part whose digest is the file's; a split file has many parts and a
    whole-file digest besides.
    """

    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        target: Path,
        parts: list[_Part],
        *,
        whole_digest: str | None,
        kind: str,
        on_event: ProgressCallback | None,
        transfer: str,
        retry: RetryPolicy,
        there: _Cursor | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.client = client
        self.there = there  # the target already checked to hold these very bytes
        self.throttle = throttle
        self.repository = repository
        self.target = target
        self.partial = _partial(target)
        self.parts = parts
        self.size = sum(p.size for p in parts)
        self.whole_digest = whole_digest
        self.kind = kind
        self.retry = retry
        self.reporters = {p.name: _Reporter(on_event, transfer, p) for p in parts}
        self._index = {p.name: i for i, p in enumerate(parts)}
        self.fetched = 0  # bytes received from the network (for tests and summaries)

    def _on_disk(self, cursor: _Cursor, part: _Part) -> int:
        start = cursor.starts[self._index[part.name]]
        return max(0, min(part.size, cursor.offset - start))

    def _report(self, cursor: _Cursor, part: _Part, state: BlobState, message: str = "") -> None:
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
                self.target, self.size, digest or _cursor_digest(there), self.kind, reused=True
            )
        # The `.partial` is locked before it is read or cut: two downloads writing the same
        # file (the same folder twice, two versions of a file) would otherwise interleave.
        handle = await _settle(functools.partial(_open_locked, self.partial, self.target))
        try:
            cursor = await self._resume(handle)
            while not cursor.done:
                await self._fetch_part(handle, cursor)
            self._check_whole(cursor)
            await _settle(functools.partial(os.fsync, handle.fileno()))
            # Renamed while still locked: no other download can slip in between.
            await _settle(functools.partial(os.replace, self.partial, self.target))
        finally:
            handle.close()
        for part in self.parts:
            self._report(cursor, part, BlobState.DONE)
        return PulledFile(
            self.target, self.size, digest or _cursor_digest(cursor), self.kind,
            fetched=self.fetched,
        )  # fmt: skip

    def _check_whole(self, cursor: _Cursor) -> None:
        if cursor.offset != self.size:
            raise VerificationFailed(
                f"{self.target.name}: {cursor.offset} bytes arrived, the manifest says {self.size}"
            )
        if self.whole_digest and _cursor_digest(cursor) != self.whole_digest:
            raise VerificationFailed(
                f"{self.target.name}: every part matched its digest, but the joined file's "
                f"sha256 is {_cursor_digest(cursor)}, not {self.whole_digest}",
                hint="The artifact's parts don't make up the file it names; push it again",
            )

    async def _already_there(self) -> _Cursor | None:
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
        cursor = _Cursor(self.parts)
        for part in self.parts:
            self._report(cursor, part, BlobState.HASHING, "checking the file already there")
        cursor = await _scan_stoppable(self.target, self.parts, self.size)
        if not cursor.done or (self.whole_digest and _cursor_digest(cursor) != self.whole_digest):
            return None
        for part in self.parts:
            self._report(cursor, part, BlobState.EXISTS, "already downloaded")
        return cursor

    async def _resume(self, handle: IO[bytes]) -> _Cursor:
        """Re-hash what an earlier run left in `.partial` (open and locked as `handle`) and
        keep its verified prefix."""
        held = os.fstat(handle.fileno()).st_size
        if held > self.size:  # not our file
            await _settle(functools.partial(_truncate, handle, 0))
            held = 0
        cursor = _Cursor(self.parts)
        if held:
            for part in self.parts:
                self._report(cursor, part, BlobState.HASHING, "checking the part already here")
            cursor = await _scan_stoppable(self.partial, self.parts, held)
        else:
            cursor.settle()  # parts of size 0
        if cursor.offset != held:
            await _settle(functools.partial(_truncate, handle, cursor.offset))
        else:
            handle.seek(held)
        return cursor

    async def _fetch_part(self, handle: IO[bytes], cursor: _Cursor) -> None:
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

    async def _open(self, part: _Part, start: int) -> httpx.Response:
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

    async def _receive(self, handle: IO[bytes], cursor: _Cursor, part: _Part) -> None:
        """One GET of the current part from where the disk stands, written as it arrives."""
        reporter = self.reporters[part.name]
        have = cursor.in_part
        if part.size == 0:
            self._after_part(cursor, await _settle(cursor.settle), part)
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
                        await _settle(functools.partial(_write, handle, cursor, bytes(buffer)))
                        buffer.clear()
                        self._report_moving(cursor, part)
            if buffer:
                await _settle(functools.partial(_write, handle, cursor, bytes(buffer)))
                buffer.clear()
        except NetworkError:
            if buffer:  # keep what arrived intact before the break
                await _settle(functools.partial(_write, handle, cursor, bytes(buffer)))
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
        damaged = await _settle(cursor.settle)
        if damaged is not None:
            await _settle(functools.partial(_truncate, handle, cursor.offset))
        self._after_part(cursor, damaged, part)

    def _report_moving(self, cursor: _Cursor, part: _Part) -> None:
        self.reporters[part.name].emit(MOVING, self._on_disk(cursor, part), force=False)

    def _after_part(self, cursor: _Cursor, damaged: _Part | None, part: _Part) -> None:
        if damaged is not None:
            raise VerificationFailed(
                f"{part.name}: the bytes received don't match its digest {part.digest}"
            )


def _cursor_digest(cursor: _Cursor) -> str:
    return "sha256:" + cursor.whole.hexdigest()


async def _body(response: httpx.Response, part: _Part) -> AsyncGenerator[bytes, None]:
    """The response body in chunks; a broken connection becomes a NetworkError (temporary)."""
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.TransportError as exc:
        raise NetworkError(f"{part.name}: the connection broke during the download") from exc


def _check_content_range(response: httpx.Response, start: int, part: _Part) -> None:
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


def _try_lock(fd: int) -> bool:
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
    if not _try_lock(fd):
        os.close(fd)
        raise SourceError(
            f"another download is writing {target.name} in {target.parent}",
            hint="Let it finish or cancel it, then Retry; or download into another folder",
        )
    handle = os.fdopen(fd, "wb", buffering=0)
    handle.seek(0, os.SEEK_END)
    return handle


def _write(handle: IO[bytes], cursor: _Cursor, data: bytes) -> None:
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


async def _scan_stoppable(path: Path, parts: list[_Part], length: int) -> _Cursor:
    """`_scan` in a worker thread that a pause or cancel stops at once: it only reads, so
    nothing needs to wait for it (re-checking 100 GB takes a while; a pause must not)."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_scan, path, parts, length, stop)
    except asyncio.CancelledError:
        stop.set()
        raise


def _scan(
    path: Path, parts: list[_Part], length: int, stop: threading.Event | None = None
) -> _Cursor:
    """Hash the first `length` bytes of a file part by part; stop at the first damaged part
    (the cursor then stands at its start), or when `stop` is set. Blocking: run it in a
    worker thread."""
    cursor = _Cursor(parts)
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


# -- folders --------------------------------------------------------------------------------


class _HashingReader:
    """A read-only stream that hashes what passes through it (the uncompressed tar)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.sha.update(data)
        return data

    def drain(self) -> None:
        while self.read(READ_BLOCK):
            pass


def _unpack(archive: Path, title: str, dest: Path, tar_digest: str | None) -> None:
    """Extract a folder layer into a staging folder inside `dest`, check the tar's digest,
    then move the folder into place (blocking: run in a worker thread)."""
    parts = safe_parts(title)
    target = dest.joinpath(*parts)
    staging = Path(tempfile.mkdtemp(prefix=f".{parts[-1]}.", suffix=".unpack", dir=dest))
    try:
        with contextlib.ExitStack() as stack:
            raw = stack.enter_context(open(archive, "rb"))
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream: IO[bytes] = raw
            if compressed:
                unzipped = gzip.GzipFile(fileobj=raw, mode="rb")
                stack.callback(unzipped.close)
                stream = unzipped  # type: ignore[assignment]
            reader = _HashingReader(stream)
            try:
                with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                    tar.errorlevel = 2
                    tar.extractall(staging, filter=folder_member_filter(parts))
                reader.drain()
            except tarfile.FilterError as exc:
                raise SourceError(
                    f"the folder {title!r} holds an unsafe entry ({exc})",
                    hint="Nothing of this folder was kept",
                ) from exc
            except OSError as exc:
                if exc.errno is None:  # gzip's BadGzipFile: the archive, not the disk
                    raise VerificationFailed(
                        f"the folder {title!r} is not a readable tar ({exc})"
                    ) from exc
                # The disk refused (full, permissions): the archive is fine and is kept.
                raise write_failed(exc, exc.filename or target) from exc
            except (tarfile.TarError, EOFError, zlib.error) as exc:
                raise VerificationFailed(
                    f"the folder {title!r} is not a readable tar ({exc})"
                ) from exc
        if tar_digest and "sha256:" + reader.sha.hexdigest() != tar_digest:
            raise VerificationFailed(
                f"the folder {title!r} unpacked to a tar whose sha256 is not {tar_digest}"
            )
        unpacked = staging.joinpath(*parts)
        if not unpacked.is_dir():
            raise ArtifactInvalid(f"the folder layer {title!r} holds no folder {title!r}")
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(unpacked, target)
    finally:
        # Best effort: the staging folder holds only what this call extracted.
        shutil.rmtree(staging, ignore_errors=True)


# -- planning -------------------------------------------------------------------------------


@dataclass
class _Job:
    """One thing to write: a file (from one blob or split parts), or a folder layer."""

    title: str
    target: Path
    parts: list[_Part]
    whole_digest: str | None
    kind: str
    tar_digest: str | None = None
    mode: int | None = None  # permission bits a folder's file had (`app.hoist.file.mode`)


def _split_job(dest: Path, name: str, layers: list[BlobInfo], manifest: dict[str, str]) -> _Job:
    """A split file's parts, checked against their annotations: indices 1..count, offsets
    contiguous, sizes adding up to the file size."""
    first = layers[0].annotations
    try:
        count = int(first.get(SPLIT_COUNT, len(layers)))
    except ValueError as exc:
        raise ArtifactInvalid(f"the split file {name!r} has no valid part count") from exc
    if count != len(layers):
        raise ArtifactInvalid(f"the split file {name!r} has {len(layers)} of {count} parts")
    offset = 0
    for i, layer in enumerate(layers):
        ann = layer.annotations
        try:
            index, at = int(ann[SPLIT_INDEX]), int(ann.get(SPLIT_OFFSET, offset))
        except (KeyError, ValueError) as exc:
            raise ArtifactInvalid(f"a part of the split file {name!r} has no valid index") from exc
        if index != i + 1 or at != offset:
            raise ArtifactInvalid(
                f"the split file {name!r}: part {i + 1} says index {index} at offset {at}"
            )
        offset += layer.size
    declared = first.get(SPLIT_FILE_SIZE)
    if declared is not None and declared != str(offset):
        raise ArtifactInvalid(
            f"the split file {name!r}: its parts hold {offset} bytes, it says {declared}"
        )
    whole = first.get(SPLIT_FILE_DIGEST) or manifest.get(SPLIT_FILE_DIGEST)
    if whole is not None:
        _check_digest(whole, f"the split file {name!r}")
    parts = [_Part(layer.title or f"{name}.part{i + 1}", layer.digest, layer.size)
             for i, layer in enumerate(layers)]  # fmt: skip
    return _Job(name, target_path(dest, name), parts, whole, "split")


def _artifact_jobs(
    dest: Path, layers: list[BlobInfo], annotations: dict[str, str], untitled: bool = False
) -> tuple[list[_Job], list[str]]:
    """Every file and folder of an artifact, all names checked before anything is written.

    A layer without a title is skipped (its digest listed), or with `untitled` written as a
    file named after its digest (`sha256-HEX`), as `pull_blob` names a blob."""
    jobs: list[_Job] = []
    skipped: list[str] = []
    groups: dict[str, list[BlobInfo]] = {}
    for layer in layers:
        _check_digest(layer.digest, f"layer {layer.title or layer.digest}")
        split_name = layer.annotations.get(SPLIT_FILE)
        if split_name is not None:
            if split_name not in groups:
                groups[split_name] = []
                jobs.append(_Job(split_name, dest, [], None, "split-placeholder"))
            groups[split_name].append(layer)
            continue
        title = layer.title
        if title is None and untitled:
            title = layer.digest.replace(":", "-")
        if title is None:
            skipped.append(layer.digest)  # as oras: a layer without a name has no file
            continue
        target = target_path(dest, title)
        part = _Part(title, layer.digest, layer.size)
        if layer.annotations.get(BUNDLE) is not None:  # small files: unpacked into the tree
            bundle = target.with_name(f".{target.name}.hoist-bundle")
            jobs.append(_Job(title, bundle, [part], layer.digest, "bundle"))
        elif layer.annotations.get(ORAS_UNPACK) == "true":
            tar_digest = layer.annotations.get(ORAS_DIGEST)
            if tar_digest is not None:
                _check_digest(tar_digest, f"the folder {title!r}")
            archive = target.with_name(f".{target.name}.hoist-folder")
            jobs.append(_Job(title, archive, [part], layer.digest, "folder", tar_digest))
        else:
            mode = parse_mode(layer.annotations)
            jobs.append(_Job(title, target, [part], layer.digest, "file", mode=mode))
    out = []
    for job in jobs:
        if job.kind == "split-placeholder":
            ordered = sorted(groups[job.title], key=_split_index)
            out.append(_split_job(dest, job.title, ordered, annotations))
        else:
            out.append(job)
    _check_collisions(dest, out)
    return out, skipped


def _split_index(layer: BlobInfo) -> int:
    try:
        return int(layer.annotations.get(SPLIT_INDEX, "0"))
    except ValueError:
        return 0


def _check_collisions(dest: Path, jobs: list[_Job]) -> None:
    """No two jobs may write the same path, or one inside the other's file; an existing
    folder is never replaced by a folder layer unless asked (see `pull`)."""
    paths: dict[Path, str] = {}
    for job in jobs:
        final = dest.joinpath(*safe_parts(job.title))
        for path in (final, _partial(job.target), job.target):
            if path in paths and paths[path] != job.title:
                raise SourceError(
                    f"the artifact names {job.title!r} and {paths[path]!r}, which would be "
                    "written to the same place",
                    hint="Nothing was written; push the artifact again with distinct names",
                )
            paths[path] = job.title
    for path, title in paths.items():
        for parent in path.parents:
            if parent in paths and paths[parent] != title:
                raise SourceError(
                    f"the artifact names {title!r} inside {paths[parent]!r}, which is a file",
                    hint="Nothing was written",
                )


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
    there: dict[Path, _Cursor] = {}
    layout: _Layout | None = None
    empty_dirs: list[Path] = []
    if kind == ManifestKind.ARTIFACT:
        empty_dirs = [target_path(dest, d) for d in parse_empty_dirs(image.annotations)]
        jobs, result.skipped = _artifact_jobs(dest, image.layers, image.annotations, untitled)
        planned = list(jobs)
        jobs, kept = _kept_folders(dest, jobs, {str(p) for p in keep_folders})
        for job in jobs:
            final = dest.joinpath(*safe_parts(job.title))
            if job.kind == "folder" and (final.exists() or final.is_symlink()) and not overwrite:
                raise SourceError(
                    f"{final} already exists",
                    hint="Nothing was written; remove it, or pull with overwrite",
                )
            if job.kind != "folder" and final.is_dir() and not final.is_symlink():
                raise SourceError(
                    f"{final} is a folder, and the artifact has a file by that name",
                    hint="Nothing was written; move the folder away or pull elsewhere",
                )
        if not overwrite:
            there = await _files_there(jobs)
    else:
        jobs = planned = _image_jobs(dest, image.config, image.layers)
        ref_name = tag or (None if is_digest(reference) else reference)
        layout = await _settle(
            functools.partial(_Layout.read, dest, data.data, ref_name, overwrite)
        )
    _make_dest(dest)
    for folder in empty_dirs:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"can't create the folder {folder}: {exc.strerror or exc}") from exc
    fetches = [
        (job, _FileFetch(
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

    async def one(job: _Job, fetch: _FileFetch) -> PulledFile:
        pulled = await placed(job, fetch)
        if on_file is not None:
            on_file(pulled)
        return pulled

    async def placed(job: _Job, fetch: _FileFetch) -> PulledFile:
        pulled = await fetch.run()
        if job.mode is not None:
            await _settle(functools.partial(os.chmod, job.target, job.mode))
        if job.kind == "bundle":
            where, into = functools.partial(target_path, dest), target_path(dest, job.title).parent
            try:
                await _settle(functools.partial(unpack_bundle, job.target, where, overwrite))
            except OSError as exc:
                raise write_failed(exc, exc.filename or into) from exc
            return PulledFile(into, pulled.size, pulled.digest, "bundle", fetched=pulled.fetched)
        if job.kind != "folder":
            return pulled
        final = dest.joinpath(*safe_parts(job.title))
        try:
            await _settle(functools.partial(_unpack, job.target, job.title, dest, job.tar_digest))
        except WriteFailed:
            raise  # the disk refused (full): the archive stays, and a new try unpacks it
        except HoistError:
            # The archive matched its digest but can't be unpacked safely: it never will be.
            await _settle(functools.partial(job.target.unlink, missing_ok=True))
            raise
        except OSError as exc:
            raise write_failed(exc, final) from exc
        try:
            await _settle(functools.partial(job.target.unlink, missing_ok=True))
        except OSError as exc:
            raise SourceError(f"can't unpack the folder {final}: {exc.strerror or exc}") from exc
        return PulledFile(final, pulled.size, pulled.digest, "folder", fetched=pulled.fetched)

    calls = [functools.partial(one, job, fetch) for job, fetch in fetches]
    result.files = kept + await gather_bounded(calls, max(1, parallel))
    if layout is not None:
        result.files.extend(await layout.write(data.data, data.media_type, data.digest))
    return result


async def _files_there(jobs: list[_Job]) -> dict[Path, _Cursor]:
    """Check the files already where an artifact's files go, before anything is written.

    Returns those holding exactly the artifact's bytes (kept as they are, not hashed again).

    Raises:
        ReplaceRefused: others are there (other bytes, a link, a pipe...): the user's own.
    """
    same: dict[Path, _Cursor] = {}
    refused: list[Path] = []
    for job in jobs:
        if job.kind == "folder" or not os.path.lexists(job.target):
            continue
        size = sum(p.size for p in job.parts)
        target = job.target
        if target.is_symlink() or not target.is_file() or target.stat().st_size != size:
            refused.append(target)
            continue
        cursor = await _scan_stoppable(target, job.parts, size)
        if cursor.done and (not job.whole_digest or _cursor_digest(cursor) == job.whole_digest):
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
    dest: Path, jobs: list[_Job], keep: set[str]
) -> tuple[list[_Job], list[PulledFile]]:
    """Split off folder layers an earlier run of this download already unpacked (unpacking
    is atomic: a folder there is whole)."""
    rest: list[_Job] = []
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


def _image_jobs(dest: Path, config: BlobInfo | None, layers: list[BlobInfo]) -> list[_Job]:
    """An image's config and layers as OCI-layout blobs (`blobs/sha256/<hex>`)."""
    jobs: list[_Job] = []
    seen: set[str] = set()
    for blob, kind in [(config, "config")] + [(layer, "layer") for layer in layers]:
        if blob is None or blob.digest in seen:
            continue
        seen.add(blob.digest)
        _check_digest(blob.digest, f"the {kind} {blob.digest}")
        algorithm, _, hexpart = blob.digest.partition(":")
        target = dest / "blobs" / algorithm / hexpart
        jobs.append(
            _Job(
                blob.digest, target, [_Part(blob.digest, blob.digest, blob.size)], blob.digest, kind
            )
        )
    return jobs


#: `index.json` entry annotation naming the entry's tag (what `skopeo ... oci:DIR:TAG` reads).
REF_NAME = "org.opencontainers.image.ref.name"
#: An existing `index.json` is read up to this size (a layout's index lists a few entries).
MAX_LAYOUT_INDEX = 4 * 1024 * 1024
OCI_LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass
class _Layout:
    """The OCI layout an image is pulled into: what `index.json` lists already (other images
    pulled there before are kept), and the entry the pulled image takes, named by its tag."""

    dest: Path
    ref_name: str | None
    entries: list[dict[str, Any]]
    replace_index: bool  # `index.json` is not an OCI index and the user allowed replacing it

    @classmethod
    def read(cls, dest: Path, manifest: bytes, ref_name: str | None, overwrite: bool) -> _Layout:
        """Check, before anything is written, that the layout files already in `dest` are a
        layout's (blocking).

        Raises:
            ReplaceRefused: `index.json`, `oci-layout` or `manifest.json` hold something else
                and `overwrite` is not set.
        """
        refused: list[Path] = []
        entries = _index_entries(dest / "index.json")
        if entries is None:
            refused.append(dest / "index.json")
        layout_file = dest / "oci-layout"
        if os.path.lexists(layout_file) and not _is_layout_marker(layout_file):
            refused.append(layout_file)
        beside = dest / "manifest.json"
        if os.path.lexists(beside):
            # Hoist writes the last pulled manifest there: one the index lists is its own.
            listed = {str(e.get("digest")) for e in entries or []}
            held = _small_file(beside)
            if held is None or (held != manifest and sha256_bytes(held) not in listed):
                refused.append(beside)
        if refused and not overwrite:
            raise ReplaceRefused(
                f"{', '.join(str(p) for p in refused)} would be replaced: not part of an OCI "
                "layout Hoist can add an image to",
                refused,
            )
        return cls(dest, ref_name, entries or [], entries is None)

    async def write(self, manifest: bytes, media_type: str, digest: str) -> list[PulledFile]:
        """`manifest.json`, and the manifest as a blob with `index.json` (merged) and
        `oci-layout` around it, so that the folder is an OCI layout other tools read."""
        dest = self.dest
        if not self.replace_index:  # read again: another pull may have added its entry since
            now = await _settle(functools.partial(_index_entries, dest / "index.json"))
            if now is not None:
                self.entries = now
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(manifest)}
        if self.ref_name:
            entry["annotations"] = {REF_NAME: self.ref_name}
        kept = [e for e in self.entries if not self._replaced_by(e, digest)]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*kept, entry]}
        algorithm, _, hexpart = digest.partition(":")
        files = {
            dest / "manifest.json": manifest,
            dest / "blobs" / algorithm / hexpart: manifest,
            dest / "index.json": json.dumps(index, separators=(",", ":")).encode(),
        }
        if not _is_layout_marker(dest / "oci-layout"):
            files[dest / "oci-layout"] = OCI_LAYOUT_FILE
        for path, body in files.items():
            try:
                await _settle(functools.partial(_replace_with, path, body))
            except OSError as exc:
                raise write_failed(exc, path) from exc
        return [PulledFile(dest / "manifest.json", len(manifest), digest, "manifest")]

    def _replaced_by(self, entry: dict[str, Any], digest: str) -> bool:
        """An entry of the same tag (the tag moved), or the same image without a tag."""
        annotations = entry.get("annotations")
        name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
        if self.ref_name:
            return name == self.ref_name
        return name is None and entry.get("digest") == digest


def _small_file(path: Path, limit: int = MAX_LAYOUT_INDEX) -> bytes | None:
    """A regular file's bytes when it is at most `limit` bytes, else None."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > limit:
        return None
    return path.read_bytes()


def _index_entries(path: Path) -> list[dict[str, Any]] | None:
    """The entries of the OCI index at `path` ([] when there is none), or None when what is
    there is not an OCI index."""
    if not os.path.lexists(path):
        return []
    data = _small_file(path)
    try:
        doc = json.loads(data) if data is not None else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        return None
    entries = doc.get("manifests")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return None
    return entries


def _is_layout_marker(path: Path) -> bool:
    data = _small_file(path, 4096)
    try:
        doc = json.loads(data) if data is not None else None
    except ValueError:
        return False
    return isinstance(doc, dict) and "imageLayoutVersion" in doc


def _replace_with(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(path)
    tmp.write_bytes(body)
    os.replace(tmp, path)


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
    _check_digest(digest, "the blob")
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
    parts = [_Part(filename, digest, size)]
    there = {} if overwrite else await _files_there([_Job(filename, target, parts, digest, "blob")])
    _make_dest(dest)
    fetch = _FileFetch(
        client, repository, target, parts, whole_digest=digest, kind="blob", on_event=on_event,
        transfer=transfer_id, retry=retry or RetryPolicy(), there=there.get(target),
    )  # fmt: skip
    fetch.pending()
    return await fetch.run()


# -- a download as a transfer of the queue ------------------------------------------------------

#: Seconds between two journal checkpoints of a running download (state changes: at once).
CHECKPOINT_INTERVAL = 2.0


class DownloadRun(JournaledRun):
    """Runs one download Transfer: `pull` into its folder, keeping the journal told.

    A download has no upload session to keep: what it holds is the `.partial` files, which
    `pull` continues from. So a pause stops at once (the bytes written so far are kept and
    re-hashed on resume), and the journal records each part's size and bytes on disk only so
    that a paused download shows where it stands before it runs again.

    Args:
        pause: set it to stop; `run` then raises TransferPaused.
    """

    def __init__(
        self,
        transfer: Transfer,
        client: RegistryClient,
        *,
        journal: TransferJournal | None = None,
        retry: RetryPolicy | None = None,
        throttle: Throttle | None = None,
        on_event: ProgressCallback | None = None,
        pause: asyncio.Event | None = None,
    ) -> None:
        if not transfer.is_download:
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
                transfer.target.repository,
                transfer.target.manifest_ref,
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
                tag=transfer.target.tag,
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
            transfer.error = exc.sentence()
            self._state(TransferState.FAILED, transfer.error)
            await self.save_final()
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


def discard_partial_files(transfer: Transfer) -> list[str]:
    """Remove what a cancelled download left: its `.partial` files and a folder's hidden
    archive (blocking). Finished files stay: they are complete and verified, and may be what
    the user came for. A `.partial` another download has locked is its own: left alone.

    Returns sentences for what could not be removed (the cancel goes on regardless).
    """
    problems = []
    for part in {(p.file, p.kind): p for p in transfer.parts}.values():
        file = Path(part.file)
        leftovers = [_partial(file)] + ([file] if part.kind in ("folder", "bundle") else [])
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
        if _try_lock(fd):
            path.unlink()
    finally:
        os.close(fd)


__all__ = [
    "DownloadRun",
    "PullResult",
    "PulledFile",
    "discard_partial_files",
    "pull",
    "pull_blob",
    "safe_parts",
    "target_path",
]


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
