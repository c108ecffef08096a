"""An OCI image layout in an uncompressed tar (`oci-archive`, or `tar cf x.tar myimage/`):
a source format, read with the layout's reader (`oci_layout.OciPlanner`), its members
addressed as byte ranges of the tar, never extracted.
"""

from __future__ import annotations

from hoist.core.sources.image import ImageEntry, ImagePlan, SourceKind
from hoist.core.sources.image_files import (
    Progress,
    TarContainer,
    check_pick,
    run_planner,
    tar_holds_layout,
)
from hoist.core.sources.oci_layout import OciPlanner
from hoist.core.sources.source import ImageFormat, Probe, SourceSummary


class OciArchiveSource:
    """A tar of an OCI image layout."""

    kind = SourceKind.OCI_ARCHIVE

    def __init__(self, probe: Probe) -> None:
        scan = probe.tar
        assert scan is not None  # detected as an OCI archive: a tar
        self.path = probe.path
        self._scan = scan

    def _planner(self) -> OciPlanner:
        container = TarContainer(self.path, self._scan.members, self._scan.prefix)
        return OciPlanner(container, docker_tags=False)

    def describe(self) -> SourceSummary:
        size = self.path.stat().st_size
        return SourceSummary(self.path, FORMAT.name, 1, size, self.list_images())

    def list_images(self) -> list[ImageEntry]:
        return self._planner().list_images()

    def plan_image(
        self,
        *,
        tag: str | None = None,
        platform: str | None = None,
        skopeo_compatible: bool = False,
        progress: Progress | None = None,
    ) -> ImagePlan:
        want = check_pick(tag, platform)
        return run_planner(self._planner(), self.kind, self.path, tag, want, progress)


def _detect(probe: Probe) -> bool:
    scan = probe.tar
    return scan is not None and tar_holds_layout(scan)


#: Asked after `docker_archive.FORMAT`: a Docker 25+ archive holds a layout too.
FORMAT = ImageFormat("OCI image archive", _detect, OciArchiveSource)
