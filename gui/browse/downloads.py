"""What Browse hands to the window's queue to download: the platform of an index, and the
reference pinned by digest."""

from __future__ import annotations

from hoist.core.oci.digest import is_digest
from hoist.core.registry.browse import (
    ManifestInfo,
)

# -- downloads, as data ---------------------------------------------------------------------


def download_platform(info: ManifestInfo, selected_key: str = "") -> tuple[str | None, str]:
    """The platform to download of an index, or a sentence saying what to choose.

    Returns (platform or None, problem sentence or "").
    """
    if not info.kind.is_index:
        return None, ""
    if selected_key.startswith("platform:"):
        return selected_key.split(":", 1)[1], ""
    runnable = [p.platform for p in info.platforms if not p.attestation and p.platform]
    if len(runnable) == 1:
        return runnable[0], ""
    if not runnable:
        return None, f"{info.reference} has no platform Hoist can pick to download"
    return None, (
        f"{info.reference} is a multi-platform image ({', '.join(runnable)}): "
        "select a platform in the details, then download"
    )


def download_reference(host: str, repository: str, reference: str, tag: str = "") -> str:
    """`host/repository@digest` (with `tag` kept for people to read: a tag moved while the
    download is paused must not mix two artifacts), or `host/repository:tag`."""
    name = f"{host}/{repository}"
    if is_digest(reference):
        return f"{name}:{tag}@{reference}" if tag else f"{name}@{reference}"
    return f"{name}:{reference}"
