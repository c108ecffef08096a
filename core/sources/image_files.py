"""Reading an image's files in place: a layout folder's, or a tarball's members by byte range.

Hoist never extracts an image. Every blob is a byte range of a local file (a file under an OCI
layout's `blobs/`, or a member of a tarball found through `tarfile`'s `offset_data`). A layer
whose digest the source names (OCI layouts and archives) is left to the registry's check on
commit; every other blob (configs, a legacy archive's layers) is hashed and checked before a
plan is handed out. What the image formats share lives here: the containers that map a name
to its bytes, bounded reads, and the hashing pass. Everything here is blocking file work:
callers run it in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hoist.core.errors import SourceError
from hoist.core.oci.digest import READ_BLOCK
from hoist.core.sources.content import FileIdentity, FileRange
from hoist.core.sources.image import (
    MAX_MANIFEST_BYTES,
    ImagePlan,
    SourceKind,
    parse_platform,
)

OCI_LAYOUT_FILE = "oci-layout"
OCI_INDEX_FILE = "index.json"
DOCKER_MANIFEST_FILE = "manifest.json"
DOCKER_REPOSITORIES_FILE = "repositories"

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: Symlink hops followed inside a tarball before giving up.
_MAX_LINK_HOPS = 16
#: Detection reads this many tar headers before deciding a marker-less tar is not an image.
_DETECT_MEMBER_LIMIT = 20000

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# Tarballs: read their headers once


@dataclass
class TarScan:
    members: list[tarfile.TarInfo]
    names: dict[str, tarfile.TarInfo]
    prefix: str


def scan_tar(path: Path) -> TarScan | None:
    """Read a tar's headers; None when it is unreadable or clearly not an image."""
    members: list[tarfile.TarInfo] = []
    names: dict[str, tarfile.TarInfo] = {}
    marker = False
    try:
        with tarfile.open(path, "r:") as tf:
            while (ti := tf.next()) is not None:
                members.append(ti)
                name = lenient_name(ti.name)
                if name is None:
                    continue
                names.setdefault(name, ti)
                base = name.rsplit("/", 1)[-1]
                if base in (OCI_LAYOUT_FILE, OCI_INDEX_FILE, DOCKER_MANIFEST_FILE):
                    marker = True
                if not marker and len(members) > _DETECT_MEMBER_LIMIT:
                    return None
    except (tarfile.TarError, OSError, EOFError, UnicodeError):
        return None
    prefix = ""
    if OCI_LAYOUT_FILE not in names and DOCKER_MANIFEST_FILE not in names:
        # A layout tarred with its folder (`tar cf x.tar myimage/`): accept one top folder.
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) == 1:
            top = next(iter(tops))
            if f"{top}/{OCI_LAYOUT_FILE}" in names and f"{top}/{OCI_INDEX_FILE}" in names:
                prefix = top + "/"
    return TarScan(members, names, prefix)


def tar_holds_layout(scan: TarScan) -> bool:
    """Whether a tarball holds an OCI image layout (at its root or in its one top folder)."""
    p, names = scan.prefix, scan.names
    return (
        p + OCI_LAYOUT_FILE in names
        and p + OCI_INDEX_FILE in names
        and any(n == p + "blobs" or n.startswith(p + "blobs/") for n in names)
    )


def lenient_name(raw: str) -> str | None:
    """A member name without `./`, or None for the root or an unsafe name (detection only)."""
    try:
        return normalize_name(raw)
    except SourceError:
        return None


def normalize_name(raw: str) -> str | None:
    """The member name as a clean relative path; SourceError for an absolute or `..` name."""
    if raw.startswith("/") or re.match(r"[A-Za-z]:[\\/]", raw):
        raise SourceError(f"the archive holds an absolute path {raw!r}")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SourceError(f"the archive holds a path that climbs out of it: {raw!r}")
    return "/".join(parts) or None


# --------------------------------------------------------------------------------------------
# Containers: where a name's bytes live


class Container(Protocol):
    label: Path

    def blob(self, name: str) -> FileRange | None:
        """The byte range of a file in the image, None when absent, SourceError when unusable."""
        ...


