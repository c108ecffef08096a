"""What a pull writes where: one job per file (from one blob or split parts), folder layer or
image blob. Every name is checked before anything is written: a title that would land outside
the target folder (`../x`, `/etc/x`, empty) is refused with a SourceError, and so are two
titles that would write the same place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hoist.core.errors import (
    ArtifactInvalid,
    SourceError,
)
from hoist.core.oci.annotations import (
    ORAS_DIGEST,
    ORAS_UNPACK,
    SPLIT_COUNT,
    SPLIT_FILE,
    SPLIT_FILE_DIGEST,
    SPLIT_FILE_SIZE,
    SPLIT_INDEX,
    SPLIT_OFFSET,
)
from hoist.core.oci.digest import is_digest
from hoist.core.registry.browse import (
    BlobInfo,
)
from hoist.core.sources.bundle import BUNDLE
from hoist.core.sources.folder import parse_mode
from hoist.core.transfer.fetch import FilePart, partial_path

_DRIVE = re.compile(r"^[A-Za-z]:")


# -- names ----------------------------------------------------------------------------------


def safe_parts(title: str) -> tuple[str, ...]:
    """The path components of a title, refusing any that would leave the target folder.

    Raises:
        SourceError: empty, absolute (`/x`, `\\\\x`, `C:x`), or with a `..` component.
    """
    if not title or not title.strip() or "\x00" in title:
        raise SourceError(
            f"the artifact names a file {title!r}, which is empty or not a file name",
            hint="Nothing was written; the artifact's titles must be file names",
        )
    if title.startswith(("/", "\\")) or _DRIVE.match(title):
        raise SourceError(
            f"the artifact names a file by the absolute path {title!r}",
            hint="Nothing was written; Hoist only writes inside the folder you name",
        )
    pieces = re.split(r"[/\\]", title)
    if ".." in pieces:
        raise SourceError(
            f"the artifact's file name {title!r} would escape the target folder",
            hint="Nothing was written; Hoist only writes inside the folder you name",
        )
    parts = tuple(p for p in title.split("/") if p not in ("", "."))
    if not parts:
        raise SourceError(f"the artifact names a file {title!r}, which is not a file name")
    return parts


def target_path(dest: Path, title: str) -> Path:
    """Where a title is written under `dest`; also refuses a path that an existing symlink
    inside `dest` would carry elsewhere."""
    target = dest.joinpath(*safe_parts(title))
    root = dest.resolve()
    resolved = target.parent.resolve() / target.name
    if resolved != root and root not in resolved.parents:
        raise SourceError(
            f"the artifact's file {title!r} would be written outside {dest} (through a link)",
            hint="Nothing was written; pull into a folder without links leading out of it",
        )
    return target


def check_digest(digest: str, what: str) -> None:
    if not is_digest(digest):
        raise ArtifactInvalid(
            f"{what} has the digest {digest[:80]!r}, which Hoist can't verify",
            hint="Hoist verifies sha256 digests",
        )


# -- planning -------------------------------------------------------------------------------


@dataclass
class PullJob:
    """One thing to write: a file (from one blob or split parts), or a folder layer."""

    title: str
    target: Path
    parts: list[FilePart]
    whole_digest: str | None
    kind: str
    tar_digest: str | None = None
    mode: int | None = None  # permission bits a folder's file had (`app.hoist.file.mode`)


def _split_job(dest: Path, name: str, layers: list[BlobInfo], manifest: dict[str, str]) -> PullJob:
    """A split file's parts, checked against their annotations: indices 1..count, offsets
    contiguous, sizes adding up to the file size."""
    first = layers[0].annotations
    try:
        count = int(first.get(SPLIT_COUNT, len(layers)))
    except ValueError as exc:
        raise ArtifactInvalid(f"the split file {name!r} has no valid part count") from exc
    if count != len(layers):
        raise ArtifactInvalid(f"the split file {name!r} has {len(layers)} of {count} parts")
    offset = 0
    for i, layer in enumerate(layers):
        ann = layer.annotations
        try:
            index, at = int(ann[SPLIT_INDEX]), int(ann.get(SPLIT_OFFSET, offset))
        except (KeyError, ValueError) as exc:
            raise ArtifactInvalid(f"a part of the split file {name!r} has no valid index") from exc
        if index != i + 1 or at != offset:
            raise ArtifactInvalid(
                f"the split file {name!r}: part {i + 1} says index {index} at offset {at}"
            )
        offset += layer.size
    declared = first.get(SPLIT_FILE_SIZE)
    if declared is not None and declared != str(offset):
        raise ArtifactInvalid(
            f"the split file {name!r}: its parts hold {offset} bytes, it says {declared}"
        )
    whole = first.get(SPLIT_FILE_DIGEST) or manifest.get(SPLIT_FILE_DIGEST)
    if whole is not None:
        check_digest(whole, f"the split file {name!r}")
    parts = [FilePart(layer.title or f"{name}.part{i + 1}", layer.digest, layer.size)
             for i, layer in enumerate(layers)]  # fmt: skip
    return PullJob(name, target_path(dest, name), parts, whole, "split")


def artifact_jobs(
    dest: Path, layers: list[BlobInfo], annotations: dict[str, str], untitled: bool = False
) -> tuple[list[PullJob], list[str]]:
    """Every file and folder of an artifact, all names checked before anything is written.

    A layer without a title is skipped (its digest listed), or with `untitled` written as a
    file named after its digest (`sha256-HEX`), as `pull_blob` names a blob."""
    jobs: list[PullJob] = []
    skipped: list[str] = []
    groups: dict[str, list[BlobInfo]] = {}
    for layer in layers:
        check_digest(layer.digest, f"layer {layer.title or layer.digest}")
        split_name = layer.annotations.get(SPLIT_FILE)
        if split_name is not None:
            if split_name not in groups:
                groups[split_name] = []
                jobs.append(PullJob(split_name, dest, [], None, "split-placeholder"))
            groups[split_name].append(layer)
            continue
        title = layer.title
        if title is None and untitled:
            title = layer.digest.replace(":", "-")
        if title is None:
            skipped.append(layer.digest)  # as oras: a layer without a name has no file
            continue
        target = target_path(dest, title)
        part = FilePart(title, layer.digest, layer.size)
        if layer.annotations.get(BUNDLE) is not None:  # small files: unpacked into the tree
            bundle = target.with_name(f".{target.name}.hoist-bundle")
            jobs.append(PullJob(title, bundle, [part], layer.digest, "bundle"))
        elif layer.annotations.get(ORAS_UNPACK) == "true":
            tar_digest = layer.annotations.get(ORAS_DIGEST)
            if tar_digest is not None:
                check_digest(tar_digest, f"the folder {title!r}")
            archive = target.with_name(f".{target.name}.hoist-folder")
            jobs.append(PullJob(title, archive, [part], layer.digest, "folder", tar_digest))
        else:
            mode = parse_mode(layer.annotations)
            jobs.append(PullJob(title, target, [part], layer.digest, "file", mode=mode))
    out = []
    for job in jobs:
        if job.kind == "split-placeholder":
            ordered = sorted(groups[job.title], key=_split_index)
            out.append(_split_job(dest, job.title, ordered, annotations))
        else:
            out.append(job)
    _check_collisions(dest, out)
    return out, skipped


def _split_index(layer: BlobInfo) -> int:
    try:
        return int(layer.annotations.get(SPLIT_INDEX, "0"))
    except ValueError:
        return 0


def _check_collisions(dest: Path, jobs: list[PullJob]) -> None:
    """No two jobs may write the same path, or one inside the other's file; an existing
    folder is never replaced by a folder layer unless asked (see `pull`)."""
    paths: dict[Path, str] = {}
    for job in jobs:
        final = dest.joinpath(*safe_parts(job.title))
        written: tuple[Path, ...] = (partial_path(job.target), job.target)
        if job.kind != "bundle":  # a bundle's title is a folder the files share (or its tar)
            written = (final, *written)
        for path in written:
            if path in paths and paths[path] != job.title:
                raise SourceError(
                    f"the artifact names {job.title!r} and {paths[path]!r}, which would be "
                    "written to the same place",
                    hint="Nothing was written; push the artifact again with distinct names",
                )
            paths[path] = job.title
    for path, title in paths.items():
        for parent in path.parents:
            if parent in paths and paths[parent] != title:
                raise SourceError(
                    f"the artifact names {title!r} inside {paths[parent]!r}, which is a file",
                    hint="Nothing was written",
                )


def image_jobs(dest: Path, config: BlobInfo | None, layers: list[BlobInfo]) -> list[PullJob]:
    """An image's config and layers as OCI-layout blobs (`blobs/sha256/<hex>`)."""
    jobs: list[PullJob] = []
    seen: set[str] = set()
    for blob, kind in [(config, "config")] + [(layer, "layer") for layer in layers]:
        if blob is None or blob.digest in seen:
            continue
        seen.add(blob.digest)
        check_digest(blob.digest, f"the {kind} {blob.digest}")
        algorithm, _, hexpart = blob.digest.partition(":")
        target = dest / "blobs" / algorithm / hexpart
        jobs.append(
            PullJob(
                blob.digest,
                target,
                [FilePart(blob.digest, blob.digest, blob.size)],
                blob.digest,
                kind,
            )
        )
    return jobs
