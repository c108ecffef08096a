"""What pushing an image needs, whatever its format: the plan's types, and picking an image.

Each image format (`oci_layout`, `oci_archive`, `docker_archive`) reads its own files into an
`ImagePlan`: blobs that are byte ranges of local files with known digests, and
manifests kept as the exact bytes to PUT. What they share lives here: the plan, the entries a
picker lists, and how a tag or a platform picks one image out of several.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hoist.core.errors import SourceError
from hoist.core.oci.digest import Descriptor, is_digest
from hoist.core.sources.content import FileIdentity, FileRange, PlannedBlob

#: distribution refuses manifests over 4 MiB, so a larger one is not worth reading.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
#: Image configs carry the build history; a few MB at most in practice.
MAX_CONFIG_BYTES = 64 * 1024 * 1024

_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")

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


def image_blob(
    descriptor: Descriptor, source: FileRange, identity: FileIdentity | None = None
) -> PlannedBlob:
    """An image's blob (a layer or a config) as planned: its digest is known (checked here, or by
    the registry on commit for a layer the source names by digest)."""
    return PlannedBlob(
        short_hex(descriptor.digest),
        source,
        descriptor.media_type,
        digest=descriptor.digest,
        identity=identity,
    )


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
    blobs: list[PlannedBlob] = field(default_factory=list)
    manifests: list[PlanManifest] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)

    @property
    def top(self) -> PlanManifest:
        """The manifest the tag points to: the last one pushed."""
        return self.manifests[-1]

    @property
    def blob_bytes(self) -> int:
        return sum(b.size for b in self.blobs)


@dataclass(frozen=True)
class ImageEntry:
    """One image a source holds, as listed without hashing any layer (for pickers).

    `digest` is None for a legacy docker-archive image, whose manifest is generated.
    """

    tags: list[str]
    digest: str | None
    media_type: str
    platforms: list[str]


def parse_descriptor(obj: Any, where: str) -> Descriptor:
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


def parse_platform(text: str) -> tuple[str, str, str]:
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SourceError(
            f"{text!r} is not a platform",
            hint="Write it as os/architecture[/variant], e.g. linux/arm64",
        )
    return _normal_platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def _platform_fields(platform: dict[str, object] | None) -> tuple[str, str, str] | None:
    """An OCI platform object's os, architecture and variant ("" when it has none), as
    written; None when it names no os and architecture."""
    if not platform:
        return None
    os_name, arch = platform.get("os"), platform.get("architecture")
    if not isinstance(os_name, str) or not isinstance(arch, str):
        return None
    variant = platform.get("variant")
    return os_name, arch, variant if isinstance(variant, str) else ""


def platform_key(platform: dict[str, object] | None) -> tuple[str, str, str] | None:
    fields = _platform_fields(platform)
    return None if fields is None else _normal_platform(*fields)


def platform_string(platform: dict[str, object] | None) -> str | None:
    """ "linux/arm64" or "linux/arm/v7" for an OCI platform object; None when it has none."""
    fields = _platform_fields(platform)
    if fields is None:
        return None
    os_name, arch, variant = fields
    return f"{os_name}/{arch}/{variant}" if variant else f"{os_name}/{arch}"


def is_unknown_platform(platform: dict[str, object] | None) -> bool:
    """buildkit's attestation manifests carry unknown/unknown: not a platform to offer."""
    return bool(platform) and platform.get("os") == "unknown"  # type: ignore[union-attr]


def config_platform(config: Any) -> dict[str, object] | None:
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


def tag_part(name: str) -> str:
    """ "v1" for "example/app:v1" or "localhost:5000/app:v1"; the name itself when it has none."""
    name = name.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else name


def _tag_matches(wanted: str, name: str) -> bool:
    return wanted == name or wanted == tag_part(name)


def push_tag(name: str | None) -> str | None:
    """The tag to push under, from a source name; None when it is not a valid tag."""
    if name is None:
        return None
    part = tag_part(name)
    return part if _TAG.match(part) else None


def dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def short_hex(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def choose_image(
    source: Path,
    images: list[tuple[str, list[str], str]],
    tag: str | None,
) -> tuple[int, str | None]:
    """Pick one of `images` ((key, names, label)): by tag, or the only one.

    Returns its position and the name it was picked by (or its first name). Entries sharing a
    key are one image listed under several names.
    """
    keys = dedupe(k for k, _, _ in images)
    all_names = dedupe(n for _, names, _ in images for n in names)
    if tag is None:
        if not keys:
            raise SourceError(f"{source} holds no image")
        if len(keys) > 1:
            listed = "; ".join(
                f"{label} ({', '.join(dedupe(n for k2, ns, _ in images if k2 == k for n in ns))})"
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
    hit_keys = dedupe(images[i][0] for i, _ in hits)
    if not hit_keys:
        there = ", ".join(all_names) if all_names else "none"
        raise SourceError(f"{source} has no image tagged {tag!r}; tags there: {there}")
    if len(hit_keys) > 1:
        listed = ", ".join(dedupe(n for _, n in hits))
        raise SourceError(
            f"the tag {tag!r} names {len(hit_keys)} different images in {source}: {listed}",
            hint="Give the full name:tag",
        )
    exact = [h for h in hits if h[1] == tag]
    return (exact or hits)[0][0], tag


def _dedupe_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(pairs))