class TarContainer:
    """An uncompressed tarball indexed by member name; members are never extracted."""

    def __init__(self, path: Path, members: list[tarfile.TarInfo], prefix: str) -> None:
        self.label = path
        self._size = path.stat().st_size
        self._entries: dict[str, tarfile.TarInfo] = {}
        for ti in members:
            try:
                name = normalize_name(ti.name)
            except SourceError as exc:
                raise SourceError(f"{path}: {exc.message}; refusing a tampered archive") from exc
            if name is None:
                continue
            if prefix:
                if not name.startswith(prefix):
                    continue
                name = name[len(prefix) :]
            prev = self._entries.get(name)
            if prev is not None and not self._same(prev, ti):
                raise SourceError(
                    f"{path} holds {name!r} twice with different content; "
                    "it is ambiguous which one is meant"
                )
            self._entries[name] = ti
        self._prefix = prefix

    def _same(self, a: tarfile.TarInfo, b: tarfile.TarInfo) -> bool:
        if a.type != b.type or a.linkname != b.linkname:
            return a.isdir() and b.isdir()
        if not a.isreg():
            return True
        if a.size != b.size:
            return False
        return _hash_range(self.label, a.offset_data, a.size) == _hash_range(
            self.label, b.offset_data, b.size
        )

    def blob(self, name: str) -> FileRange | None:
        original = name
        for _ in range(_MAX_LINK_HOPS):
            ti = self._entries.get(name)
            if ti is None:
                return None
            if ti.issym() or ti.islnk():
                name = self._link_target(name, ti, original)
                continue
            if not ti.isreg():
                raise SourceError(
                    f"{self.label}: {original!r} is not a regular file in the archive"
                )
            if ti.issparse():
                raise SourceError(
                    f"{self.label}: {original!r} is stored as a sparse file, so its bytes are not "
                    "one range of the archive",
                    hint="Re-create the archive without --sparse",
                )
            if ti.offset_data + ti.size > self._size:
                raise SourceError(f"{self.label} is truncated: {original!r} runs past its end")
            return FileRange(self.label, ti.offset_data, ti.size)
        raise SourceError(f"{self.label}: {original!r} is a chain of links too long to follow")

    def _link_target(self, name: str, ti: tarfile.TarInfo, original: str) -> str:
        """Where an in-archive link points (docker save links repeated layers this way)."""
        link = ti.linkname
        outside = SourceError(
            f"{self.label}: {original!r} links to {link!r}, outside the archive; refusing it"
        )
        if link.startswith("/"):
            raise outside
        # A symlink is relative to its own folder; a hard link names a member from the root.
        parts = name.split("/")[:-1] if ti.issym() else []
        for part in link.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise outside
                parts.pop()
            else:
                parts.append(part)
        target = "/".join(parts)
        if ti.islnk() and self._prefix:
            if not target.startswith(self._prefix):
                raise outside
            target = target[len(self._prefix) :]
        return target


# --------------------------------------------------------------------------------------------
# Reading helpers


