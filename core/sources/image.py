"""Container image sources read into a push plan: what to upload, from where, in which order.

Hoist never extracts an image. Every blob is a byte range of a local file (a file under an OCI
layout's `blobs/`, or a member of a tarball found through `tarfile`'s `offset_data`), and every
manifest is kept as the exact bytes found in the source, so its digest cannot change on the way.

Sources are recognised by content, not by name:

* an OCI image layout folder (`oci-layout`, `index.json`, `blobs/`);
* the same layout in an uncompressed tar (`oci-archive`);
* a `docker save` tarball: the legacy form (`manifest.json`, `repositories`, `<id>/layer.tar`)
  for which a Docker schema 2 manifest is generated, and the form Docker 25+ writes, which holds
  an OCI layout as well and is read as one.

A gzip-compressed archive is recognised only to be refused: its layers are not byte ranges of
the file. Everything here is blocking file work with no network: run `open_image` in a worker
thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import bz2
import contextlib
import enum
import hashlib
import json
import lzma
import os
import re
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from hoist.core.errors import SourceError
from hoist.core.oci.annotations import REF_NAME
from hoist.core.oci.digest import READ_BLOCK, Descriptor, is_digest, sha256_bytes
from hoist.core.oci.manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1_TYPES,
    IMAGE_CONFIG_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)
from hoist.core.oci.manifest import INDEX_TYPES as INDEX_MEDIA_TYPES
from hoist.core.oci.manifest import MANIFEST_TYPES as MANIFEST_MEDIA_TYPES
from hoist.core.sources.content import FileIdentity, FileRange

OCI_LAYOUT_FILE = "oci-layout"
OCI_INDEX_FILE = "index.json"
DOCKER_MANIFEST_FILE = "manifest.json"
DOCKER_REPOSITORIES_FILE = "repositories"


#: distribution refuses manifests over 4 MiB, so a larger one is not worth reading.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
#: Image configs carry the build history; a few MB at most in practice.
MAX_CONFIG_BYTES = 64 * 1024 * 1024
#: Index nesting deeper than this is a malformed (or hostile) source.
_MAX_DEPTH = 8
#: Symlink hops followed inside a tarball before giving up.
_MAX_LINK_HOPS = 16
#: Detection reads this many tar headers before deciding a marker-less tar is not an image.
_DETECT_MEMBER_LIMIT = 20000
#: Detection of a compressed archive decompresses at most this much.
_DETECT_DECOMPRESS_LIMIT = 4 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_LEGACY_LAYER = re.compile(r"[0-9a-f]{64}/layer\.tar\Z")
#: Names that only an image tarball holds: what a compressed file is judged by.
_IMAGE_MEMBER = re.compile(r"(?:oci-layout|blobs/sha256/[0-9a-f]{64}|[0-9a-f]{64}/layer\.tar)\Z")

Progress = Callable[[int, int], None]


class SourceKind(enum.Enum):
    """What an image source is; the value is the skopeo transport name where there is one."""

    OCI_LAYOUT = "oci"
    OCI_ARCHIVE = "oci-archive"
    DOCKER_ARCHIVE = "docker-archive"
    #: A `docker save` from Docker 25+: an OCI layout plus the legacy manifest.json.
    DOCKER_OCI_ARCHIVE = "docker-archive-oci"
    #: A gzip/bzip2/xz-compressed image tarball: recognised so it can be refused clearly.
    COMPRESSED_ARCHIVE = "compressed-archive"


@dataclass(frozen=True)
class PlanBlob:
    """A blob to upload (a layer or a config): its descriptor and where its bytes are.

    `identity` is the source file as it was when the blob was verified, so a resumed transfer
    can tell the file was replaced (`FileRange.check_unchanged`).
    """

    descriptor: Descriptor
    source: FileRange | bytes
    identity: FileIdentity | None = None


@dataclass(frozen=True)
class PlanManifest:
    """A manifest or index to PUT, byte for byte: `data` is exactly what hashes to `digest`.

    `tag` is set on the top manifest only: the tag the source gives the chosen image (its tag
    part alone), which the pusher uses when the destination names none.
    """

    media_type: str
    digest: str
    data: bytes
    tag: str | None = None
    platform: dict[str, object] | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class ImagePlan:
    """Everything needed to push one image, with no need to read the source's structure again.

    `blobs` (deduplicated by digest) go first, in any order; then `manifests` in list order:
    children before the index that lists them, the top manifest last. `tags` are all the tags
    the source holds; `platforms` are those the chosen image offers ("linux/arm64"), for the
    GUI's platform picker, even when a platform was picked.
    """

    kind: SourceKind
    source: Path
    blobs: list[PlanBlob] = field(default_factory=list)
    manifests: list[PlanManifest] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)

    @property
    def top(self) -> PlanManifest:
        """The manifest the tag points to: the last one pushed."""
        return self.manifests[-1]

    @property
    def blob_bytes(self) -> int:
        return sum(b.descriptor.size for b in self.blobs)


@dataclass(frozen=True)
class ImageEntry:
    """One image a source holds, as listed without hashing any layer (for pickers).

    `digest` is None for a legacy docker-archive image, whose manifest is generated.
    """

    tags: list[str]
    digest: str | None
    media_type: str
    platforms: list[str]


# --------------------------------------------------------------------------------------------
# Public entry points


def detect_source(path: str | os.PathLike[str]) -> SourceKind | None:
    """What kind of image `path` holds, judged by content; None when it is not an image.

    Cheap: a folder is checked for three names, a tar's headers are read (not its data), and a
    compressed file is decompressed only far enough to see its first few tar headers.
    """
    return _detect(Path(path))[0]


def open_image(
    path: str | os.PathLike[str],
    *,
    tag: str | None = None,
    platform: str | None = None,
    skopeo_compatible: bool = False,
    progress: Progress | None = None,
) -> ImagePlan:
    """Read an image source into a verified push plan (blocking: call it in a worker thread).

    `tag` picks an image when the source holds several (an `org.opencontainers.image.ref.name`
    annotation, or a docker `RepoTags` entry: its tag part or the whole `name:tag`). `platform`
    ("linux/arm64", "linux/arm/v7") narrows a multi-platform index to the one manifest for that
    platform; without it the whole index is pushed, every child before its parent.

    Every blob is hashed and checked against its digest and size before anything is pushed, so
    a corrupted source fails here and not half-way through an upload. `progress(done, total)` is
    called as bytes are hashed; it may raise to abort.

    `skopeo_compatible` only matters for a legacy docker-archive: skopeo labels every layer of
    the manifest it generates `...rootfs.diff.tar.gzip`, even uncompressed ones (docker,
    containerd and podman sniff the compression, so it works). With it, Hoist labels them the
    same way and its manifest is byte-identical to the one `skopeo copy --preserve-digests
    docker-archive:FILE docker://...` pushes. Without it, an uncompressed layer is labelled
    `...rootfs.diff.tar`, which is what it is.
    """
    source = Path(path).absolute()
    kind, scan = _detect(source)
    if kind is None:
        raise SourceError(
            f"{source} is not a container image: it is neither an OCI image layout "
            "(oci-layout, index.json, blobs/) nor a `docker save` archive",
            hint="Push it as a plain file instead",
        )
    if kind is SourceKind.COMPRESSED_ARCHIVE:
        raise SourceError(
            f"{source} is a compressed image archive; Hoist pushes each layer as a byte range "
            "of the file and can't address layers inside a compressed stream",
            hint=f"Decompress it first (e.g. `gunzip -k {source.name}`) and push the .tar",
        )
    want = _parse_platform(platform) if platform else None
    if tag is not None and not tag.strip():
        raise SourceError("the tag to pick is empty")
    container = _open_container(source, kind, scan)
    if _reads_docker_manifest(kind, container):
        planner: _Planner = _DockerPlanner(container, skopeo_compatible=skopeo_compatible)
    else:
        planner = _OciPlanner(container, docker_tags=kind is SourceKind.DOCKER_OCI_ARCHIVE)
    plan = planner.plan(tag, want)
    plan.kind = kind
    plan.source = source
    _run_hash_jobs(planner.jobs, progress)
    planner.finish(plan)
    return plan


def list_images(path: str | os.PathLike[str]) -> list[ImageEntry]:
    """The images a source holds, with their tags and platforms, without hashing layers."""
    source = Path(path).absolute()
    kind, scan = _detect(source)
    if kind is None or kind is SourceKind.COMPRESSED_ARCHIVE:
        return []
    container = _open_container(source, kind, scan)
    if _reads_docker_manifest(kind, container):
        return _DockerPlanner(container, skopeo_compatible=False).list_images()
    return _OciPlanner(container, docker_tags=kind is SourceKind.DOCKER_OCI_ARCHIVE).list_images()


# --------------------------------------------------------------------------------------------
# Detection


def _open_container(source: Path, kind: SourceKind, scan: _TarScan | None) -> _Container:
    """The layout's files: a folder, or members of a tar addressed by byte range."""
    if kind is SourceKind.OCI_LAYOUT:
        return _DirContainer(source)
    assert scan is not None
    return _TarContainer(source, scan.members, scan.prefix)


