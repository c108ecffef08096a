"""What a manifest is: its kind, layers, platforms and referrers, read for a window or a terminal.

Lists (catalog, tags) are in `listing`; deleting a manifest is in `deletion`.

Registry behaviours handled here, each named with the registry that shows it:
- Registries without the referrers API answer 404 (distribution 2.8: a text "404 page not
  found"); clients then look for the `sha256-<hex>` tag schema (as oras does).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from hoist.core.errors import NotFound, RegistryError
from hoist.core.oci.annotations import CREATED, TITLE
from hoist.core.oci.digest import is_digest
from hoist.core.oci.manifest import (
    ACCEPT_ALL,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    IMAGE_CONFIG_TYPES,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)
from hoist.core.oci.reference import DOCKER_HUB, DOCKER_HUB_API
from hoist.core.registry.answers import read_capped
from hoist.core.registry.client import MAX_MANIFEST, ManifestData, RegistryClient, next_link
from hoist.core.registry.listing import same_origin

DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
#: Docker (buildx) marks attestation manifests in an index with this annotation.
DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"
#: Child manifests (and their configs) fetched at once when sizing an index.
INDEX_CONCURRENCY = 6
#: Children of an index whose manifests are fetched to size them: what a window or a terminal
#: shows. The rest are listed from the index alone, so a 20,000-entry index costs one request.
MAX_SIZED_CHILDREN = 64

T = TypeVar("T")


# -- manifests ------------------------------------------------------------------------------


class ManifestKind(StrEnum):
    OCI_IMAGE = "oci-image"
    OCI_INDEX = "oci-index"
    DOCKER_IMAGE = "docker-image"
    DOCKER_LIST = "docker-manifest-list"
    ARTIFACT = "oci-artifact"

    @property
    def is_index(self) -> bool:
        return self in (ManifestKind.OCI_INDEX, ManifestKind.DOCKER_LIST)


@dataclass(frozen=True)
class BlobInfo:
    """A config or layer as the manifest describes it."""

    digest: str
    size: int
    media_type: str
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str | None:
        return self.annotations.get(TITLE)

    def to_json(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "size": self.size,
            "media_type": self.media_type,
            "title": self.title,
            "annotations": self.annotations,
        }


@dataclass(frozen=True)
class PlatformInfo:
    """One child of an index, with the size of its config and layers when it could be read."""

    digest: str
    media_type: str
    manifest_size: int
    platform: str  # "linux/arm64/v8", or "" when the index does not say
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    content_size: int | None = None  # config + layers; None when the child could not be read
    created: str | None = None
    blobs: tuple[str, ...] = ()  # digests of its config and layers (for de-duplicated totals)

    @property
    def attestation(self) -> bool:
        """A buildx attestation (SBOM, provenance) rather than a runnable platform."""
        return self.annotations.get(DOCKER_REFERENCE_TYPE) == "attestation-manifest"

    def to_json(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "manifest_size": self.manifest_size,
            "platform": self.platform,
            "artifact_type": self.artifact_type,
            "annotations": self.annotations,
            "size": self.content_size,
            "created": self.created,
            "attestation": self.attestation,
        }


@dataclass(frozen=True)
class ReferrerInfo:
    """A manifest whose `subject` is the inspected one (a signature, an SBOM...)."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "media_type": self.media_type,
            "size": self.size,
            "artifact_type": self.artifact_type,
            "annotations": self.annotations,
        }


