"""A folder as its files: one layer per file, titled with its path inside the folder.

`oras push reg/m:v1 model/config.json model/sub/x.txt` titles its layers `model/config.json` and
`model/sub/x.txt`, and `oras pull` writes them back under those paths; a folder pushed by Hoist
has that shape, so any ORAS client recreates its files. Each layer's bytes are the file itself
(a `FileRange`), read as it is sent: nothing is staged, nothing compressed. Files under 2 MiB
go together in bundles titled by their directory instead (`hoist.core.sources.bundle`:
thousands of small files must not cost thousands of round trips; oras unpacks them).

What the plain file layers can't say travels in annotations only Hoist reads:
- `app.hoist.file.mode` on each layer: the permission bits (`0755`), so executables stay so;
- `app.hoist.folder.empty-dirs` on the manifest: a JSON list of empty folders' paths.

A folder is scanned whole before anything is sent, and refused (with every offending path) if
it holds what a pull could not restore as it is: symbolic links (inward ones too: the file
layers have no way to say "link"; the packed form, `hoist push --pack`, keeps inward links),
FIFOs, sockets, devices, and files this user can't read. The sentences name no flag: the window
shows them too. `scan_folder` is the one place that policy lives.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from hoist.core.errors import SourceError
from hoist.core.oci.annotations import ORAS_UNPACK, TITLE
from hoist.core.oci.manifest import BUNDLE_MEDIA_TYPE, FILE_MEDIA_TYPE
from hoist.core.sources.bundle import BUNDLE, BUNDLE_FILES, BUNDLE_FORMAT, plan_bundles
from hoist.core.sources.content import KEPT_MODE_BITS, FileRange, FolderFile, PlannedBlob
from hoist.core.sources.source import FilesFormat, FilesPlan, Probe, SourceSummary

#: Layer annotation: the file's permission bits, four octal digits (`0644`, `0755`).
FILE_MODE = "app.hoist.file.mode"
#: Manifest annotation: JSON list of the folders that hold nothing, as `model/sub/empty`.
EMPTY_DIRS = "app.hoist.folder.empty-dirs"
#: How many refused paths a refusal names before it says "and N more".
_NAMED_AT_MOST = 10


@dataclass
class FolderScan:
    """What a folder holds, checked: its files (sorted by title) and empty folders."""

    root: Path
    files: list[FolderFile] = field(default_factory=list)
    empty_dirs: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _refusal_reason(path: Path, st: os.stat_result, root: Path) -> str | None:
    """Why a pull could not restore this entry as it is, or None when it can."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(path)
        resolved = (path.parent / target).resolve()
        inside = resolved == root or root in resolved.parents
        if not inside or os.path.isabs(target):
            return f"a link leading outside the folder (→ {target})"
        return f"a link (→ {target}), which a folder pushed as its files can't keep"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return None if os.access(path, os.R_OK | os.X_OK) else "a folder you can't read"
    if stat.S_ISREG(mode):
        return None if os.access(path, os.R_OK) else "a file you can't read"
    return "not a file or a folder"


def scan_folder(folder: Path) -> FolderScan:
    """Every file and empty folder under `folder`, or a SourceError naming what can't go.

    Blocking (it walks the whole tree): call it in a worker thread. Titles start with the
    folder's own name, as oras titles the files of `oras push reg model/a model/b/c`.

    Raises:
        SourceError: the folder holds links, FIFOs, sockets, devices or unreadable entries
            (all of them named, up to ten), before anything is sent.
    """
    root = folder.absolute()
    real_root = root.resolve()
    scan = FolderScan(root)
    refused: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        here = Path(dirpath)
        dirnames.sort()
        kept_dirs = []
        for name in dirnames:
            full = here / name
            st = full.lstat()
            reason = _refusal_reason(full, st, real_root)
            if reason is None:
                kept_dirs.append(name)
            else:
                refused.append(f"{full} is {reason}")
        dirnames[:] = kept_dirs  # os.walk does not follow links; refused folders aren't entered
        if not dirnames and not filenames:
            scan.empty_dirs.append(_title(root, here))
        for name in sorted(filenames):
            full = here / name
            st = full.lstat()
            reason = _refusal_reason(full, st, real_root)
            if reason is not None:
                refused.append(f"{full} is {reason}")
                continue
            mode = stat.S_IMODE(st.st_mode) & KEPT_MODE_BITS
            title = _title(root, full)
            scan.files.append(FolderFile(full, title, st.st_size, mode, st.st_mtime_ns, st.st_ino))
    if refused:
        more = len(refused) - _NAMED_AT_MOST
        named = "; ".join(refused[:_NAMED_AT_MOST]) + (f"; and {more} more" if more > 0 else "")
        raise SourceError(
            f"the folder {root} holds what a pull could not restore: {named}",
            hint="Nothing was sent; remove or replace these entries, then push again",
        )
    scan.files.sort(key=lambda f: f.title)
    return scan


