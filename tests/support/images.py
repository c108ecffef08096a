"""Small, real container images built without a Docker engine, byte for byte reproducible.

Layers are real tarballs (gzip and uncompressed), configs carry the rootfs diff_ids, and the
layouts are what skopeo, docker and containerd write, so tests can push them anywhere:

* `write_oci_layout` / `write_oci_archive`: an OCI image layout (folder or tar), one image per
  tag or a multi-arch index (linux/amd64 + linux/arm64);
* `write_docker_archive`: a `docker save` tarball, the legacy form (`manifest.json`,
  `repositories`, `<id>/layer.tar`, repeated layers as symlinks as docker ≤ 24 writes them) or
  the Docker 25+ form (an OCI layout plus `manifest.json`).

Every writer returns what it wrote (digests, exact manifest bytes), so a test can compare a
push with the source. Times are fixed, so the same call always gives the same bytes.
Manifests are written with an unusual indentation on purpose: any tool that re-serializes them
instead of pushing them as they are changes their digest, and the test sees it.
"""

from __future__ import annotations

import gzip as gziplib
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

#: Every tar entry and gzip header carries this time (2023-11-14), so builds are reproducible.
FIXED_MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


# --------------------------------------------------------------------------------------------
# Tar writing


@dataclass(frozen=True)
class TarEntry:
    """One member of a hand-made tar; `target` is a link's target."""

    name: str
    data: bytes = b""
    kind: Literal["file", "dir", "symlink", "hardlink"] = "file"
    target: str = ""


def tar_bytes(entries: Iterable[TarEntry]) -> bytes:
    """A tar of `entries` in the given order, with fixed owners and times (not sorted)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.mtime = FIXED_MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            if e.kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tf.addfile(ti)
            elif e.kind in ("symlink", "hardlink"):
                ti.type = tarfile.SYMTYPE if e.kind == "symlink" else tarfile.LNKTYPE
                ti.linkname = e.target
                ti.mode = 0o777 if e.kind == "symlink" else 0o644
                tf.addfile(ti)
            else:
                ti.mode = 0o644
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
    return buf.getvalue()


def write_tar(path: str | os.PathLike[str], entries: Iterable[TarEntry]) -> Path:
    out = Path(path)
    out.write_bytes(tar_bytes(entries))
    return out


def entries_for(files: Mapping[str, bytes], *, prefix: str = "") -> list[TarEntry]:
    """Files (relative path → bytes) as sorted tar entries with their folders, as `tar` makes."""
    dirs: set[str] = set()
    for name in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    items = [(d + "/", None) for d in dirs] + [(n, files[n]) for n in files]
    items.sort(key=lambda x: x[0].rstrip("/"))
    out: list[TarEntry] = []
    if prefix:
        out.append(TarEntry(prefix.rstrip("/") + "/", kind="dir"))
    for name, data in items:
        if data is None:
            out.append(TarEntry(prefix + name, kind="dir"))
        else:
            out.append(TarEntry(prefix + name, data))
    return out


def make_layer_tar(files: Mapping[str, bytes], gzip: bool = False) -> bytes:
    """A real image layer: a tar of `files` (with their folders), gzip-compressed on request."""
    data = tar_bytes(entries_for(files))
    return gziplib.compress(data, mtime=0) if gzip else data


# --------------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True)
class LayerSpec:
    files: Mapping[str, bytes]
    gzip: bool = False


def _default_layers(seed: str) -> tuple[LayerSpec, ...]:
    return (
        LayerSpec({"etc/hoist/base.txt": f"base layer for {seed}\n".encode()}, gzip=True),
        LayerSpec({"app/data.bin": (f"{seed}:".encode() + bytes(range(256))) * 64}, gzip=False),
    )


@dataclass(frozen=True)
class ImageSpec:
    """An image to build: its layers and platform; `tag` names it in the layout or archive."""

    layers: tuple[LayerSpec, ...] | None = None
    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    tag: str | None = None
    #: Docker schema 2 manifest and media types instead of OCI ones.
    docker_media_types: bool = False

    @property
    def platform(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    @property
    def platform_string(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass
class BuiltImage:
    """An image as written: every blob and the exact manifest bytes."""

    spec: ImageSpec
    config: bytes
    config_digest: str
    config_media_type: str
    layers: list[bytes]
    layer_digests: list[str]
    layer_media_types: list[str]
    diff_ids: list[str]
    manifest: bytes
    manifest_digest: str
    media_type: str

    @property
    def blobs(self) -> dict[str, bytes]:
        out = {self.config_digest: self.config}
        out.update(zip(self.layer_digests, self.layers, strict=True))
        return out


def _pretty(doc: Any) -> bytes:
    """Deliberately not canonical: a re-serialized manifest would hash differently."""
    return (json.dumps(doc, indent=3) + "\n").encode()


def _compact(doc: Any) -> bytes:
    """As Go's json.Marshal writes it (docker's own files)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def _config(spec: ImageSpec, diff_ids: list[str]) -> bytes:
    doc: dict[str, Any] = {"architecture": spec.architecture}
    if spec.variant:
        doc["variant"] = spec.variant
    doc.update(
        {
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "WorkingDir": "/",
            },
            "created": CREATED,
            "history": [
                {"created": CREATED, "created_by": f"hoist test layer {i}"}
                for i in range(len(diff_ids))
            ],
            "os": spec.os,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    )
    return _compact(doc)


