"""A `docker save` tarball: a source format.

Two forms: the legacy one (`manifest.json`, `repositories`, `<id>/layer.tar`), for which a
Docker schema 2 manifest is generated (byte for byte the one skopeo pushes, with
`skopeo_compatible`), and the one Docker 25+ writes, which holds an OCI layout as well and is
read as one (`oci_layout.OciPlanner`), tagged from manifest.json's RepoTags. A Docker 25+
archive saved untagged has an empty index.json and is read as the legacy form.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from hoist.core.errors import SourceError
from hoist.core.oci.digest import Descriptor, is_digest, sha256_bytes
from hoist.core.oci.manifest import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST
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
    parse_descriptor,
    platform_key,
    platform_string,
    push_tag,
)
from hoist.core.sources.image_files import (
    DOCKER_MANIFEST_FILE,
    DOCKER_REPOSITORIES_FILE,
    GZIP_MAGIC,
    OCI_INDEX_FILE,
    ZSTD_MAGIC,
    Container,
    HashJob,
    Progress,
    TarContainer,
    check_pick,
    docker_items,
    normalize_name,
    parse_json,
    pread,
    read_json,
    read_range,
    run_planner,
    tar_holds_layout,
)
from hoist.core.sources.oci_layout import OciPlanner
from hoist.core.sources.source import ImageFormat, Probe, SourceSummary

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_LEGACY_LAYER = re.compile(r"[0-9a-f]{64}/layer\.tar\Z")


def docker_manifest_bytes(config: Descriptor, layers: list[Descriptor]) -> bytes:
    """A Docker schema 2 manifest serialized as Go's json.Marshal does (skopeo's bytes)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": config.media_type, "size": config.size, "digest": config.digest},
        "layers": [{"mediaType": d.media_type, "size": d.size, "digest": d.digest} for d in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


class DockerPlanner:
    """Plans a legacy `docker save` archive: generates its Docker schema 2 manifest."""

    def __init__(self, c: Container, *, skopeo_compatible: bool) -> None:
        self.c = c
        self.skopeo_compatible = skopeo_compatible
        self.jobs: list[HashJob] = []
        self._item: dict[str, Any] = {}
        self._config = b""
        self._config_range: FileRange | None = None
        self._layers: list[tuple[str, HashJob, bool]] = []
        self._diff_ids: list[str] = []
        self._platform: dict[str, object] | None = None
        self._tag: str | None = None

    def _where(self) -> str:
        return str(self.c.label)

    def _items(self) -> list[dict[str, Any]]:
        items = docker_items(self.c)
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
        name = normalize_name(item["Config"]) or ""
        rng = self.c.blob(name)
        if rng is None:
            raise SourceError(f"{self._where()} lacks the image config {name!r}")
        if rng.length > MAX_CONFIG_BYTES:
            raise SourceError(f"{self._where()}: the config {name!r} is too large")
        data = read_range(rng)
        digest = sha256_bytes(data)
        stem = name.rsplit("/", 1)[-1].removesuffix(".json")
        if _HEX64.match(stem) and digest != "sha256:" + stem:
            raise SourceError(
                f"{self._where()}: the config {name!r} doesn't match its name "
                f"(it hashes to {digest}); the archive is corrupted"
            )
        return data, rng, parse_json(data, f"{self._where()}: config {name}")

    def list_images(self) -> list[ImageEntry]:
        out: list[ImageEntry] = []
        for item in self._items():
            _, _, config = self._read_config(item)
            plat = platform_string(config_platform(config))
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
        i, name = choose_image(self.c.label, images, tag)
        item = self._item = items[i]
        self._tag = push_tag(name)
        data, rng, config = self._read_config(item)
        self._config, self._config_range = data, rng
        plat = config_platform(config)
        if platform is not None:
            key = platform_key(plat)
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
        jobs: dict[FileRange, HashJob] = {}
        for raw in layer_names:
            if not isinstance(raw, str):
                raise SourceError(f"{self._where()}: manifest.json has a malformed layer path")
            lname = normalize_name(raw) or ""
            lrng = self.c.blob(lname)
            if lrng is None:
                raise SourceError(f"{self._where()} lacks the layer {raw!r}")
            magic = read_range(FileRange(lrng.path, lrng.offset, min(4, lrng.length)))
            if magic.startswith(ZSTD_MAGIC):
                raise SourceError(
                    f"{self._where()}: layer {raw!r} is zstd-compressed, which a Docker schema 2 "
                    "manifest can't describe"
                )
            gz = magic.startswith(GZIP_MAGIC)
            job = jobs.get(lrng)
            if job is None:
                job = jobs[lrng] = HashJob(lrng, f"layer {raw!r}", gunzip=gz)
                self.jobs.append(job)
            self._layers.append((raw, job, gz))
        plan = ImagePlan(SourceKind.DOCKER_ARCHIVE, self.c.label)
        plan.tags = dedupe(t for _, names, _ in images for t in names)
        plan.platforms = [p] if (p := platform_string(plat)) else []
        self._platform = plat
        self._diff_ids = diff_ids
        return plan

    def finish(self, plan: ImagePlan) -> None:
        assert self._config_range is not None
        config = Descriptor(DOCKER_CONFIG, sha256_bytes(self._config), len(self._config))
        sources = self._item.get("LayerSources")
        sources = sources if isinstance(sources, dict) else {}
        blobs: dict[str, PlannedBlob] = {
            config.digest: image_blob(
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
                d = parse_descriptor(declared, f"{self._where()}: manifest.json LayerSources")
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
                blobs[desc.digest] = image_blob(desc, job.source, job.identity)
        data = docker_manifest_bytes(config, layers)
        plan.blobs = list(blobs.values())
        plan.manifests = [
            PlanManifest(DOCKER_MANIFEST, sha256_bytes(data), data, self._tag, self._platform)
        ]


def _index_has_entries(c: Container) -> bool:
    """Whether a Docker 25+ archive's index.json lists any image (untagged saves list none)."""
    doc = read_json(c, OCI_INDEX_FILE, MAX_MANIFEST_BYTES)
    return isinstance(doc, dict) and bool(doc.get("manifests"))


class DockerArchiveSource:
    """A `docker save` tarball, legacy or Docker 25+ (`kind` says which)."""

    def __init__(self, probe: Probe) -> None:
        scan = probe.tar
        assert scan is not None  # detected as a docker archive: a tar
        self.path = probe.path
        self.kind = (
            SourceKind.DOCKER_OCI_ARCHIVE if tar_holds_layout(scan) else SourceKind.DOCKER_ARCHIVE
        )
        self._scan = scan

    def _container(self) -> TarContainer:
        return TarContainer(self.path, self._scan.members, self._scan.prefix)

    def _reads_docker_manifest(self, container: Container) -> bool:
        """Legacy archives, and Docker 25+ ones saved untagged (an empty index.json), are read
        from manifest.json; the others from the OCI index."""
        return self.kind is SourceKind.DOCKER_ARCHIVE or not _index_has_entries(container)

    def describe(self) -> SourceSummary:
        size = self.path.stat().st_size
        return SourceSummary(self.path, FORMAT.name, 1, size, self.list_images())

    def list_images(self) -> list[ImageEntry]:
        container = self._container()
        if self._reads_docker_manifest(container):
            return DockerPlanner(container, skopeo_compatible=False).list_images()
        return OciPlanner(container, docker_tags=True).list_images()

    def plan_image(
        self,
        *,
        tag: str | None = None,
        platform: str | None = None,
        skopeo_compatible: bool = False,
        progress: Progress | None = None,
    ) -> ImagePlan:
        """See `ImageSource.plan_image`. `skopeo_compatible` only matters for a legacy
        archive: skopeo labels every layer of the manifest it generates
        `...rootfs.diff.tar.gzip`, even uncompressed ones (docker, containerd and podman sniff
        the compression, so it works). With it, Hoist labels them the same way and its
        manifest is byte-identical to the one `skopeo copy --preserve-digests
        docker-archive:FILE docker://...` pushes. Without it, an uncompressed layer is
        labelled `...rootfs.diff.tar`, which is what it is."""
        want = check_pick(tag, platform)
        container = self._container()
        planner: DockerPlanner | OciPlanner
        if self._reads_docker_manifest(container):
            planner = DockerPlanner(container, skopeo_compatible=skopeo_compatible)
        else:
            planner = OciPlanner(container, docker_tags=True)
        return run_planner(planner, self.kind, self.path, tag, want, progress)


def _detect(probe: Probe) -> bool:
    """A tar whose manifest.json lists images (or, unreadable, sits beside docker's other
    files: a broken docker save, to be reported as such rather than pushed as a plain file)."""
    scan = probe.tar
    if scan is None:
        return False
    p, names = scan.prefix, scan.names
    info = names.get(p + DOCKER_MANIFEST_FILE)
    if info is None:
        return False
    doc: Any = None
    if info.isreg() and not info.issparse() and info.size <= MAX_MANIFEST_BYTES:
        with contextlib.suppress(ValueError, OSError, SourceError):
            doc = json.loads(pread(probe.path, info.offset_data, info.size))
    if doc is None:
        return p + DOCKER_REPOSITORIES_FILE in names and any(_LEGACY_LAYER.match(n) for n in names)
    return (
        isinstance(doc, list)
        and bool(doc)
        and all(isinstance(d, dict) and "Layers" in d and "Config" in d for d in doc)
    )


FORMAT = ImageFormat("docker save archive", _detect, DockerArchiveSource)