def count_folder(folder: Path) -> tuple[int, int]:
    """(regular files, bytes) under `folder`, links not followed: what the window shows for a
    dropped folder before anything is checked (blocking: call it in a worker thread)."""
    files = size = 0
    for dirpath, _dirs, filenames in os.walk(folder):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return files, size


def _title(root: Path, path: Path) -> str:
    return "/".join((root.name, *path.relative_to(root).parts))


def _raise(exc: OSError) -> None:
    raise SourceError(f"can't read {exc.filename}: {exc.strerror or exc}") from exc


def empty_dirs_annotation(dirs: list[str]) -> dict[str, str]:
    """The manifest annotation naming empty folders (none when there are none)."""
    return {EMPTY_DIRS: json.dumps(sorted(dirs), separators=(",", ":"))} if dirs else {}


def parse_empty_dirs(annotations: dict[str, str]) -> list[str]:
    """The empty folders a manifest names, or SourceError when the annotation is malformed."""
    text = annotations.get(EMPTY_DIRS)
    if text is None:
        return []
    try:
        dirs = json.loads(text)
    except ValueError as exc:
        raise SourceError(f"the artifact's {EMPTY_DIRS} annotation is not JSON") from exc
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise SourceError(f"the artifact's {EMPTY_DIRS} annotation is not a list of paths")
    return dirs


def parse_mode(annotations: dict[str, str]) -> int | None:
    """A layer's permission bits, or None when it names none (or names them badly)."""
    text = annotations.get(FILE_MODE)
    if text is None:
        return None
    try:
        return int(text, 8) & KEPT_MODE_BITS
    except ValueError:
        return None


class FolderSource:
    """A folder pushed as its files (the `scan_folder` policy above): one layer per file."""

    def __init__(self, probe: Probe) -> None:
        self.path = probe.path

    def describe(self) -> SourceSummary:
        files, size = count_folder(self.path)
        return SourceSummary(self.path, FORMAT.name, files, size)

    def plan_files(self, part_size: int | None) -> FilesPlan:
        """Its files as layers, whole (split mode cuts single files only): the small ones in
        bundles (first), then one layer per file."""
        scan = scan_folder(self.path)
        return FilesPlan(_folder_blobs(self.path, scan.files), scan.empty_dirs)


def _folder_blobs(folder: Path, files: list[FolderFile]) -> list[PlannedBlob]:
    """Each bundle (titled by its directory, marked for unpacking as oras marks one), then
    each file alone. The tar's sha256, which the ORAS annotation `io.deis.oras.content.digest`
    carries, is added when the push is planned (`hoist.core.transfer.push`): from the digest
    cache when the bundle's files are unchanged, else by reading them once."""
    bundles, alone = plan_bundles(folder.absolute(), files)
    blobs = []
    for bundle in bundles:
        count = len(bundle.members)
        annotations = {
            TITLE: bundle.title,
            ORAS_UNPACK: "true",
            BUNDLE: BUNDLE_FORMAT,
            BUNDLE_FILES: str(count),
        }
        name = f"{bundle.title}/ ({count} files)"  # what progress and the window show
        blobs.append(PlannedBlob(name, bundle, BUNDLE_MEDIA_TYPE, annotations))
    blobs.extend(
        PlannedBlob(
            f.title, FileRange(f.path, 0, f.size), FILE_MEDIA_TYPE,
            {TITLE: f.title, FILE_MODE: f.mode_text},
        )
        for f in alone
    )  # fmt: skip
    return blobs


FORMAT = FilesFormat("folder", lambda probe: probe.is_dir, FolderSource)