def pread(path: Path, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks: list[bytes] = []
        done = 0
        while done < length:
            data = os.pread(fd, min(length - done, READ_BLOCK * 8), offset + done)
            if not data:
                raise SourceError(f"{path} ended early (truncated?)")
            chunks.append(data)
            done += len(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_range(rng: FileRange) -> bytes:
    try:
        return pread(rng.path, rng.offset, rng.length)
    except OSError as exc:
        raise SourceError(f"can't read {rng.path}: {exc.strerror}") from exc


def _read_file(c: Container, name: str, limit: int, what: str) -> bytes:
    rng = c.blob(name)
    if rng is None:
        raise SourceError(f"{c.label} has no {name}; {what} is missing")
    if rng.length > limit:
        raise SourceError(f"{c.label}: {name} is {rng.length} bytes, too large to be {what}")
    return read_range(rng)


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise SourceError(f"{what} is not valid JSON ({exc})") from exc


def read_json(c: Container, name: str, limit: int) -> Any:
    return parse_json(_read_file(c, name, limit, name), f"{c.label}: {name}")


def _hash_range(path: Path, offset: int, length: int) -> str:
    h = hashlib.sha256()
    for block in _blocks(FileRange(path, offset, length)):
        h.update(block)
    return "sha256:" + h.hexdigest()


def _blocks(rng: FileRange) -> Iterator[bytes]:
    try:
        with open(rng.path, "rb", buffering=0) as f:
            f.seek(rng.offset)
            left = rng.length
            while left:
                data = f.read(min(READ_BLOCK, left))
                if not data:
                    raise SourceError(f"{rng.path} ended early: is it truncated?")
                left -= len(data)
                yield data
    except OSError as exc:
        raise SourceError(f"can't read {rng.path}: {exc.strerror}") from exc


def blob_name(digest: str) -> str:
    algorithm, hexpart = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexpart}"


# --------------------------------------------------------------------------------------------
# Hashing: the blobs a planner queues are verified before the plan is handed out


@dataclass
class HashJob:
    """Hash one range; with `gunzip`, also hash its decompressed bytes (a layer's diff_id)."""

    source: FileRange
    label: str
    gunzip: bool = False
    digest: str = ""
    diff_id: str = ""
    identity: FileIdentity | None = None


def run_hash_jobs(jobs: list[HashJob], progress: Progress | None) -> None:
    total = sum(j.source.length for j in jobs)
    done = 0
    if progress is not None:
        progress(0, total)
    for job in jobs:
        before = FileIdentity.of(job.source.path)
        h = hashlib.sha256()
        u = _Gunzip(job.label) if job.gunzip else None
        for block in _blocks(job.source):
            h.update(block)
            if u is not None:
                u.feed(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
        if FileIdentity.of(job.source.path) != before:
            raise SourceError(f"{job.source.path} changed while it was being read")
        job.digest = "sha256:" + h.hexdigest()
        job.identity = before
        if u is not None:
            job.diff_id = u.finish()


class _Gunzip:
    """sha256 of gzip-decompressed bytes, fed in blocks, in bounded memory."""

    _OUT = 4 * 1024 * 1024

    def __init__(self, label: str) -> None:
        self._label = label
        self._hash = hashlib.sha256()
        self._d = zlib.decompressobj(wbits=31)
        self._trailing = False

    def feed(self, data: bytes) -> None:
        try:
            while data:
                if self._trailing:
                    if data.strip(b"\0"):
                        # Another gzip member follows (multi-member stream).
                        self._d = zlib.decompressobj(wbits=31)
                        self._trailing = False
                    else:
                        return
                out = self._d.decompress(data, self._OUT)
                self._hash.update(out)
                data = self._d.unconsumed_tail
                if self._d.eof:
                    data = self._d.unused_data + data
                    self._trailing = True
        except zlib.error as exc:
            raise SourceError(f"{self._label} is not valid gzip ({exc})") from exc

    def finish(self) -> str:
        if not self._d.eof:
            raise SourceError(f"{self._label} is a truncated gzip stream")
        return "sha256:" + self._hash.hexdigest()


# --------------------------------------------------------------------------------------------
# Planning: every format's planner is driven the same way


class Planner(Protocol):
    """Reads one image of a source into a plan: `plan` reads the structure and queues the
    hashing `jobs`; `finish` checks their digests and completes the plan."""

    jobs: list[HashJob]

    def plan(self, tag: str | None, platform: tuple[str, str, str] | None) -> ImagePlan: ...

    def finish(self, plan: ImagePlan) -> None: ...


def check_pick(tag: str | None, platform: str | None) -> tuple[str, str, str] | None:
    """The platform asked for, parsed; SourceError for an empty tag or a malformed platform
    (before the source's files are read)."""
    want = parse_platform(platform) if platform else None
    if tag is not None and not tag.strip():
        raise SourceError("the tag to pick is empty")
    return want


def run_planner(
    planner: Planner,
    kind: SourceKind,
    source: Path,
    tag: str | None,
    platform: tuple[str, str, str] | None,
    progress: Progress | None,
) -> ImagePlan:
    """Plan, hash every blob (`progress(done, total)` as bytes are hashed), verify, finish."""
    plan = planner.plan(tag, platform)
    plan.kind = kind
    plan.source = source
    run_hash_jobs(planner.jobs, progress)
    planner.finish(plan)
    return plan


def docker_items(c: Container) -> list[dict[str, Any]]:
    """`docker save`'s manifest.json: one item per image (Config, RepoTags, Layers)."""
    doc = read_json(c, DOCKER_MANIFEST_FILE, MAX_MANIFEST_BYTES)
    if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
        raise SourceError(f"{c.label}: manifest.json is not a list of images")
    return doc