@dataclass
class ManifestInfo:
    """What `hoist inspect` shows of one manifest.

    `warnings` lists what could not be read (a child manifest or config the registry lacks):
    the rest is still worth showing, and the gaps are said rather than hidden.
    `referrers` is None when the registry offers neither the referrers API nor the tag schema.
    """

    reference: str
    repository: str
    digest: str
    media_type: str
    kind: ManifestKind
    manifest_size: int
    artifact_type: str | None = None
    config: BlobInfo | None = None
    layers: list[BlobInfo] = field(default_factory=list)
    platforms: list[PlatformInfo] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    subject: str | None = None
    created: str | None = None
    total_size: int = 0
    pull_command: str = ""
    referrers: list[ReferrerInfo] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def is_artifact(self) -> bool:
        return self.kind == ManifestKind.ARTIFACT or (
            self.kind.is_index and self.artifact_type is not None
        )

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "repository": self.repository,
            "digest": self.digest,
            "media_type": self.media_type,
            "kind": self.kind.value,
            "artifact_type": self.artifact_type,
            "manifest_size": self.manifest_size,
            "config": None if self.config is None else self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
            "platforms": [p.to_json() for p in self.platforms],
            "annotations": self.annotations,
            "subject": self.subject,
            "created": self.created,
            "total_size": self.total_size,
            "pull_command": self.pull_command,
            "referrers": None if self.referrers is None else [r.to_json() for r in self.referrers],
            "warnings": self.warnings,
        }


def parse_manifest(data: bytes, *, what: str = "manifest") -> dict[str, Any]:
    """The manifest as a JSON object, or a RegistryError saying it is not one."""
    try:
        doc = json.loads(data)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise RegistryError(
            f"{what}: the registry's manifest is not valid JSON ({exc})",
            status=200,
            hint="The registry holds a damaged manifest, or a proxy answered in its place",
        ) from exc
    if not isinstance(doc, dict):
        raise RegistryError(f"{what}: the registry's manifest is not a JSON object", status=200)
    return doc


def _malformed(what: str, detail: str) -> RegistryError:
    return RegistryError(
        f"{what}: malformed manifest ({detail})",
        status=200,
        hint="The registry holds a manifest Hoist can't read",
    )