def _reads_docker_manifest(kind: SourceKind, container: _Container) -> bool:
    """Legacy `docker save` archives, and Docker 25+ ones saved untagged (an empty index.json),
    are read from manifest.json; everything else from the OCI index."""
    return kind is SourceKind.DOCKER_ARCHIVE or (
        kind is SourceKind.DOCKER_OCI_ARCHIVE and not _index_has_entries(container)
    )


@dataclass
class _TarScan:
    members: list[tarfile.TarInfo]
    names: dict[str, tarfile.TarInfo]
    prefix: str


def _detect(path: Path) -> tuple[SourceKind | None, _TarScan | None]:
    try:
        st = path.stat()
    except OSError as exc:
        raise SourceError(f"can't read {path}: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        if (
            (path / OCI_LAYOUT_FILE).is_file()
            and (path / OCI_INDEX_FILE).is_file()
            and (path / "blobs").is_dir()
        ):
            return SourceKind.OCI_LAYOUT, None
        return None, None
    if not stat.S_ISREG(st.st_mode):
        return None, None
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise SourceError(f"can't read {path}: {exc.strerror}") from exc
    if head.startswith((_GZIP_MAGIC, _BZIP2_MAGIC, _XZ_MAGIC)):
        return (SourceKind.COMPRESSED_ARCHIVE if _compressed_image(path, head) else None), None
    if len(head) < 512:
        return None, None
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.TarError:
        return None, None
    scan = _scan_tar(path)
    if scan is None:
        return None, None
    kind = _classify(path, scan)
    return kind, (scan if kind else None)


def _scan_tar(path: Path) -> _TarScan | None:
    """Read a tar's headers; None when it is unreadable or clearly not an image."""
    members: list[tarfile.TarInfo] = []
    names: dict[str, tarfile.TarInfo] = {}
    marker = False
    try:
        with tarfile.open(path, "r:") as tf:
            while (ti := tf.next()) is not None:
                members.append(ti)
                name = _lenient_name(ti.name)
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
    return _TarScan(members, names, prefix)


