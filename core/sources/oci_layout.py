"""An OCI image layout folder (`oci-layout`, `index.json`, `blobs/`): a source format, and the
reader of index.json that OCI archives and Docker 25+ `docker save` archives share.

Every manifest is kept as the exact bytes found in the layout, so its digest can't change on
the way; every blob is a byte range of a file under `blobs/`. Manifests and configs are hashed
and checked before a plan is handed out; layers are checked by the registry as they are
committed. A blob that is a symbolic link is refused: a link could make Hoist upload a file
from anywhere.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

from hoist.core.errors import SourceError
from hoist.core.oci.annotations import REF_NAME
from hoist.core.oci.digest import Descriptor, sha256_bytes
from hoist.core.oci.manifest import (
    DOCKER_SCHEMA1_TYPES,
    IMAGE_CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)
from hoist.core.sources.content import FileIdentity, FileRange, PlannedBlob
from hoist.core.sources.image import (
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    ImageEntry,
    ImagePlan,
    PlanManifest,
    SourceKind,
    choose_image,
    config_platform,
    dedupe,
    image_blob,
    is_unknown_platform,
    parse_descriptor,
    platform_key,
    platform_string,
    push_tag,
    short_hex,
    tag_part,
)
from hoist.core.sources.image_files import (
    OCI_INDEX_FILE,
    OCI_LAYOUT_FILE,
    Container,
    HashJob,
    Progress,
    blob_name,
    check_pick,
    docker_items,
    parse_json,
    read_json,
    read_range,
    run_planner,
)
from hoist.core.sources.source import ImageFormat, Probe, SourceSummary

#: Index nesting deeper than this is a malformed (or hostile) source.
_MAX_DEPTH = 8


class DirContainer:
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


class OciPlanner:
    """Plans an OCI layout (folder or tar, Docker 25+ archives too) from index.json."""

    def __init__(self, c: Container, *, docker_tags: bool) -> None:
        self.c = c
        self.docker_tags = docker_tags
        self.jobs: list[HashJob] = []
        self._blobs: dict[str, PlannedBlob] = {}
        self._expect: dict[int, str] = {}
        self._manifests: list[PlanManifest] = []
        self._seen_manifests: set[str] = set()
        self._docs: dict[str, tuple[str, bytes, dict[str, Any]]] = {}
        self._verified: set[str] = set()

    # -- reading

    def _where(self) -> str:
        return str(self.c.label)

    def _range(self, desc: Descriptor, what: str) -> FileRange | None:
        rng = self.c.blob(blob_name(desc.digest))
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
        data = read_range(rng)
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
        doc = parse_json(data, f"{self._where()}: {what} {desc.digest}")
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
        if media_type not in INDEX_TYPES | MANIFEST_TYPES:
            raise SourceError(
                f"{self._where()}: {what} {desc.digest} has an unknown media type "
                f"{media_type or '(none)'!r}; Hoist pushes OCI and Docker v2 manifests and indexes"
            )
        key = "manifests" if media_type in INDEX_TYPES else "layers"
        if not isinstance(doc.get(key, []), list):
            raise SourceError(f"{self._where()}: {what} {desc.digest} has a malformed {key!r}")
        loaded = (media_type, data, doc)
        self._docs[desc.digest] = loaded
        return loaded

    def _children(self, desc: Descriptor, doc: dict[str, Any]) -> list[Descriptor]:
        where = f"{self._where()}: index {desc.digest}"
        return [parse_descriptor(m, where) for m in doc.get("manifests") or []]

    def _config_platform(self, doc: dict[str, Any], digest: str) -> dict[str, object] | None:
        cfg = doc.get("config")
        if not isinstance(cfg, dict):
            return None
        d = parse_descriptor(cfg, f"{self._where()}: manifest {digest}")
        if d.media_type not in IMAGE_CONFIG_TYPES or d.size > MAX_CONFIG_BYTES:
            return None
        if self._range(d, "config") is None:
            return None
        data = self._read_blob(d, "config", MAX_CONFIG_BYTES)
        return config_platform(parse_json(data, f"{self._where()}: config {d.digest}"))

    # -- index.json

    def _entries(self) -> list[tuple[Descriptor, list[str]]]:
        index = read_json(self.c, OCI_INDEX_FILE, MAX_MANIFEST_BYTES)
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
            raise SourceError(f"{self._where()}: index.json is not an OCI image index")
        where = f"{self._where()}: index.json"
        entries: list[tuple[Descriptor, list[str]]] = []
        for raw in index.get("manifests") or []:
            d = parse_descriptor(raw, where)
            ann = d.annotations or {}
            names = [n for n in (ann.get(REF_NAME),) if n]
            entries.append((d, names))
        if self.docker_tags:
            self._add_repo_tags(entries)
        return entries

    def _add_repo_tags(self, entries: list[tuple[Descriptor, list[str]]]) -> None:
        """Docker 25+: give each index entry the RepoTags of manifest.json's item for its config."""
        items = docker_items(self.c)
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
            if desc.media_type and desc.media_type not in MANIFEST_TYPES:
                continue
            if self._range(desc, "manifest") is None:
                continue
            _, _, doc = self._load(desc, "manifest")
            cfg = doc.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("digest"), str):
                names.extend(by_config.get(cfg["digest"], []))
            # "latest" beside "busybox:latest" says nothing more: keep the full name.
            names[:] = [n for n in names if not any(m != n and tag_part(m) == n for m in names)]

    def _platforms_of(self, desc: Descriptor, depth: int = 0) -> list[str]:
        """Platforms of the image manifests an index (or a manifest) leads to."""
        if depth > _MAX_DEPTH:
            raise SourceError(f"{self._where()}: indexes nested too deeply")
        if self._range(desc, "manifest") is None:
            return [p] if (p := platform_string(desc.platform)) else []
        media_type, _, doc = self._load(desc, "manifest")
        if media_type in MANIFEST_TYPES:
            plat = desc.platform or self._config_platform(doc, desc.digest)
            return [p] if (p := platform_string(plat)) else []
        out: list[str] = []
        for child in self._children(desc, doc):
            if is_unknown_platform(child.platform):
                continue
            if child.media_type in MANIFEST_TYPES and child.platform:
                if p := platform_string(child.platform):
                    out.append(p)
            else:
                out.extend(self._platforms_of(child, depth + 1))
        return dedupe(out)

    def list_images(self) -> list[ImageEntry]:
        groups: dict[str, tuple[Descriptor, list[str]]] = {}
        for desc, names in self._entries():
            groups.setdefault(desc.digest, (desc, []))[1].extend(names)
        return [
            ImageEntry(dedupe(names), desc.digest, desc.media_type or "", self._platforms_of(desc))
            for desc, names in groups.values()
        ]

    # -- planning

    def plan(self, tag: str | None, platform: tuple[str, str, str] | None) -> ImagePlan:
        entries = self._entries()
        images = [(d.digest, names, f"image {short_hex(d.digest)}") for d, names in entries]
        i, name = choose_image(self.c.label, images, tag)
        top = entries[i][0]
        plan = ImagePlan(SourceKind.OCI_LAYOUT, self.c.label)
        plan.tags = dedupe(n for _, names in entries for n in names)
        plan.platforms = self._platforms_of(top)
        tag_to_push = push_tag(name)
        if platform is not None:
            top = self._select_platform(top, platform, plan.platforms)
        self._push(top, "manifest", tag_to_push, 0)
        plan.manifests = self._manifests
        plan.blobs = list(self._blobs.values())
        return plan

    def _select_platform(
        self, desc: Descriptor, want: tuple[str, str, str], offered: list[str]
    ) -> Descriptor:
        wanted = "/".join(p for p in want if p)
        media_type, _, doc = self._load(desc, "manifest")
        if media_type in MANIFEST_TYPES:
            plat = desc.platform or self._config_platform(doc, desc.digest)
            key = platform_key(plat)
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
                f"{platform_string(d.platform)} ({short_hex(d.digest)})" for d in found.values()
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
            if child.media_type in INDEX_TYPES:
                _, _, sub = self._load(child, "index")
                self._find_platform(child, sub, want, found, depth + 1)
            elif platform_key(child.platform) == want:
                found.setdefault(child.digest, child)

    def _push(self, desc: Descriptor, what: str, tag: str | None, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise SourceError(f"{self._where()}: indexes nested too deeply")
        if desc.digest in self._seen_manifests:
            return
        media_type, data, doc = self._load(desc, what)
        if media_type in INDEX_TYPES:
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
            self._add_blob(parse_descriptor(config, where), "config")
            for layer in doc.get("layers") or []:
                self._add_blob(parse_descriptor(layer, where), "layer", foreign_ok=True, raw=layer)
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
        self._blobs[desc.digest] = image_blob(desc, rng)
        # A layer is trusted as the layout names it (as crane does): the registry checks its
        # digest on commit and a mismatch is refused as a corrupt local copy; hashing it here
        # would read every byte twice and take the CPU the registry needs (issue 19).
        if what != "layer" and desc.digest not in self._verified:
            self._expect[len(self.jobs)] = desc.digest
            self.jobs.append(HashJob(rng, f"{what} {desc.digest}"))

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


def _with_identity(blob: PlannedBlob, identities: dict[str, FileIdentity]) -> PlannedBlob:
    identity = identities.get(blob.digest or "") or FileIdentity.of(blob.source.path)
    return dataclasses.replace(blob, identity=identity)


class OciLayoutSource:
    """An OCI image layout folder, pushed as the image(s) its index.json lists."""

    kind = SourceKind.OCI_LAYOUT

    def __init__(self, probe: Probe) -> None:
        self.path = probe.path

    def describe(self) -> SourceSummary:
        files = [p for p in self.path.rglob("*") if p.is_file() and not p.is_symlink()]
        size = sum(p.stat().st_size for p in files)
        return SourceSummary(self.path, FORMAT.name, len(files), size, self.list_images())

    def list_images(self) -> list[ImageEntry]:
        return OciPlanner(DirContainer(self.path), docker_tags=False).list_images()

    def plan_image(
        self,
        *,
        tag: str | None = None,
        platform: str | None = None,
        skopeo_compatible: bool = False,
        progress: Progress | None = None,
    ) -> ImagePlan:
        want = check_pick(tag, platform)
        planner = OciPlanner(DirContainer(self.path), docker_tags=False)
        return run_planner(planner, self.kind, self.path, tag, want, progress)


def _detect(probe: Probe) -> bool:
    path = probe.path
    return (
        probe.is_dir
        and (path / OCI_LAYOUT_FILE).is_file()
        and (path / OCI_INDEX_FILE).is_file()
        and (path / "blobs").is_dir()
    )


FORMAT = ImageFormat("OCI image layout", _detect, OciLayoutSource)