def _annotations(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def parse_descriptor(obj: object, *, what: str, where: str) -> BlobInfo:
    """A descriptor (`{mediaType, digest, size, annotations}`), checked field by field."""
    if not isinstance(obj, dict):
        raise _malformed(what, f"{where} is not an object")
    digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
    if not isinstance(digest, str) or ":" not in digest:
        raise _malformed(what, f"{where} has no digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _malformed(what, f"{where} has no valid size")
    if not isinstance(media_type, str):
        raise _malformed(what, f"{where} has an invalid mediaType")
    return BlobInfo(digest, size, media_type, _annotations(obj.get("annotations")))


def classify(
    doc: dict[str, Any], content_type: str = "", *, what: str = "manifest"
) -> ManifestKind:
    """Which kind of manifest this is, from its `mediaType` (else the Content-Type, else shape).

    An image manifest is an artifact when it names an `artifactType` or its config is not an
    image config (oras, Helm, Hoist's own files).
    """
    media_type = doc.get("mediaType") or content_type
    if media_type in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise RegistryError(
            f"{what}: a Docker schema 1 manifest, which Hoist does not read",
            status=200,
            hint="Schema 1 is deprecated; push the image again with a current client",
        )
    if media_type in INDEX_TYPES or (not media_type and "manifests" in doc):
        return ManifestKind.DOCKER_LIST if media_type == DOCKER_LIST else ManifestKind.OCI_INDEX
    if media_type in (OCI_MANIFEST, DOCKER_MANIFEST) or (not media_type and "layers" in doc):
        config = doc.get("config")
        config_type = config.get("mediaType") if isinstance(config, dict) else None
        if media_type == DOCKER_MANIFEST:
            return ManifestKind.DOCKER_IMAGE
        if doc.get("artifactType") or config_type not in IMAGE_CONFIG_TYPES:
            return ManifestKind.ARTIFACT
        return ManifestKind.OCI_IMAGE
    raise RegistryError(
        f"{what}: unknown manifest type {str(media_type)[:100]!r}",
        status=200,
        hint="Hoist reads OCI and Docker schema 2 manifests and indexes",
    )


def display_name(client: RegistryClient, repository: str) -> str:
    """`host/repository` as people write it (Docker Hub's API host shows as docker.io)."""
    host = DOCKER_HUB if client.host == DOCKER_HUB_API else client.host
    return f"{host}/{repository}"


def reference_text(client: RegistryClient, repository: str, reference: str) -> str:
    sep = "@" if is_digest(reference) else ":"
    return f"{display_name(client, repository)}{sep}{reference}"


@dataclass(frozen=True)
class ImageParts:
    """The parts of an image (or artifact) manifest that inspect and pull need."""

    config: BlobInfo | None
    layers: list[BlobInfo]
    annotations: dict[str, str]
    artifact_type: str | None
    subject: str | None


def parse_image(doc: dict[str, Any], *, what: str) -> ImageParts:
    """Config, layers and annotations of an image or artifact manifest."""
    layers_raw = doc.get("layers")
    if layers_raw is None:
        layers_raw = []
    if not isinstance(layers_raw, list):
        raise _malformed(what, "`layers` is not a list")
    config = None
    if doc.get("config") is not None:
        config = parse_descriptor(doc["config"], what=what, where="the config")
    layers = [
        parse_descriptor(layer, what=what, where=f"layer {i + 1}")
        for i, layer in enumerate(layers_raw)
    ]
    subject = doc.get("subject")
    subject_digest = subject.get("digest") if isinstance(subject, dict) else None
    artifact_type = doc.get("artifactType")
    return ImageParts(
        config,
        layers,
        _annotations(doc.get("annotations")),
        artifact_type if isinstance(artifact_type, str) else None,
        subject_digest if isinstance(subject_digest, str) else None,
    )


def _platform_text(value: object) -> str:
    if not isinstance(value, dict):
        return ""
    parts = [str(value.get(k, "")) for k in ("os", "architecture", "variant")]
    return "/".join(p for p in parts if p)


async def fetch_manifest(
    client: RegistryClient, repository: str, reference: str
) -> tuple[ManifestData, dict[str, Any]]:
    """GET a manifest, check it against a digest reference, and parse it."""
    data = await client.get_manifest(repository, reference, ACCEPT_ALL)
    what = reference_text(client, repository, reference)
    if is_digest(reference) and data.digest != reference:
        raise RegistryError(
            f"{what}: the registry sent a manifest whose digest is {data.digest}",
            status=200,
            hint="The registry or a proxy altered the manifest; don't trust this copy",
        )
    return data, parse_manifest(data.data, what=what)


async def _config_created(
    client: RegistryClient, repository: str, config: BlobInfo, warnings: list[str]
) -> str | None:
    """The `created` date in an image config (blob read up to MAX_MANIFEST bytes)."""
    if config.size > MAX_MANIFEST:
        warnings.append(f"the image config ({config.size} bytes) is too large to read")
        return None
    try:
        response, _ = await client.stream_blob(repository, config.digest)
        body = await read_capped(response, MAX_MANIFEST, strict=True)
    except NotFound:
        warnings.append(f"the registry does not have the image config {config.digest}")
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        warnings.append(f"the image config {config.digest} is not valid JSON")
        return None
    created = doc.get("created") if isinstance(doc, dict) else None
    return created if isinstance(created, str) and created else None


async def gather_bounded(calls: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run calls with at most `limit` at once; the first error cancels the rest and is raised
    as itself (not as an ExceptionGroup), so callers see Hoist's typed errors."""
    semaphore = asyncio.Semaphore(limit)
    results: dict[int, T] = {}

    async def one(i: int, call: Callable[[], Awaitable[T]]) -> None:
        async with semaphore:
            results[i] = await call()

    try:
        async with asyncio.TaskGroup() as group:
            for i, call in enumerate(calls):
                group.create_task(one(i, call))
    except BaseExceptionGroup as eg:
        raise first_error(eg) from None
    return [results[i] for i in range(len(calls))]


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf exception of a (possibly nested) exception group."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _child_listed(entry: object, index: int, what: str) -> PlatformInfo:
    """One child of an index as the index itself describes it (no size of its content)."""
    descriptor = parse_descriptor(entry, what=what, where=f"manifest {index + 1}")
    raw = entry if isinstance(entry, dict) else {}
    artifact_type = raw.get("artifactType")
    return PlatformInfo(
        digest=descriptor.digest,
        media_type=descriptor.media_type,
        manifest_size=descriptor.size,
        platform=_platform_text(raw.get("platform")),
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        annotations=descriptor.annotations,
    )


async def _child_info(
    client: RegistryClient, repository: str, entry: object, index: int, what: str
) -> tuple[PlatformInfo, list[str]]:
    """Size (and date) of one child of an index, from its manifest and config."""
    base = _child_listed(entry, index, what)
    descriptor = parse_descriptor(entry, what=what, where=f"manifest {index + 1}")
    warnings: list[str] = []
    try:
        data, doc = await fetch_manifest(client, repository, descriptor.digest)
    except NotFound:
        return base, [f"the registry does not have the child manifest {descriptor.digest}"]
    child_what = f"{what} → {descriptor.digest}"
    kind = classify(doc, data.media_type, what=child_what)
    if kind.is_index:
        return base, [f"{descriptor.digest} is itself an index; its size is not counted"]
    image = parse_image(doc, what=child_what)
    blobs = ([image.config] if image.config else []) + image.layers
    created = image.annotations.get(CREATED)
    if created is None and kind != ManifestKind.ARTIFACT and image.config is not None:
        created = await _config_created(client, repository, image.config, warnings)
    info = PlatformInfo(
        digest=base.digest,
        media_type=base.media_type,
        manifest_size=base.manifest_size,
        platform=base.platform,
        artifact_type=base.artifact_type or image.artifact_type,
        annotations=base.annotations,
        content_size=sum(b.size for b in blobs),
        created=created,
        blobs=tuple(b.digest for b in blobs),
    )
    return info, warnings


async def inspect(
    client: RegistryClient,
    repository: str,
    reference: str,
    *,
    with_referrers: bool = True,
    concurrency: int = INDEX_CONCURRENCY,
    sized_children: int = MAX_SIZED_CHILDREN,
) -> ManifestInfo:
    """Fetch a manifest and describe it: kind, files or platforms, sizes, date, pull command.

    For an index, the first `sized_children` child manifests are fetched (at most
    `concurrency` at once) to size them, the rest only listed;
    for an image, its config is read for the `created` date when no annotation gives one.

    Raises:
        NotFound: no such repository or reference.
        RegistryError: the manifest is not JSON, or not a manifest Hoist knows.
    """
    data, doc = await fetch_manifest(client, repository, reference)
    what = reference_text(client, repository, reference)
    kind = classify(doc, data.media_type, what=what)
    media_type = str(doc.get("mediaType") or data.media_type)
    info = ManifestInfo(
        reference=what,
        repository=repository,
        digest=data.digest,
        media_type=media_type,
        kind=kind,
        manifest_size=len(data.data),
        annotations=_annotations(doc.get("annotations")),
    )
    artifact_type = doc.get("artifactType")
    info.artifact_type = artifact_type if isinstance(artifact_type, str) else None
    subject = doc.get("subject")
    if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
        info.subject = subject["digest"]
    info.created = info.annotations.get(CREATED)
    if kind.is_index:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise _malformed(what, "`manifests` is not a list")
        calls = [
            functools.partial(_child_info, client, repository, entry, i, what)
            for i, entry in enumerate(entries[:sized_children])
        ]
        for platform, warnings in await gather_bounded(calls, max(1, concurrency)):
            info.platforms.append(platform)
            info.warnings.extend(warnings)
        rest = entries[sized_children:]
        info.platforms += [_child_listed(e, i, what) for i, e in enumerate(rest, sized_children)]
        if rest:
            info.warnings.append(
                f"the index lists {len(entries)} manifests; the sizes of the {len(rest)} after "
                f"the first {sized_children} were not fetched and are not counted"
            )
        unique: dict[str, int] = {}
        for platform in info.platforms:
            if platform.content_size is not None:
                unique[platform.digest] = platform.content_size
        info.total_size = sum(unique.values())
        if info.created is None:
            dates = [p.created for p in info.platforms if p.created and not p.attestation]
            info.created = max(dates) if dates else None
    else:
        image = parse_image(doc, what=what)
        info.config, info.layers = image.config, image.layers
        info.total_size = (image.config.size if image.config else 0) + sum(
            layer.size for layer in image.layers
        )
        if info.created is None and kind != ManifestKind.ARTIFACT and image.config is not None:
            info.created = await _config_created(client, repository, image.config, info.warnings)
    plain = client.base_url.scheme == "http"
    # oras speaks TLS unless told; docker needs the host in its insecure-registries instead.
    tool = (
        ("oras pull --plain-http" if plain else "oras pull") if info.is_artifact else "docker pull"
    )
    info.pull_command = f"{tool} {what}"
    if with_referrers:
        info.referrers = await referrers(client, repository, data.digest)
    return info


async def referrers(
    client: RegistryClient, repository: str, digest: str, *, artifact_type: str | None = None
) -> list[ReferrerInfo] | None:
    """Manifests that refer to `digest` (signatures, SBOMs), newest API first.

    Uses `GET /v2/<name>/referrers/<digest>` where the registry offers it; otherwise the
    `sha256-<hex>` tag schema (an index that oras maintains for such registries).
    Returns None when the registry offers neither.
    """
    what = f"referrers of {display_name(client, repository)}@{digest}"
    out: list[ReferrerInfo] = []
    path = f"/v2/{repository}/referrers/{digest}"
    if artifact_type:
        path += f"?artifactType={quote(artifact_type, safe='')}"
    url: str | httpx.URL = path
    seen: set[str] = set()
    try:
        while True:
            response = await client.request(
                "GET", url, headers={"Accept": OCI_INDEX}, what=what, ok=(200,)
            )
            body = await read_capped(response, MAX_MANIFEST, strict=True)
            seen.add(str(response.request.url))
            out.extend(_referrer_list(parse_manifest(body, what=what), what, artifact_type))
            following = next_link(response.headers.get("Link"), response.request.url)
            if (
                following is None
                or str(following) in seen
                or not same_origin(following, response.request.url)
            ):
                return out
            url = following
    except RegistryError as exc:
        if exc.status not in (400, 404, 405) or out:
            raise
    algorithm, _, hexpart = digest.partition(":")
    try:
        data = await client.get_manifest(repository, f"{algorithm}-{hexpart}", (OCI_INDEX,))
    except NotFound:
        return None
    return _referrer_list(parse_manifest(data.data, what=what), what, artifact_type)


def _referrer_list(doc: dict[str, Any], what: str, artifact_type: str | None) -> list[ReferrerInfo]:
    entries = doc.get("manifests") or []
    if not isinstance(entries, list):
        raise _malformed(what, "`manifests` is not a list")
    out = []
    for i, entry in enumerate(entries):
        d = parse_descriptor(entry, what=what, where=f"referrer {i + 1}")
        kind = entry.get("artifactType") if isinstance(entry, dict) else None
        kind = kind if isinstance(kind, str) else None
        if artifact_type and kind != artifact_type:
            continue
        out.append(ReferrerInfo(d.digest, d.media_type, d.size, kind, d.annotations))
    return out


__all__ = [
    "BlobInfo",
    "ManifestInfo",
    "ManifestKind",
    "PlatformInfo",
    "ReferrerInfo",
    "classify",
    "inspect",
    "parse_manifest",
    "referrers",
]