def _classify(path: Path, scan: _TarScan) -> SourceKind | None:
    p = scan.prefix
    names = scan.names
    oci = (
        p + OCI_LAYOUT_FILE in names
        and p + OCI_INDEX_FILE in names
        and any(n == p + "blobs" or n.startswith(p + "blobs/") for n in names)
    )
    docker = False
    info = names.get(p + DOCKER_MANIFEST_FILE)
    if info is not None:
        doc: Any = None
        if info.isreg() and not info.issparse() and info.size <= MAX_MANIFEST_BYTES:
            with contextlib.suppress(ValueError, OSError, SourceError):
                doc = json.loads(_pread(path, info.offset_data, info.size))
        docker = (
            isinstance(doc, list)
            and bool(doc)
            and all(isinstance(d, dict) and "Layers" in d and "Config" in d for d in doc)
        )
        if not docker and doc is None:
            # An unreadable manifest.json beside docker's other files is a broken docker save,
            # to be reported as such rather than pushed as a plain file.
            docker = p + DOCKER_REPOSITORIES_FILE in names and any(
                _LEGACY_LAYER.match(n) for n in names
            )
    if oci:
        return SourceKind.DOCKER_OCI_ARCHIVE if docker else SourceKind.OCI_ARCHIVE
    return SourceKind.DOCKER_ARCHIVE if docker else None


class _Budget(Exception):
    pass


class _LimitedReader:
    """A file-like view of a decompressing stream that gives up after `limit` bytes."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self._raw = raw
        self._left = limit

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            raise _Budget
        n = self._left if n < 0 else min(n, self._left)
        data = self._raw.read(n)
        self._left -= len(data)
        return data


def _compressed_image(path: Path, head: bytes) -> bool:
    """Whether a compressed file holds an image tarball, from its first tar headers only."""
    opener: Callable[[Path], BinaryIO]
    if head.startswith(_GZIP_MAGIC):
        import gzip

        opener = gzip.open  # type: ignore[assignment]
    elif head.startswith(_BZIP2_MAGIC):
        opener = bz2.open  # type: ignore[assignment]
    else:
        opener = lzma.open  # type: ignore[assignment]
    seen: list[str] = []
    try:
        with opener(path) as raw:
            limited = _LimitedReader(raw, _DETECT_DECOMPRESS_LIMIT)
            with tarfile.open(fileobj=limited, mode="r|") as tf:  # type: ignore[call-overload]
                for ti in tf:
                    name = _lenient_name(ti.name)
                    if name is not None:
                        seen.append(name)
                    if len(seen) >= 64:
                        break
    except (_Budget, tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
        pass
    if not seen:
        return False
    # The layout may sit in one top folder (`tar czf x.tgz myimage/`).
    candidates = {n.split("/", 1)[1] for n in seen if "/" in n} | set(seen)
    return any(_IMAGE_MEMBER.match(n) for n in candidates)


def _lenient_name(raw: str) -> str | None:
    """A member name without `./`, or None for the root or an unsafe name (detection only)."""
    try:
        return _normalize_name(raw)
    except SourceError:
        return None


def _normalize_name(raw: str) -> str | None:
    """The member name as a clean relative path; SourceError for an absolute or `..` name."""
    if raw.startswith("/") or re.match(r"[A-Za-z]:[\\/]", raw):
        raise SourceError(f"the archive holds an absolute path {raw!r}")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SourceError(f"the archive holds a path that climbs out of it: {raw!r}")
    return "/".join(parts) or None


# --------------------------------------------------------------------------------------------
# Containers: where a name's bytes live


class _Container(Protocol):
    label: Path

    def blob(self, name: str) -> FileRange | None:
        """The byte range of a file in the image, None when absent, SourceError when unusable."""
        ...


class _DirContainer:
    """An OCI layout folder. Blob files must be regular files: a symlink could point anywhere."""

    def __init__(self, root: Path) -> None:
        self.label = root

    def blob(self, name: str) -> FileRange | None:
        path = self.label / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"can't read {path}: {exc.strerror}") from exc
        if stat.S_ISLNK(st.st_mode):
            if name.startswith("blobs/"):
                raise SourceError(
                    f"{path} is a symbolic link; Hoist only pushes blobs stored in the layout "
                    "itself, so a link can't make it upload a file from elsewhere",
                    hint="Replace the link with a copy of the file",
                )
            st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{path} is not a regular file")
        return FileRange(path, 0, st.st_size)


class _TarContainer:
    """An uncompressed tarball indexed by member name; members are never extracted."""

    def __init__(self, path: Path, members: list[tarfile.TarInfo], prefix: str) -> None:
        self.label = path
        self._size = path.stat().st_size
        self._entries: dict[str, tarfile.TarInfo] = {}
        for ti in members:
            try:
                name = _normalize_name(ti.name)
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


def _index_has_entries(c: _Container) -> bool:
    """Whether a Docker 25+ archive's index.json lists any image (untagged saves list none)."""
    doc = _read_json(c, OCI_INDEX_FILE, MAX_MANIFEST_BYTES)
    return isinstance(doc, dict) and bool(doc.get("manifests"))


# --------------------------------------------------------------------------------------------
# Reading helpers


def _pread(path: Path, offset: int, length: int) -> bytes:
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


def _read_range(rng: FileRange) -> bytes:
    try:
        return _pread(rng.path, rng.offset, rng.length)
    except OSError as exc:
        raise SourceError(f"can't read {rng.path}: {exc.strerror}") from exc


