"""Media types and manifest documents (OCI image manifest and index, Docker schema 2)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from hoist.core.oci.digest import Descriptor

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_DATA = b"{}"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
#: Docker schema 1: registries no longer accept these, so Hoist neither pushes nor reads them.
DOCKER_SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
#: The artifact type oras gives an artifact when none is set.
DEFAULT_ARTIFACT_TYPE = "application/vnd.unknown.artifact.v1"
#: A file's layer: oras's default media type for files.
FILE_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
#: A packed folder's layer (a gzip tar, as oras packs folders).
FOLDER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
#: A bundle of a folder's small files: a gzip tar, as oras marks a directory (oras-py unpacks
#: only layers of this type).
BUNDLE_MEDIA_TYPE = FOLDER_MEDIA_TYPE

ACCEPT_ALL = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
IMAGE_CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})


def canonical_json(doc: object) -> bytes:
    """Compact, key-ordered JSON: the same document always gives the same digest."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def image_manifest(
    config: Descriptor,
    layers: Sequence[Descriptor],
    *,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """An OCI image manifest (schemaVersion 2), serialized canonically."""
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical_json(doc)
