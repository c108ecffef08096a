"""Digests, and the sequential hasher that lets a blob be hashed in the same pass as it is sent.

The registry verifies `sha256` over the whole blob, so every byte must be hashed once and in
order. A chunk that is sent again after a retry is read again from disk, but must not be hashed
again: `SequentialHasher` takes `(offset, data)` and only consumes bytes past what it has seen.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass

from hoist.core.errors import SourceError

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}\Z")
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#: Reads from disk go in blocks of this size: large enough that Python's per-call cost vanishes
#: next to hashing (about 1 ms a block at 1 GB/s), small enough that memory stays flat.
READ_BLOCK = 1024 * 1024


def is_digest(text: str) -> bool:
    return bool(_SHA256.match(text))


def short_digest(digest: str | None) -> str:
    """A digest as people read it in a list: its algorithm and first 12 hex digits
    (`sha256:0123456789ab`); "" for none."""
    if not digest:
        return ""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}:{hexpart[:12]}"


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class SequentialHasher:
    """sha256 over a byte stream fed in order, tolerant of repeated (re-sent) ranges.

    `position` is how many bytes have been hashed. `prefix_digest()` is the digest of those
    bytes without finishing the hash (hashlib's copy), which the journal keeps so that a resume
    in a new process can tell whether the file's prefix changed.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.position = 0

    def update(self, offset: int, data: bytes | memoryview) -> None:
        new = self._advance(offset, data)
        if new:
            self._hash.update(new)

    def _advance(self, offset: int, data: bytes | memoryview) -> memoryview:
        """Move the position past `data` (found at `offset`); return the part of it not seen
        before (empty when all of it was). Raises ValueError on a gap: the hash can't skip."""
        end = offset + len(data)
        if end <= self.position:
            return memoryview(b"")
        if offset > self.position:
            raise ValueError(f"hash gap: have {self.position} bytes, got data at {offset}")
        new = memoryview(data)[self.position - offset :]
        self.position = end
        return new

    def prefix_digest(self) -> str:
        return "sha256:" + self._hash.copy().hexdigest()

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class TrustedDigest(SequentialHasher):
    """Stands in for the hasher of a blob whose digest is already known (an image layout names
    it; the digest cache knew the file): it follows the position and hashes nothing. The
    registry hashes what it receives and refuses a commit whose digest doesn't match
    (DIGEST_INVALID), so the bytes are still checked once, without costing this machine's CPU
    (crane does the same)."""

    def __init__(self, digest: str) -> None:
        super().__init__()
        self._digest = digest

    def update(self, offset: int, data: bytes | memoryview) -> None:
        self._advance(offset, data)

    def prefix_digest(self) -> str:
        return ""  # none: a resume in a new process re-hashes the prefix the registry holds

    def digest(self) -> str:
        return self._digest


def hash_file_range(
    path: str | os.PathLike[str], offset: int, length: int, stop: threading.Event | None = None
) -> SequentialHasher:
    """Hash `length` bytes of a file from `offset` (blocking: call it in a worker thread).

    Used to re-hash the prefix of a blob the registry already holds when a transfer resumes in
    a new process (hashlib state can't be saved): about one second per GB of local disk.
    Setting `stop` ends it early (the hasher then covers less than `length`: discard it).
    """
    hasher = SequentialHasher()
    buf = bytearray(READ_BLOCK)
    view = memoryview(buf)
    done = 0
    with open(path, "rb", buffering=0) as f:
        f.seek(offset)
        while done < length:
            if stop is not None and stop.is_set():
                break
            n = f.readinto(view[: min(READ_BLOCK, length - done)])
            if not n:
                raise SourceError(f"{path} ended after {done} of {length} bytes")
            hasher.update(done, view[:n])
            done += n
    return hasher


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says of a blob."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    artifact_type: str | None = None
    platform: dict[str, object] | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out
