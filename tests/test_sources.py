"""hoist.core.sources: one list of formats that every caller asks, and what each source says
of itself, with no network.

The command line (`hoist push`), the push planning and the window's add sheet must recognise a
path the same way, so that adding a format is one module and one line in `formats.FORMATS`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from hoist.core import cli
from hoist.core.cli.exit_codes import EXIT_FAILED
from hoist.core.errors import SourceError
from hoist.core.oci.manifest import BUNDLE_MEDIA_TYPE, FILE_MEDIA_TYPE
from hoist.core.sources import formats, image_files, source
from hoist.core.sources.artifact import SplitOptions
from hoist.core.sources.content import FileRange, PlannedBlob
from hoist.core.sources.formats import (
    FORMATS,
    list_images,
    open_image,
    plan_artifact,
    push_as_image,
    recognise,
)
from hoist.core.sources.image import ImageEntry, ImagePlan, SourceKind
from hoist.core.sources.source import ImageFormat, Probe, SourceSummary
from hoist.gui.add.planning import classify_sources
from tests.support.images import (
    entries_for,
    write_docker_archive,
    write_oci_archive,
    write_oci_layout,
    write_tar,
)


def sample_paths(root: Path) -> dict[str, Path]:
    """One path of each kind, named by the format `FORMATS` should find."""
    root.mkdir()
    (root / "model.bin").write_bytes(b"weights" * 100)
    (root / "data").mkdir()
    (root / "data" / "a.txt").write_bytes(b"a")
    (root / "data" / "sub").mkdir()
    (root / "data" / "sub" / "b.txt").write_bytes(b"bb")
    write_tar(root / "plain.tar", entries_for({"a.txt": b"a"}))
    write_oci_layout(root / "layout", tag="v1")
    write_oci_archive(root / "oci.tar")
    write_docker_archive(root / "docker.tar")
    write_docker_archive(root / "docker25.tar", legacy=False)
    legacy = write_docker_archive(root / "for-gzip.tar")
    (root / "docker.tgz").write_bytes(gzip.compress(legacy.path.read_bytes()))
    legacy.path.unlink()
    return {
        "file": root / "model.bin",
        "folder": root / "data",
        "file (a tar that is no image)": root / "plain.tar",
        "OCI image layout": root / "layout",
        "OCI image archive": root / "oci.tar",
        "docker save archive": root / "docker.tar",
        "docker save archive (Docker 25+)": root / "docker25.tar",
        "compressed image archive": root / "docker.tgz",
    }


def test_each_path_has_the_format_its_content_says(tmp_path: Path) -> None:
    for expected, path in sample_paths(tmp_path / "s").items():
        found = recognise(path)
        assert found is not None, path
        assert found[0].name == expected.split(" (")[0], path


def test_the_command_line_and_the_window_recognise_the_same_images(tmp_path: Path) -> None:
    paths = sample_paths(tmp_path / "s")
    images = {name for name, p in paths.items() if isinstance(recognise(p)[0], ImageFormat)}  # type: ignore[index]
    assert images == {
        "OCI image layout",
        "OCI image archive",
        "docker save archive",
        "docker save archive (Docker 25+)",
        "compressed image archive",
    }
    for name, path in paths.items():
        # What `hoist push PATH` decides (cmd_push asks push_as_image), and the window's drop.
        by_cli = push_as_image([path]) is not None
        by_window = classify_sources([path]).kind == "image"
        assert by_cli == by_window == (name in images), name
        # Forced to files (`--as-files`), or among other paths, nothing is an image.
        assert push_as_image([path], as_files=True) is None
    everything = list(paths.values())
    assert push_as_image(everything) is None
    choice = classify_sources(everything)
    assert choice.kind == "files"
    for name in images:
        assert paths[name].name in choice.note


class FakeSource:
    """A format added by one line in FORMATS: recognised by its content (`FAKE` first)."""

    kind = SourceKind.OCI_LAYOUT

    def __init__(self, probe: Probe) -> None:
        self.path = probe.path

    def describe(self) -> SourceSummary:
        return SourceSummary(self.path, "fake image", 1, 4, self.list_images())

    def list_images(self) -> list[ImageEntry]:
        return [ImageEntry(["fake:v9"], None, "fake", ["linux/fake"])]

    def plan_image(self, **_options: object) -> ImagePlan:
        raise SourceError(f"the fake format planned {self.path.name}")


FAKE_FORMAT = ImageFormat("fake image", lambda probe: probe.head == b"FAKE", FakeSource)


def test_a_format_added_to_the_list_reaches_every_caller(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = tmp_path / "thing.bin"
    fake.write_bytes(b"FAKE")
    assert push_as_image([fake]) is None
    assert classify_sources([fake]).kind == "files"

    monkeypatch.setattr(formats, "FORMATS", (FAKE_FORMAT, *FORMATS))
    # The window: the drop is an image, the sheet lists its tags, planning reaches the format.
    assert classify_sources([fake]).kind == "image"
    assert list_images(fake)[0].tags == ["fake:v9"]
    with pytest.raises(SourceError, match=r"fake format planned thing\.bin"):
        open_image(fake)
    # The command line: `hoist push` plans it as an image (and fails in the fake's words,
    # before any registry is asked: the address below has nothing listening).
    code = cli.main(["push", "127.0.0.1:9/fake/x:v1", str(fake)])
    assert code == EXIT_FAILED
    assert "the fake format planned thing.bin" in capsys.readouterr().err
    # Pushed as files, it is a file like any other.
    plan = plan_artifact([fake], tmp_path / "staging")
    assert [b.name for b in plan.blobs] == ["thing.bin"]


def test_sources_describe_themselves(tmp_path: Path) -> None:
    paths = sample_paths(tmp_path / "s")

    def describe(name: str) -> SourceSummary:
        found = recognise(paths[name])
        assert found is not None
        return found[0].open(found[1]).describe()

    file = describe("file")
    assert (file.format, file.files, file.size) == ("file", 1, 700)
    folder = describe("folder")
    assert (folder.format, folder.files, folder.size) == ("folder", 2, 3)
    layout = describe("OCI image layout")
    assert layout.format == "OCI image layout" and layout.files >= 4
    assert [e.tags for e in layout.images] == [["v1"]]
    docker = describe("docker save archive")
    assert docker.size == paths["docker save archive"].stat().st_size
    assert docker.images and docker.images[0].platforms
    assert describe("compressed image archive").images == []


def test_artifacts_and_images_plan_the_same_kind_of_blob(tmp_path: Path) -> None:
    paths = sample_paths(tmp_path / "s")
    artifact = plan_artifact(
        [paths["file"], paths["folder"]], tmp_path / "staging", SplitOptions(part_size=300)
    )
    assert [b.name for b in artifact.blobs] == [
        "model.bin.part0001",
        "model.bin.part0002",
        "model.bin.part0003",
        "data/ (2 files)",  # the folder's small files, bundled
    ]
    image = open_image(paths["OCI image layout"])
    for blob in [*artifact.blobs, *image.blobs]:
        assert isinstance(blob, PlannedBlob)
        assert isinstance(blob.source, FileRange)
        assert blob.size == blob.source.length
    # A file's digest is taken as it is sent; an image's blobs were verified when planned.
    assert all(b.digest is None for b in artifact.blobs)
    assert [b.media_type for b in artifact.blobs] == [FILE_MEDIA_TYPE] * 3 + [BUNDLE_MEDIA_TYPE]
    assert all(b.digest and b.identity for b in image.blobs)
    assert image.blob_bytes == sum(b.size for b in image.blobs)


def test_a_tar_is_scanned_once_however_many_formats_ask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = write_oci_archive(tmp_path / "oci.tar")
    scans: list[Path] = []
    real = image_files.scan_tar

    def counting(path: Path) -> image_files.TarScan | None:
        scans.append(path)
        return real(path)

    monkeypatch.setattr(source, "scan_tar", counting)
    found = recognise(built.path)
    assert found is not None and found[0].name == "OCI image archive"
    found[0].open(found[1])
    assert scans == [built.path]


def test_a_path_no_format_takes_is_refused_by_name(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert recognise(fifo) is None
    assert push_as_image([fifo]) is None
    with pytest.raises(SourceError, match="not a regular file or a folder"):
        plan_artifact([fifo], tmp_path / "staging")
    with pytest.raises(SourceError, match="can't read"):
        recognise(tmp_path / "missing")


def test_every_format_module_is_in_the_list() -> None:
    """A module of hoist.core.sources that defines a FORMAT is asked, once, by FORMATS."""
    import importlib
    import pkgutil

    import hoist.core.sources

    defined = []
    for info in pkgutil.iter_modules(hoist.core.sources.__path__):
        module = importlib.import_module(f"hoist.core.sources.{info.name}")
        if hasattr(module, "FORMAT"):
            defined.append(module.FORMAT)
    assert sorted(f.name for f in FORMATS) == sorted(f.name for f in defined)
    assert len(set(map(id, FORMATS))) == len(FORMATS)