def build_image(spec: ImageSpec | None = None, *, force_uncompressed: bool = False) -> BuiltImage:
    """Build an image's blobs and manifest in memory."""
    spec = spec or ImageSpec()
    layer_specs = spec.layers if spec.layers is not None else _default_layers(spec.platform_string)
    layers: list[bytes] = []
    diff_ids: list[str] = []
    media_types: list[str] = []
    for ls in layer_specs:
        raw = make_layer_tar(ls.files, gzip=False)
        diff_ids.append(sha256(raw))
        zipped = ls.gzip and not force_uncompressed
        layers.append(gziplib.compress(raw, mtime=0) if zipped else raw)
        if spec.docker_media_types:
            media_types.append(DOCKER_LAYER_GZIP if zipped else DOCKER_LAYER)
        else:
            media_types.append(OCI_LAYER_GZIP if zipped else OCI_LAYER)
    config = _config(spec, diff_ids)
    config_type = DOCKER_CONFIG if spec.docker_media_types else OCI_CONFIG
    media_type = DOCKER_MANIFEST if spec.docker_media_types else OCI_MANIFEST
    manifest = _pretty(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": mt, "digest": sha256(data), "size": len(data)}
                for mt, data in zip(media_types, layers, strict=True)
            ],
        }
    )
    return BuiltImage(
        spec=spec,
        config=config,
        config_digest=sha256(config),
        config_media_type=config_type,
        layers=layers,
        layer_digests=[sha256(x) for x in layers],
        layer_media_types=media_types,
        diff_ids=diff_ids,
        manifest=manifest,
        manifest_digest=sha256(manifest),
        media_type=media_type,
    )


# --------------------------------------------------------------------------------------------
# OCI layouts