def _read_file(c: _Container, name: str, limit: int, what: str) -> bytes:
    rng = c.blob(name)
    if rng is None:
        raise SourceError(f"{c.label} has no {name}; {what} is missing")
    if rng.length > limit:
        raise SourceError(f"{c.label}: {name} is {rng.length} bytes, too large to be {what}")
    return _read_range(rng)


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise SourceError(f"{what} is not valid JSON ({exc})") from exc


def _read_json(c: _Container, name: str, limit: int) -> Any:
    return _parse_json(_read_file(c, name, limit, name), f"{c.label}: {name}")


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


def _blob_name(digest: str) -> str:
    algorithm, hexpart = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexpart}"


# --------------------------------------------------------------------------------------------
# Hashing: every blob is verified before the plan is handed out


@dataclass
class _HashJob:
    """Hash one range; with `gunzip`, also hash its decompressed bytes (a layer's diff_id)."""

    source: FileRange
    label: str
    gunzip: bool = False
    digest: str = ""
    diff_id: str = ""
    identity: FileIdentity | None = None


def _run_hash_jobs(jobs: list[_HashJob], progress: Progress | None) -> None:
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
# Descriptors, platforms and tags


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise SourceError(f"{where}: a descriptor is not a JSON object")
    digest = obj.get("digest")
    size = obj.get("size")
    media_type = obj.get("mediaType", "")
    if not isinstance(digest, str) or not digest:
        raise SourceError(f"{where}: a descriptor has no digest")
    if not is_digest(digest):
        if digest.startswith("sha256:"):
            raise SourceError(f"{where}: {digest!r} is not a valid sha256 digest")
        raise SourceError(
            f"{where}: {digest.split(':')[0]!r} digests are not supported, only sha256"
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise SourceError(f"{where}: descriptor {digest} has no valid size")
    if not isinstance(media_type, str):
        raise SourceError(f"{where}: descriptor {digest} has a non-string mediaType")
    annotations = obj.get("annotations")
    if annotations is not None and not (
        isinstance(annotations, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
    ):
        raise SourceError(f"{where}: descriptor {digest} has malformed annotations")
    platform = obj.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise SourceError(f"{where}: descriptor {digest} has a malformed platform")
    artifact_type = obj.get("artifactType")
    return Descriptor(
        media_type,
        digest,
        size,
        annotations=annotations or None,
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        platform=platform or None,
    )


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


def _normal_platform(os_name: str, arch: str, variant: str) -> tuple[str, str, str]:
    """As containerd normalizes: aliases folded, arm64's v8 and arm's v7 are the defaults."""
    arch = _ARCH_ALIASES.get(arch.lower(), arch.lower())
    variant = variant.lower()
    if arch == "arm64" and variant in ("", "v8"):
        variant = ""
    elif arch == "arm" and variant in ("", "v7", "7"):
        variant = "v7"
    return os_name.lower(), arch, variant


def _parse_platform(text: str) -> tuple[str, str, str]:
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SourceError(
            f"{text!r} is not a platform",
            hint="Write it as os/architecture[/variant], e.g. linux/arm64",
        )
    return _normal_platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _platform_key(platform: dict[str, object] | None) -> tuple[str, str, str] | None:
    if not platform:
        return None
    os_name, arch = platform.get("os"), platform.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        return None
    variant = platform.get("variant")
    return _normal_platform(os_name, arch, variant if isinstance(variant, str) else "")


def platform_string(platform: dict[str, object] | None) -> str | None:
    """ "linux/arm64" or "linux/arm/v7" for an OCI platform object; None when it has none."""
    if not platform:
        return None
    os_name, arch = platform.get("os"), platform.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        return None
    variant = platform.get("variant")
    return (
        f"{os_name}/{arch}/{variant}"
        if isinstance(variant, str) and variant
        else f"{os_name}/{arch}"
    )


def _is_unknown_platform(platform: dict[str, object] | None) -> bool:
    """buildkit's attestation manifests carry unknown/unknown: not a platform to offer."""
    return bool(platform) and platform.get("os") == "unknown"  # type: ignore[union-attr]


def _config_platform(config: Any) -> dict[str, object] | None:
    if not isinstance(config, dict):
        return None
    os_name, arch = config.get("os"), config.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
        return None
    out: dict[str, object] = {"architecture": arch, "os": os_name}
    variant = config.get("variant")
    if isinstance(variant, str) and variant:
        out["variant"] = variant
    return out


def _tag_part(name: str) -> str:
    """ "v1" for "example/app:v1" or "localhost:5000/app:v1"; the name itself when it has none."""
    name = name.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else name


def _tag_matches(wanted: str, name: str) -> bool:
    return wanted == name or wanted == _tag_part(name)


def _push_tag(name: str | None) -> str | None:
    """The tag to push under, from a source name; None when it is not a valid tag."""
    if name is None:
        return None
    part = _tag_part(name)
    return part if _TAG.match(part) else None


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


# --------------------------------------------------------------------------------------------
# Planners


class _Planner(Protocol):
    jobs: list[_HashJob]

    def plan(self, tag: str | None, platform: tuple[str, str, str] | None) -> ImagePlan: ...

    def finish(self, plan: ImagePlan) -> None: ...


def _choose(
    source: Path,
    images: list[tuple[str, list[str], str]],
    tag: str | None,
) -> tuple[int, str | None]:
    """Pick one of `images` ((key, names, label)): by tag, or the only one.

    Returns its position and the name it was picked by (or its first name). Entries sharing a
    key are one image listed under several names.
    """
    keys = _dedupe(k for k, _, _ in images)
    all_names = _dedupe(n for _, names, _ in images for n in names)
    if tag is None:
        if not keys:
            raise SourceError(f"{source} holds no image")
        if len(keys) > 1:
            listed = "; ".join(
                f"{label} ({', '.join(_dedupe(n for k2, ns, _ in images if k2 == k for n in ns))})"
                if any(ns for k2, ns, _ in images if k2 == k)
                else f"{label} (untagged)"
                for k, label in _dedupe_pairs((k, lb) for k, _, lb in images)
            )
            raise SourceError(
                f"{source} holds {len(keys)} images; choose one by its tag: {listed}",
                hint="Pick the image to push by its tag",
            )
        names = [n for _, ns, _ in images for n in ns]
        return 0, names[0] if names else None
    hits = [(i, n) for i, (_, names, _) in enumerate(images) for n in names if _tag_matches(tag, n)]
    hit_keys = _dedupe(images[i][0] for i, _ in hits)
    if not hit_keys:
        there = ", ".join(all_names) if all_names else "none"
        raise SourceError(f"{source} has no image tagged {tag!r}; tags there: {there}")
    if len(hit_keys) > 1:
        listed = ", ".join(_dedupe(n for _, n in hits))
        raise SourceError(
            f"the tag {tag!r} names {len(hit_keys)} different images in {source}: {listed}",
            hint="Give the full name:tag",
        )
    exact = [h for h in hits if h[1] == tag]
    return (exact or hits)[0][0], tag


def _dedupe_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(pairs))


class _OciPlanner:
    """Plans an OCI layout (folder or tar, Docker 25+ archives too) from index.json."""

    def __init__(self, c: _Container, *, docker_tags: bool) -> None:
        self.c = c
        self.docker_tags = docker_tags
        self.jobs: list[_HashJob] = []
        self._blobs: dict[str, PlanBlob] = {}
        self._expect: dict[int, str] = {}
        self._manifests: list[PlanManifest] = []
        self._seen_manifests: set[str] = set()
        self._docs: dict[str, tuple[str, bytes, dict[str, Any]]] = {}
        self._verified: set[str] = set()

    # -- reading

    def _where(self) -> str:
        return str(self.c.label)

    def _range(self, desc: Descriptor, what: str) -> FileRange | None:
        rng = self.c.blob(_blob_name(desc.digest))
        if rng is not None and rng.length != desc.size:
            raise SourceError(
                f"{self._where()}: {what} {desc.digest} is {rng.length} bytes but its descriptor "
                f"says {desc.size}; the image is corrupted"
            )
        return rng

    def _read_blob(self, desc: Descriptor, what: str, limit: int) -> bytes:
        rng = self._range(desc, what)
        if rng is None:
            raise SourceError(
                f"{self._where()} lacks the blob of {what} {desc.digest}; the image is incomplete"
            )
        if rng.length > limit:
            raise SourceError(
                f"{self._where()}: {what} {desc.digest} is too large ({rng.length} B)"
            )
        data = _read_range(rng)
        if sha256_bytes(data) != desc.digest:
            raise SourceError(
                f"{self._where()}: the blob of {what} {desc.digest} doesn't match its digest; "
                "the image is corrupted"
            )
        self._verified.add(desc.digest)
        return data

    def _load(self, desc: Descriptor, what: str) -> tuple[str, bytes, dict[str, Any]]:
        """A manifest or index: its media type, exact bytes and parsed document."""
        cached = self._docs.get(desc.digest)
        if cached is not None:
            return cached
        data = self._read_blob(desc, what, MAX_MANIFEST_BYTES)
        doc = _parse_json(data, f"{self._where()}: {what} {desc.digest}")
        if not isinstance(doc, dict):
            raise SourceError(f"{self._where()}: {what} {desc.digest} is not a JSON object")
        inner = doc.get("mediaType")
        if inner is not None and not isinstance(inner, str):
            raise SourceError(f"{self._where()}: {what} {desc.digest} has a malformed mediaType")
        if desc.media_type and inner and desc.media_type != inner:
            raise SourceError(
                f"{self._where()}: {what} {desc.digest} is listed as {desc.media_type} but says "
                f"it is {inner}"
            )
        media_type = desc.media_type or inner or ""
        if not media_type:
            if "manifests" in doc:
                media_type = OCI_INDEX
            elif "config" in doc:
                media_type = OCI_MANIFEST
        if media_type in DOCKER_SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
            raise SourceError(
                f"{self._where()}: {what} {desc.digest} is a Docker schema 1 manifest; registries "
                "no longer accept them",
                hint="Convert the image first, e.g. with `skopeo copy --format v2s2`",
            )
        if media_type not in INDEX_MEDIA_TYPES | MANIFEST_MEDIA_TYPES:
            raise SourceError(
                f"{self._where()}: {what} {desc.digest} has an unknown media type "
                f"{media_type or '(none)'!r}; Hoist pushes OCI and Docker v2 manifests and indexes"
            )
        key = "manifests" if media_type in INDEX_MEDIA_TYPES else "layers"
        if not isinstance(doc.get(key, []), list):
            raise SourceError(f"{self._where()}: {what} {desc.digest} has a malformed {key!r}")
        loaded = (media_type, data, doc)
        self._docs[desc.digest] = loaded
        return loaded

    def _children(self, desc: Descriptor, doc: dict[str, Any]) -> list[Descriptor]:
        where = f"{self._where()}: index {desc.digest}"
        return [_descriptor(m, where) for m in doc.get("manifests") or []]

    def _config_platform(self, doc: dict[str, Any], digest: str) -> dict[str, object] | None:
        cfg = doc.get("config")
        if not isinstance(cfg, dict):
            return None
        d = _descriptor(cfg, f"{self._where()}: manifest {digest}")
        if d.media_type not in IMAGE_CONFIG_TYPES or d.size > MAX_CONFIG_BYTES:
            return None
        if self._range(d, "config") is None:
            return None
        data = self._read_blob(d, "config", MAX_CONFIG_BYTES)
        return _config_platform(_parse_json(data, f"{self._where()}: config {d.digest}"))

    # -- index.json

    def _entries(self) -> list[tuple[Descriptor, list[str]]]:
        index = _read_json(self.c, OCI_INDEX_FILE, MAX_MANIFEST_BYTES)
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
            raise SourceError(f"{self._where()}: index.json is not an OCI image index")
        where = f"{self._where()}: index.json"
        entries: list[tuple[Descriptor, list[str]]] = []
        for raw in index.get("manifests") or []:
            d = _descriptor(raw, where)
            ann = d.annotations or {}
            names = [n for n in (ann.get(REF_NAME),) if n]
            entries.append((d, names))
        if self.docker_tags:
            self._add_repo_tags(entries)
        return entries

    def _add_repo_tags(self, entries: list[tuple[Descriptor, list[str]]]) -> None:
        """Docker 25+: give each index entry the RepoTags of manifest.json's item for its config."""
        items = _docker_items(self.c)
        by_config: dict[str, list[str]] = {}
        for item in items:
            cfg = item.get("Config")
            tags = item.get("RepoTags") or []
            if isinstance(cfg, str) and cfg.startswith("blobs/sha256/"):
                by_config.setdefault("sha256:" + cfg.rsplit("/", 1)[1], []).extend(
                    t for t in tags if isinstance(t, str)
                )
        if not by_config:
            return
        for desc, names in entries:
            if desc.media_type and desc.media_type not in MANIFEST_MEDIA_TYPES:
                continue
            if self._range(desc, "manifest") is None:
                continue
            _, _, doc = self._load(desc, "manifest")
            cfg = doc.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("digest"), str):
                names.extend(by_config.get(cfg["digest"], []))
            # "latest" beside "busybox:latest" says nothing more: keep the full name.
            names[:] = [n for n in names if not any(m != n and _tag_part(m) == n for m in names)]

    def _platforms_of(self, desc: Descriptor, depth: int = 0) -> list[str]:
        """Platforms of the image manifests an index (or a manifest) leads to."""
        if depth > _MAX_DEPTH:
            raise SourceError(f"{self._where()}: indexes nested too deeply")
        if self._range(desc, "manifest") is None:
            return [p] if (p := platform_string(desc.platform)) else []
        media_type, _, doc = self._load(desc, "manifest")
        if media_type in MANIFEST_MEDIA_TYPES:
            plat = desc.platform or self._config_platform(doc, desc.digest)
            return [p] if (p := platform_string(plat)) else []
        out: list[str] = []
        for child in self._children(desc, doc):
            if _is_unknown_platform(child.platform):
                continue
            if child.media_type in MANIFEST_MEDIA_TYPES and child.platform:
                if p := platform_string(child.platform):
                    out.append(p)
            else:
                out.extend(self._platforms_of(child, depth + 1))
        return _dedupe(out)

    def list_images(self) -> list[ImageEntry]:
        groups: dict[str, tuple[Descriptor, list[str]]] = {}
        for desc, names in self._entries():
            groups.setdefault(desc.digest, (desc, []))[1].extend(names)
        return [
            ImageEntry(_dedupe(names), desc.digest, desc.media_type or "", self._platforms_of(desc))
            for desc, names in groups.values()
        ]

    # -- planning

    def plan(self, tag: str | None, platform: tuple[str, str, str] | None) -> ImagePlan:
        entries = self._entries()
        images = [(d.digest, names, f"image {_short(d.digest)}") for d, names in entries]
        i, name = _choose(self.c.label, images, tag)
        top = entries[i][0]
        plan = ImagePlan(SourceKind.OCI_LAYOUT, self.c.label)
        plan.tags = _dedupe(n for _, names in entries for n in names)
        plan.platforms = self._platforms_of(top)
        push_tag = _push_tag(name)
        if platform is not None:
            top = self._select_platform(top, platform, plan.platforms)
        self._push(top, "manifest", push_tag, 0)
        plan.manifests = self._manifests
        plan.blobs = list(self._blobs.values())
        return plan

    def _select_platform(
        self, desc: Descriptor, want: tuple[str, str, str], offered: list[str]
    ) -> Descriptor:
        wanted = "/".join(p for p in want if p)
        media_type, _, doc = self._load(desc, "manifest")
        if media_type in MANIFEST_MEDIA_TYPES:
            plat = desc.platform or self._config_platform(doc, desc.digest)
            key = _platform_key(plat)
            if key is not None and key != want:
                raise SourceError(
                    f"the image in {self._where()} is for {platform_string(plat)}, not {wanted}"
                )
            return desc
        found: dict[str, Descriptor] = {}
        self._find_platform(desc, doc, want, found, 0)
        if not found:
            raise SourceError(
                f"the image index in {self._where()} has no {wanted} image; "
                f"it has: {', '.join(offered) or 'no platform information'}"
            )
        if len(found) > 1:
            listed = ", ".join(
                f"{platform_string(d.platform)} ({_short(d.digest)})" for d in found.values()
            )
            raise SourceError(f"{wanted} matches several images in {self._where()}: {listed}")
        return next(iter(found.values()))

    def _find_platform(
        self,
        desc: Descriptor,
        doc: dict[str, Any],
        want: tuple[str, str, str],
        found: dict[str, Descriptor],
        depth: int,
    ) -> None:
        if depth > _MAX_DEPTH:
            raise SourceError(f"{self._where()}: indexes nested too deeply")
        for child in self._children(desc, doc):
            if child.media_type in INDEX_MEDIA_TYPES:
                _, _, sub = self._load(child, "index")
                self._find_platform(child, sub, want, found, depth + 1)
            elif _platform_key(child.platform) == want:
                found.setdefault(child.digest, child)

    def _push(self, desc: Descriptor, what: str, tag: str | None, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise SourceError(f"{self._where()}: indexes nested too deeply")
        if desc.digest in self._seen_manifests:
            return
        media_type, data, doc = self._load(desc, what)
        if media_type in INDEX_MEDIA_TYPES:
            children = self._children(desc, doc)
            missing = [c for c in children if self._range(c, "manifest") is None]
            if missing:
                have = [c for c in children if c not in missing]
                listed = ", ".join(platform_string(c.platform) or c.digest for c in missing)
                present = ", ".join(platform_string(c.platform) or c.digest for c in have)
                raise SourceError(
                    f"{self._where()}: the index {desc.digest} lists manifests that are not in "
                    f"the source: {listed}",
                    hint=(f"Push one platform that is there ({present})" if present else ""),
                )
            for child in children:
                self._push(child, "manifest", None, depth + 1)
        else:
            where = f"{self._where()}: manifest {desc.digest}"
            config = doc.get("config")
            if config is None:
                raise SourceError(f"{where} has no config")
            self._add_blob(_descriptor(config, where), "config")
            for layer in doc.get("layers") or []:
                self._add_blob(_descriptor(layer, where), "layer", foreign_ok=True, raw=layer)
        self._seen_manifests.add(desc.digest)
        self._manifests.append(PlanManifest(media_type, desc.digest, data, tag, desc.platform))

    def _add_blob(
        self, desc: Descriptor, what: str, *, foreign_ok: bool = False, raw: Any = None
    ) -> None:
        if desc.digest in self._blobs:
            return
        rng = self._range(desc, what)
        if rng is None:
            if foreign_ok and isinstance(raw, dict) and raw.get("urls"):
                return  # a foreign (non-distributable) layer: fetched from its URLs, not pushed
            raise SourceError(
                f"{self._where()} lacks the blob of {what} {desc.digest}; the image is incomplete"
            )
        self._blobs[desc.digest] = PlanBlob(
            Descriptor(desc.media_type, desc.digest, desc.size), rng
        )
        if desc.digest not in self._verified:
            self._expect[len(self.jobs)] = desc.digest
            self.jobs.append(_HashJob(rng, f"{what} {desc.digest}"))

    def finish(self, plan: ImagePlan) -> None:
        identities: dict[str, FileIdentity] = {}
        for i, job in enumerate(self.jobs):
            expected = self._expect[i]
            if job.digest != expected:
                raise SourceError(
                    f"{self._where()}: the blob of {job.label} doesn't match its digest "
                    f"(its content hashes to {job.digest}); the image is corrupted"
                )
            if job.identity is not None:
                identities[expected] = job.identity
        plan.blobs = [_with_identity(b, identities) for b in plan.blobs]


def _with_identity(blob: PlanBlob, identities: dict[str, FileIdentity]) -> PlanBlob:
    identity = identities.get(blob.descriptor.digest)
    if identity is None and isinstance(blob.source, FileRange):
        identity = FileIdentity.of(blob.source.path)
    return PlanBlob(blob.descriptor, blob.source, identity)


def _docker_items(c: _Container) -> list[dict[str, Any]]:
    doc = _read_json(c, DOCKER_MANIFEST_FILE, MAX_MANIFEST_BYTES)
    if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
        raise SourceError(f"{c.label}: manifest.json is not a list of images")
    return doc


def docker_manifest_bytes(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """A Docker schema 2 manifest serialized as Go's json.Marshal does (skopeo's bytes)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": config.media_type, "size": config.size, "digest": config.digest},
        "layers": [{"mediaType": d.media_type, "size": d.size, "digest": d.digest} for d in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


class _DockerPlanner:
    """Plans a legacy `docker save` archive: generates its Docker schema 2 manifest."""

    def __init__(self, c: _Container, *, skopeo_compatible: bool) -> None:
        self.c = c
        self.skopeo_compatible = skopeo_compatible
        self.jobs: list[_HashJob] = []
        self._item: dict[str, Any] = {}
        self._config = b""
        self._config_range: FileRange | None = None
        self._layers: list[tuple[str, _HashJob, bool]] = []
        self._diff_ids: list[str] = []
        self._platform: dict[str, object] | None = None
        self._tag: str | None = None

    def _where(self) -> str:
        return str(self.c.label)

    def _items(self) -> list[dict[str, Any]]:
        items = _docker_items(self.c)
        for item in items:
            if not isinstance(item.get("Config"), str) or not isinstance(item.get("Layers"), list):
                raise SourceError(
                    f"{self._where()}: manifest.json has an entry without Config/Layers"
                )
            tags = item.get("RepoTags")
            if tags is not None and not (
                isinstance(tags, list) and all(isinstance(t, str) for t in tags)
            ):
                raise SourceError(f"{self._where()}: manifest.json has malformed RepoTags")
        return items

    def _read_config(self, item: dict[str, Any]) -> tuple[bytes, FileRange, Any]:
        name = _normalize_name(item["Config"]) or ""
        rng = self.c.blob(name)
        if rng is None:
            raise SourceError(f"{self._where()} lacks the image config {name!r}")
        if rng.length > MAX_CONFIG_BYTES:
            raise SourceError(f"{self._where()}: the config {name!r} is too large")
        data = _read_range(rng)
        digest = sha256_bytes(data)
        stem = name.rsplit("/", 1)[-1].removesuffix(".json")
        if _HEX64.match(stem) and digest != "sha256:" + stem:
            raise SourceError(
                f"{self._where()}: the config {name!r} doesn't match its name "
                f"(it hashes to {digest}); the archive is corrupted"
            )
        return data, rng, _parse_json(data, f"{self._where()}: config {name}")

    def list_images(self) -> list[ImageEntry]:
        out: list[ImageEntry] = []
        for item in self._items():
            _, _, config = self._read_config(item)
            plat = platform_string(_config_platform(config))
            out.append(
                ImageEntry(
                    list(item.get("RepoTags") or []), None, DOCKER_MANIFEST, [plat] if plat else []
                )
            )
        return out

    def plan(self, tag: str | None, platform: tuple[str, str, str] | None) -> ImagePlan:
        items = self._items()
        images = [
            (str(i), list(item.get("RepoTags") or []), f"image {i + 1} ({item['Config']})")
            for i, item in enumerate(items)
        ]
        i, name = _choose(self.c.label, images, tag)
        item = self._item = items[i]
        self._tag = _push_tag(name)
        data, rng, config = self._read_config(item)
        self._config, self._config_range = data, rng
        plat = _config_platform(config)
        if platform is not None:
            key = _platform_key(plat)
            if key is not None and key != platform:
                wanted = "/".join(p for p in platform if p)
                raise SourceError(
                    f"the image in {self._where()} is for {platform_string(plat)}, not {wanted}"
                )
        rootfs = config.get("rootfs") if isinstance(config, dict) else None
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(
            isinstance(d, str) and is_digest(d) for d in diff_ids
        ):
            raise SourceError(f"{self._where()}: the image config has no valid rootfs.diff_ids")
        layer_names = item["Layers"]
        if len(layer_names) != len(diff_ids):
            raise SourceError(
                f"{self._where()}: manifest.json lists {len(layer_names)} layers but the config "
                f"has {len(diff_ids)} diff_ids; the archive is inconsistent"
            )
        jobs: dict[FileRange, _HashJob] = {}
        for raw in layer_names:
            if not isinstance(raw, str):
                raise SourceError(f"{self._where()}: manifest.json has a malformed layer path")
            lname = _normalize_name(raw) or ""
            lrng = self.c.blob(lname)
            if lrng is None:
                raise SourceError(f"{self._where()} lacks the layer {raw!r}")
            magic = _read_range(FileRange(lrng.path, lrng.offset, min(4, lrng.length)))
            if magic.startswith(_ZSTD_MAGIC):
                raise SourceError(
                    f"{self._where()}: layer {raw!r} is zstd-compressed, which a Docker schema 2 "
                    "manifest can't describe"
                )
            gz = magic.startswith(_GZIP_MAGIC)
            job = jobs.get(lrng)
            if job is None:
                job = jobs[lrng] = _HashJob(lrng, f"layer {raw!r}", gunzip=gz)
                self.jobs.append(job)
            self._layers.append((raw, job, gz))
        plan = ImagePlan(SourceKind.DOCKER_ARCHIVE, self.c.label)
        plan.tags = _dedupe(t for _, names, _ in images for t in names)
        plan.platforms = [p] if (p := platform_string(plat)) else []
        self._platform = plat
        self._diff_ids = diff_ids
        return plan

    def finish(self, plan: ImagePlan) -> None:
        assert self._config_range is not None
        config = Descriptor(DOCKER_CONFIG, sha256_bytes(self._config), len(self._config))
        sources = self._item.get("LayerSources")
        sources = sources if isinstance(sources, dict) else {}
        blobs: dict[str, PlanBlob] = {
            config.digest: PlanBlob(
                config, self._config_range, FileIdentity.of(self._config_range.path)
            )
        }
        layers: list[Descriptor] = []
        for (_raw, job, gz), diff_id in zip(self._layers, self._diff_ids, strict=True):
            uncompressed = job.diff_id if gz else job.digest
            if uncompressed != diff_id:
                raise SourceError(
                    f"{self._where()}: {job.label} doesn't match the config's diff_id {diff_id} "
                    f"(its content hashes to {uncompressed}); the archive is corrupted"
                )
            if gz:
                media_type = DOCKER_LAYER_GZIP
            else:
                media_type = DOCKER_LAYER_GZIP if self.skopeo_compatible else DOCKER_LAYER
            declared = sources.get(diff_id)
            if isinstance(declared, dict):
                d = _descriptor(declared, f"{self._where()}: manifest.json LayerSources")
                if d.digest != job.digest or d.size != job.source.length:
                    raise SourceError(
                        f"{self._where()}: manifest.json's LayerSources says {job.label} is "
                        f"{d.digest} ({d.size} B) but the archive holds {job.digest} "
                        f"({job.source.length} B); foreign layers are not supported"
                    )
                media_type = d.media_type or media_type
            desc = Descriptor(media_type, job.digest, job.source.length)
            layers.append(desc)
            if desc.digest not in blobs:
                blobs[desc.digest] = PlanBlob(desc, job.source, job.identity)
        data = docker_manifest_bytes(config, layers)
        plan.blobs = list(blobs.values())
        plan.manifests = [
            PlanManifest(DOCKER_MANIFEST, sha256_bytes(data), data, self._tag, self._platform)
        ]