@dataclass
class BuiltLayout:
    """An OCI layout as written. `top_digest` is what the tag points to."""

    path: Path
    images: list[BuiltImage]
    files: dict[str, bytes]
    tags: list[str]
    index: bytes | None = None
    index_digest: str | None = None
    index_media_type: str | None = None

    @property
    def top_digest(self) -> str:
        return self.index_digest or self.images[0].manifest_digest

    @property
    def blobs(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for image in self.images:
            out.update(image.blobs)
        return out

    @property
    def manifests(self) -> dict[str, bytes]:
        out = {i.manifest_digest: i.manifest for i in self.images}
        if self.index is not None and self.index_digest is not None:
            out[self.index_digest] = self.index
        return out


def default_multi_arch() -> list[ImageSpec]:
    return [
        ImageSpec(architecture="amd64"),
        ImageSpec(architecture="arm64", variant="v8"),
    ]


def layout_files(
    *,
    images: Sequence[ImageSpec] | None = None,
    multi_arch: bool = False,
    tag: str | None = "latest",
    docker_index: bool = False,
) -> tuple[dict[str, bytes], BuiltLayout]:
    """The files of an OCI layout (relative path → bytes) and what they hold.

    Without `multi_arch`, each image gets its own index.json entry named by its spec's tag (or
    `tag` when there is one image). With it, the images become the children of one image
    index (Docker manifest list with `docker_index`), which index.json names `tag`.
    """
    specs = list(images) if images is not None else (default_multi_arch() if multi_arch else [])
    if not specs:
        specs = [ImageSpec()]
    built = [build_image(s) for s in specs]
    files: dict[str, bytes] = {"oci-layout": _compact({"imageLayoutVersion": "1.0.0"})}
    for image in built:
        for digest, data in image.blobs.items():
            files[f"blobs/sha256/{_hex(digest)}"] = data
        files[f"blobs/sha256/{_hex(image.manifest_digest)}"] = image.manifest
    entries: list[dict[str, Any]] = []
    tags: list[str] = []
    layout = BuiltLayout(Path(), built, files, tags)
    if multi_arch:
        index_type = DOCKER_MANIFEST_LIST if docker_index else OCI_INDEX
        index = _pretty(
            {
                "schemaVersion": 2,
                "mediaType": index_type,
                "manifests": [
                    {
                        "mediaType": i.media_type,
                        "digest": i.manifest_digest,
                        "size": len(i.manifest),
                        "platform": i.spec.platform,
                    }
                    for i in built
                ],
            }
        )
        digest = sha256(index)
        files[f"blobs/sha256/{_hex(digest)}"] = index
        layout.index, layout.index_digest, layout.index_media_type = index, digest, index_type
        entry: dict[str, Any] = {"mediaType": index_type, "digest": digest, "size": len(index)}
        if tag:
            entry["annotations"] = {REF_NAME: tag}
            tags.append(tag)
        entries.append(entry)
    else:
        for image in built:
            name = (
                image.spec.tag if image.spec.tag is not None else (tag if len(built) == 1 else None)
            )
            entry = {
                "mediaType": image.media_type,
                "digest": image.manifest_digest,
                "size": len(image.manifest),
            }
            if name:
                entry["annotations"] = {REF_NAME: name}
                tags.append(name)
            entries.append(entry)
    files["index.json"] = _compact({"schemaVersion": 2, "manifests": entries})
    return files, layout


def write_files(root: str | os.PathLike[str], files: Mapping[str, bytes]) -> Path:
    """Write files (relative path → bytes) under `root` with fixed times."""
    base = Path(root)
    for name, data in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    return base


def write_oci_layout(
    root: str | os.PathLike[str],
    *,
    images: Sequence[ImageSpec] | None = None,
    multi_arch: bool = False,
    tag: str | None = "latest",
    docker_index: bool = False,
) -> BuiltLayout:
    """Write an OCI image layout folder at `root` (created if needed)."""
    files, layout = layout_files(
        images=images, multi_arch=multi_arch, tag=tag, docker_index=docker_index
    )
    layout.path = write_files(root, files)
    return layout


def write_oci_archive(
    tar_path: str | os.PathLike[str],
    *,
    images: Sequence[ImageSpec] | None = None,
    multi_arch: bool = False,
    tag: str | None = "latest",
    docker_index: bool = False,
    prefix: str = "",
) -> BuiltLayout:
    """Write the same layout as one uncompressed tar (`oci-archive`); `prefix` nests it."""
    files, layout = layout_files(
        images=images, multi_arch=multi_arch, tag=tag, docker_index=docker_index
    )
    layout.path = write_tar(tar_path, entries_for(files, prefix=prefix))
    return layout


# --------------------------------------------------------------------------------------------
# docker save archives


@dataclass
class BuiltDockerArchive:
    """A `docker save` tarball as written.

    `manifest_json` is its manifest.json; `images[i].manifest` is, for the Docker 25+ form, the
    OCI manifest stored in blobs/ (for the legacy form, the OCI manifest that was *not* written:
    a legacy archive has no manifest, only layers and configs).
    """

    path: Path
    images: list[BuiltImage]
    files: dict[str, bytes]
    manifest_json: bytes
    repo_tags: list[list[str]]
    legacy: bool
    layer_paths: list[list[str]] = field(default_factory=list)

    @property
    def tags(self) -> list[str]:
        return [t for tags in self.repo_tags for t in tags]


def _docker_ref(name: str) -> str:
    """Docker's full reference for a familiar name ("busybox:1" → "docker.io/library/busybox:1")."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    if "/" not in name:
        name = "library/" + name
    return "docker.io/" + name


def _split_tag(ref: str) -> tuple[str, str]:
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        return ref.rsplit(":", 1)[0], ref.rsplit(":", 1)[1]
    return ref, "latest"


def write_docker_archive(
    tar_path: str | os.PathLike[str],
    *,
    legacy: bool = True,
    repo_tags: Sequence[str] = ("example/app:v1",),
    images: Sequence[ImageSpec] | None = None,
    symlink_duplicate_layers: bool = True,
    layer_sources: bool = False,
) -> BuiltDockerArchive:
    """Write a `docker save` tarball.

    Image i is tagged with its spec's tag when it has one (a `name:tag`), else, for the first
    image, with `repo_tags`. Layers are uncompressed as docker writes them, unless a legacy
    archive's LayerSpec asks for gzip (docker never does; other tools may). In the legacy form a
    layer seen before becomes a symlink to the first copy, as docker ≤ 24 writes it, unless
    `symlink_duplicate_layers` is False. `layer_sources` adds docker's LayerSources map.
    """
    specs = list(images) if images is not None else [ImageSpec()]
    built = [build_image(s, force_uncompressed=not legacy) for s in specs]
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    manifest_items: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    index_entries: list[dict[str, Any]] = []
    all_tags: list[list[str]] = []
    all_paths: list[list[str]] = []
    for n, image in enumerate(built):
        tags = [image.spec.tag] if image.spec.tag else (list(repo_tags) if n == 0 else [])
        all_tags.append(tags)
        paths: list[str] = []
        if legacy:
            config_name = f"{_hex(image.config_digest)}.json"
            files[config_name] = image.config
            parent = ""
            first_path: dict[str, str] = {}
            for i, (data, diff_id) in enumerate(zip(image.layers, image.diff_ids, strict=True)):
                v1 = hashlib.sha256(f"{parent}|{diff_id}|{i}".encode()).hexdigest()
                files[f"{v1}/VERSION"] = b"1.0"
                v1_json: dict[str, Any] = {"id": v1, "created": CREATED}
                if parent:
                    v1_json["parent"] = parent
                files[f"{v1}/json"] = _compact(v1_json)
                layer_path = f"{v1}/layer.tar"
                earlier = first_path.get(diff_id)
                if earlier is not None and symlink_duplicate_layers:
                    links[layer_path] = f"../{earlier}"
                else:
                    files[layer_path] = data
                    first_path.setdefault(diff_id, layer_path)
                paths.append(layer_path)
                parent = v1
            last_id = parent
        else:
            config_name = f"blobs/sha256/{_hex(image.config_digest)}"
            files[config_name] = image.config
            for data, diff_id in zip(image.layers, image.diff_ids, strict=True):
                layer_path = f"blobs/sha256/{_hex(diff_id)}"
                files[layer_path] = data
                paths.append(layer_path)
            manifest = _compact(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": image.config_digest,
                        "size": len(image.config),
                    },
                    "layers": [
                        {"mediaType": OCI_LAYER, "digest": sha256(data), "size": len(data)}
                        for data in image.layers
                    ],
                }
            )
            image.manifest, image.manifest_digest = manifest, sha256(manifest)
            image.media_type = OCI_MANIFEST
            image.config_media_type = OCI_CONFIG
            image.layer_media_types = [OCI_LAYER] * len(image.layers)
            files[f"blobs/sha256/{_hex(image.manifest_digest)}"] = manifest
            last_id = _hex(image.diff_ids[-1])
            for t in tags:
                index_entries.append(
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": image.manifest_digest,
                        "size": len(manifest),
                        "annotations": {
                            CONTAINERD_NAME: _docker_ref(t),
                            REF_NAME: _split_tag(t)[1],
                        },
                        "platform": image.spec.platform,
                    }
                )
        all_paths.append(paths)
        item: dict[str, Any] = {"Config": config_name, "RepoTags": tags or None, "Layers": paths}
        if layer_sources:
            item["LayerSources"] = {
                d: {"mediaType": DOCKER_LAYER, "size": len(x), "digest": sha256(x)}
                for d, x in zip(image.diff_ids, image.layers, strict=True)
            }
        manifest_items.append(item)
        for t in tags:
            repo, tagname = _split_tag(t)
            repositories.setdefault(repo, {})[tagname] = last_id
    manifest_json = _compact(manifest_items) + b"\n"
    files["manifest.json"] = manifest_json
    if repositories:
        files["repositories"] = _compact(repositories) + b"\n"
    if not legacy:
        files["oci-layout"] = _compact({"imageLayoutVersion": "1.0.0"})
        files["index.json"] = _compact(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}
        )
    entries = entries_for(files)
    if links:
        # Links sit where the file would: after the folder, in sorted order.
        extra = [TarEntry(name, kind="symlink", target=t) for name, t in links.items()]
        for e in extra:
            folder = e.name.rsplit("/", 1)[0] + "/"
            if not any(x.name == folder for x in entries):
                entries.append(TarEntry(folder, kind="dir"))
        entries.extend(extra)
        entries.sort(key=lambda x: x.name.rstrip("/"))
    path = write_tar(tar_path, entries)
    return BuiltDockerArchive(
        path, built, files, manifest_json, all_tags, legacy, layer_paths=all_paths
    )
