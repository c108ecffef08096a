"""hoist.core.sources.image: detecting image sources and planning their push, with no network.

The images come from tests/support/images.py; where skopeo is installed, it checks that those
builders write what real tools accept, and that the manifest Hoist generates for a legacy
`docker save` archive is byte for byte the one skopeo pushes.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from hoist.core.errors import SourceError
from hoist.core.oci.digest import sha256_bytes
from hoist.core.oci.manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from hoist.core.oci.manifest import DOCKER_LIST as DOCKER_MANIFEST_LIST
from hoist.core.sources.content import FileRange
from hoist.core.sources.formats import detect_source, list_images, open_image
from hoist.core.sources.image import ImagePlan, SourceKind
from tests.support.images import (
    ImageSpec,
    LayerSpec,
    TarEntry,
    build_image,
    entries_for,
    layout_files,
    make_layer_tar,
    write_docker_archive,
    write_files,
    write_oci_archive,
    write_oci_layout,
    write_tar,
)

SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")


def read_range(source: FileRange | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    with open(source.path, "rb") as f:
        f.seek(source.offset)
        return f.read(source.length)


def blob_bytes(plan: ImagePlan) -> dict[str, bytes]:
    return {b.digest: read_range(b.source) for b in plan.blobs}


def hexpart(digest: str) -> str:
    return digest.split(":", 1)[1]


def skopeo(*args: str) -> bytes:
    assert SKOPEO is not None
    done = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


# --------------------------------------------------------------------------------------------
# Builders


def test_make_layer_tar_is_a_real_deterministic_tar(tmp_path: Path) -> None:
    files = {"etc/a.txt": b"alpha\n", "b.bin": bytes(range(256))}
    raw = make_layer_tar(files, gzip=False)
    assert raw == make_layer_tar(files, gzip=False)
    zipped = make_layer_tar(files, gzip=True)
    assert zipped == make_layer_tar(files, gzip=True)
    assert zipped[:2] == b"\x1f\x8b" and gzip.decompress(zipped) == raw
    (tmp_path / "l.tar").write_bytes(raw)
    with tarfile.open(tmp_path / "l.tar") as tf:
        assert {m.name for m in tf.getmembers()} == {"etc", "etc/a.txt", "b.bin"}
        member = tf.extractfile("etc/a.txt")
        assert member is not None and member.read() == b"alpha\n"


def test_builders_are_reproducible(tmp_path: Path) -> None:
    a = write_oci_archive(tmp_path / "a.tar", multi_arch=True)
    b = write_oci_archive(tmp_path / "b.tar", multi_arch=True)
    assert a.path.read_bytes() == b.path.read_bytes()
    c = write_docker_archive(tmp_path / "c.tar")
    d = write_docker_archive(tmp_path / "d.tar")
    assert c.path.read_bytes() == d.path.read_bytes()


@needs_skopeo
def test_skopeo_accepts_the_oci_layouts(tmp_path: Path) -> None:
    single = write_oci_layout(tmp_path / "single", tag="v1")
    assert skopeo("inspect", "--raw", f"oci:{single.path}:v1") == single.images[0].manifest
    skopeo("copy", "-q", f"oci:{single.path}:v1", f"dir:{tmp_path / 'out1'}")
    for digest, data in single.images[0].blobs.items():
        assert (tmp_path / "out1" / hexpart(digest)).read_bytes() == data

    multi = write_oci_layout(tmp_path / "multi", multi_arch=True, tag="m")
    assert skopeo("inspect", "--raw", f"oci:{multi.path}:m") == multi.index
    skopeo("copy", "-q", "--all", f"oci:{multi.path}:m", f"dir:{tmp_path / 'out2'}")
    assert (tmp_path / "out2" / "manifest.json").read_bytes() == multi.index

    archive = write_oci_archive(tmp_path / "x.tar", tag="v2")
    assert (
        skopeo("inspect", "--raw", f"oci-archive:{archive.path}:v2") == archive.images[0].manifest
    )


@needs_skopeo
def test_skopeo_accepts_the_docker_archives(tmp_path: Path) -> None:
    legacy = write_docker_archive(tmp_path / "legacy.tar", repo_tags=["example/app:v1"])
    raw = json.loads(skopeo("inspect", "--raw", f"docker-archive:{legacy.path}"))
    assert raw["config"]["digest"] == legacy.images[0].config_digest
    assert [x["digest"] for x in raw["layers"]] == legacy.images[0].diff_ids
    skopeo("copy", "-q", f"docker-archive:{legacy.path}", f"dir:{tmp_path / 'out'}")

    new = write_docker_archive(tmp_path / "new.tar", legacy=False, repo_tags=["busybox:latest"])
    assert skopeo("inspect", "--raw", f"oci-archive:{new.path}") == new.images[0].manifest
    raw = json.loads(skopeo("inspect", "--raw", f"docker-archive:{new.path}"))
    assert raw["config"]["digest"] == new.images[0].config_digest


# --------------------------------------------------------------------------------------------
# Detection


def test_detect_oci_layout_folder(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "layout")
    assert detect_source(layout.path) is SourceKind.OCI_LAYOUT
    assert detect_source(tmp_path) is None


def test_detect_by_content_not_by_name(tmp_path: Path) -> None:
    write_oci_archive(tmp_path / "image.tar")
    os.rename(tmp_path / "image.tar", tmp_path / "weights.bin")
    assert detect_source(tmp_path / "weights.bin") is SourceKind.OCI_ARCHIVE

    write_docker_archive(tmp_path / "saved.dat")
    assert detect_source(tmp_path / "saved.dat") is SourceKind.DOCKER_ARCHIVE

    write_docker_archive(tmp_path / "new", legacy=False)
    assert detect_source(tmp_path / "new") is SourceKind.DOCKER_OCI_ARCHIVE


def test_detect_layout_tarred_with_its_folder(tmp_path: Path) -> None:
    built = write_oci_archive(tmp_path / "x.tar", prefix="myimage/")
    assert detect_source(built.path) is SourceKind.OCI_ARCHIVE
    assert open_image(built.path).top.data == built.images[0].manifest


def test_detect_plain_files(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "random").write_bytes(os.urandom(4096))
    (tmp_path / "data.json").write_bytes(b'{"manifests": []}')
    write_tar(tmp_path / "plain.tar", entries_for({"a.txt": b"a", "dir/b.txt": b"b"}))
    # A tar with a manifest.json that is not docker's is not an image.
    write_tar(tmp_path / "ext.tar", entries_for({"manifest.json": b'{"name": "ext"}', "x": b""}))
    # Nor is a folder holding only an index.json.
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "index.json").write_bytes(b"{}")
    for name in ("empty", "random", "data.json", "plain.tar", "ext.tar", "folder"):
        assert detect_source(tmp_path / name) is None, name
    with pytest.raises(SourceError, match="not a container image"):
        open_image(tmp_path / "plain.tar")


def test_compressed_image_archive_is_refused_clearly(tmp_path: Path) -> None:
    built = write_docker_archive(tmp_path / "img.tar")
    (tmp_path / "img.tgz").write_bytes(gzip.compress(built.path.read_bytes()))
    assert detect_source(tmp_path / "img.tgz") is SourceKind.COMPRESSED_ARCHIVE
    with pytest.raises(SourceError, match="compressed") as info:
        open_image(tmp_path / "img.tgz")
    assert "gunzip" in info.value.sentence()

    oci = write_oci_archive(tmp_path / "oci.tar")
    (tmp_path / "oci.tar.gz").write_bytes(gzip.compress(oci.path.read_bytes()))
    assert detect_source(tmp_path / "oci.tar.gz") is SourceKind.COMPRESSED_ARCHIVE

    # A gzip of anything else is just a file.
    plain = write_tar(tmp_path / "p.tar", entries_for({"blobs/x": b"1", "index.json": b"{}"}))
    (tmp_path / "p.tgz").write_bytes(gzip.compress(plain.read_bytes()))
    (tmp_path / "r.gz").write_bytes(gzip.compress(os.urandom(1000)))
    assert detect_source(tmp_path / "p.tgz") is None
    assert detect_source(tmp_path / "r.gz") is None


def test_detect_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="can't read"):
        detect_source(tmp_path / "nope")


# --------------------------------------------------------------------------------------------
# Plans: OCI layouts


def test_plan_oci_layout(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "layout", tag="v1")
    image = built.images[0]
    plan = open_image(built.path)
    assert plan.kind is SourceKind.OCI_LAYOUT
    assert plan.source == built.path.absolute()
    assert plan.tags == ["v1"]
    assert plan.platforms == ["linux/amd64"]
    assert len(plan.manifests) == 1
    top = plan.top
    assert (top.media_type, top.digest, top.data, top.tag) == (
        OCI_MANIFEST,
        image.manifest_digest,
        image.manifest,
        "v1",
    )
    assert sha256_bytes(top.data) == top.digest
    descriptors = {b.digest: b for b in plan.blobs}
    assert descriptors[image.config_digest].media_type == image.config_media_type
    assert descriptors[image.config_digest].size == len(image.config)
    for digest, media_type, data in zip(
        image.layer_digests, image.layer_media_types, image.layers, strict=True
    ):
        assert descriptors[digest].media_type == media_type
        assert descriptors[digest].size == len(data)
    assert blob_bytes(plan) == image.blobs
    assert all(b.identity is not None for b in plan.blobs)
    # Layouts keep one file per blob: each range is a whole file of blobs/.
    for b in plan.blobs:
        assert isinstance(b.source, FileRange)
        assert b.source.offset == 0
        assert b.source.path == built.path.absolute() / "blobs" / "sha256" / hexpart(b.digest)


def test_plan_oci_archive_layers_are_ranges_of_the_tar(tmp_path: Path) -> None:
    built = write_oci_archive(tmp_path / "image.tar", tag="v2")
    plan = open_image(built.path)
    assert plan.kind is SourceKind.OCI_ARCHIVE
    assert plan.top.data == built.images[0].manifest
    assert plan.top.tag == "v2"
    size = built.path.stat().st_size
    for b in plan.blobs:
        assert isinstance(b.source, FileRange)
        assert b.source.path == built.path.absolute()
        assert b.source.offset > 0 and b.source.offset + b.source.length <= size
        assert b.source.offset % 512 == 0
    assert blob_bytes(plan) == built.images[0].blobs


def test_layer_range_in_a_tar_reads_back_exactly_the_layer(tmp_path: Path) -> None:
    layer = make_layer_tar({"big.bin": os.urandom(300_000)}, gzip=True)
    spec = ImageSpec(layers=(LayerSpec({"big.bin": b""}),))
    built = build_image(spec)
    files, _ = layout_files(images=[spec])
    # Swap in a layer of odd size so its end is not block aligned.
    del files[f"blobs/sha256/{hexpart(built.layer_digests[0])}"]
    files[f"blobs/sha256/{hexpart(sha256_bytes(layer))}"] = layer
    manifest = json.loads(built.manifest)
    manifest["layers"][0].update(
        mediaType="application/vnd.oci.image.layer.v1.tar+gzip",
        digest=sha256_bytes(layer),
        size=len(layer),
    )
    manifest_bytes = json.dumps(manifest).encode()
    del files[f"blobs/sha256/{hexpart(built.manifest_digest)}"]
    files[f"blobs/sha256/{hexpart(sha256_bytes(manifest_bytes))}"] = manifest_bytes
    files["index.json"] = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": sha256_bytes(manifest_bytes),
                    "size": len(manifest_bytes),
                }
            ],
        }
    ).encode()
    tar = write_tar(tmp_path / "odd.tar", entries_for(files))
    plan = open_image(tar)
    (blob,) = [b for b in plan.blobs if b.digest == sha256_bytes(layer)]
    assert isinstance(blob.source, FileRange)
    assert read_range(blob.source) == layer
    with tarfile.open(tar) as tf:
        info = tf.getmember(f"blobs/sha256/{hexpart(sha256_bytes(layer))}")
        assert (blob.source.offset, blob.source.length) == (info.offset_data, info.size)


def test_plan_multi_arch_index_pushes_children_first(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "multi", multi_arch=True, tag="multi")
    plan = open_image(built.path)
    assert [m.digest for m in plan.manifests] == [
        built.images[0].manifest_digest,
        built.images[1].manifest_digest,
        built.index_digest,
    ]
    assert plan.top.media_type == OCI_INDEX
    assert plan.top.data == built.index
    assert [m.tag for m in plan.manifests] == [None, None, "multi"]
    assert plan.manifests[1].platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    for m in plan.manifests:
        assert built.manifests[m.digest] == m.data
    assert blob_bytes(plan) == built.blobs
    assert plan.platforms == ["linux/amd64", "linux/arm64/v8"]


def test_docker_manifest_list(tmp_path: Path) -> None:
    specs = [
        ImageSpec(architecture="amd64", docker_media_types=True),
        ImageSpec(architecture="arm", variant="v7", docker_media_types=True),
    ]
    built = write_oci_layout(tmp_path / "l", images=specs, multi_arch=True, docker_index=True)
    plan = open_image(built.path)
    assert [m.media_type for m in plan.manifests] == [
        DOCKER_MANIFEST,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ]
    arm = open_image(built.path, platform="linux/arm/v7")
    assert [m.digest for m in arm.manifests] == [built.images[1].manifest_digest]
    # arm without a variant means v7, as in containerd.
    assert open_image(built.path, platform="linux/arm").top.digest == arm.top.digest


@pytest.mark.parametrize("platform", ["linux/arm64", "linux/arm64/v8", "Linux/aarch64"])
def test_platform_picks_one_child(tmp_path: Path, platform: str) -> None:
    built = write_oci_layout(tmp_path / "multi", multi_arch=True, tag="multi")
    arm = built.images[1]
    plan = open_image(built.path, platform=platform)
    assert len(plan.manifests) == 1
    assert plan.top.digest == arm.manifest_digest
    assert plan.top.data == arm.manifest
    assert plan.top.tag == "multi"
    assert blob_bytes(plan) == arm.blobs
    assert plan.platforms == ["linux/amd64", "linux/arm64/v8"]


def test_platform_not_in_index(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "multi", multi_arch=True)
    with pytest.raises(SourceError, match=r"no linux/s390x image.*linux/amd64, linux/arm64/v8"):
        open_image(built.path, platform="linux/s390x")
    with pytest.raises(SourceError, match="not a platform"):
        open_image(built.path, platform="arm64")


def test_platform_of_a_single_image(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "one")
    assert open_image(built.path, platform="linux/amd64").top.digest == built.top_digest
    with pytest.raises(SourceError, match="is for linux/amd64, not linux/arm64"):
        open_image(built.path, platform="linux/arm64")


def test_several_images_need_a_tag(tmp_path: Path) -> None:
    specs = [
        ImageSpec(tag="v1"),
        ImageSpec(tag="v2", layers=(LayerSpec({"x": b"2"}),)),
    ]
    built = write_oci_layout(tmp_path / "two", images=specs)
    with pytest.raises(SourceError, match=r"holds 2 images.*v1.*v2"):
        open_image(built.path)
    plan = open_image(built.path, tag="v2")
    assert plan.top.digest == built.images[1].manifest_digest
    assert plan.top.tag == "v2"
    assert plan.tags == ["v1", "v2"]
    with pytest.raises(SourceError, match=r"no image tagged 'v3'; tags there: v1, v2"):
        open_image(built.path, tag="v3")
    entries = list_images(built.path)
    assert [(e.tags, e.digest) for e in entries] == [
        (["v1"], built.images[0].manifest_digest),
        (["v2"], built.images[1].manifest_digest),
    ]


def test_untagged_single_image(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "l", tag=None)
    plan = open_image(built.path)
    assert plan.tags == [] and plan.top.tag is None
    with pytest.raises(SourceError, match="no image tagged 'latest'"):
        open_image(built.path, tag="latest")


# --------------------------------------------------------------------------------------------
# Plans: docker save archives


def expected_docker_manifest(config: bytes, layers: list[tuple[str, bytes]]) -> bytes:
    """What skopeo (Go's json.Marshal of manifest.Schema2) writes."""
    parts = [
        f'{{"mediaType":"{mt}","size":{len(data)},"digest":"{sha256_bytes(data)}"}}'
        for mt, data in layers
    ]
    return (
        '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        f'"config":{{"mediaType":"{DOCKER_CONFIG}","size":{len(config)},'
        f'"digest":"{sha256_bytes(config)}"}},"layers":[{",".join(parts)}]}}'
    ).encode()


def test_plan_legacy_docker_archive(tmp_path: Path) -> None:
    spec = ImageSpec(
        layers=(
            LayerSpec({"a.txt": b"a"}),
            LayerSpec({"b.txt": b"b" * 5000}, gzip=True),
        )
    )
    built = write_docker_archive(tmp_path / "img.tar", images=[spec], repo_tags=["ex/app:v1"])
    image = built.images[0]
    plan = open_image(built.path)
    assert plan.kind is SourceKind.DOCKER_ARCHIVE
    assert plan.tags == ["ex/app:v1"]
    assert plan.platforms == ["linux/amd64"]
    (top,) = plan.manifests
    assert top.media_type == DOCKER_MANIFEST
    assert top.tag == "v1"
    assert top.data == expected_docker_manifest(
        image.config,
        [(DOCKER_LAYER, image.layers[0]), (DOCKER_LAYER_GZIP, image.layers[1])],
    )
    assert top.digest == sha256_bytes(top.data)
    doc = json.loads(top.data)
    # The uncompressed layer's digest is its diff_id; the gzip one's is of the gzip bytes.
    assert doc["layers"][0]["digest"] == image.diff_ids[0]
    assert doc["layers"][1]["digest"] == sha256_bytes(image.layers[1]) != image.diff_ids[1]
    assert blob_bytes(plan) == image.blobs
    assert {b.media_type for b in plan.blobs} == {
        DOCKER_CONFIG,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
    }


@pytest.mark.parametrize("tag", ["v1", "example/app:v1"])
def test_legacy_tag_matches_tag_part_or_full_name(tmp_path: Path, tag: str) -> None:
    specs = [
        ImageSpec(tag="example/app:v1"),
        ImageSpec(tag="other/app:v2", layers=(LayerSpec({"o": b"o"}),)),
    ]
    built = write_docker_archive(tmp_path / "two.tar", images=specs)
    plan = open_image(built.path, tag=tag)
    assert plan.top.tag == "v1"
    assert {b.digest for b in plan.blobs} >= {built.images[0].config_digest}
    with pytest.raises(SourceError, match=r"holds 2 images.*example/app:v1.*other/app:v2"):
        open_image(built.path)
    with pytest.raises(SourceError, match="no image tagged 'v3'"):
        open_image(built.path, tag="v3")


def test_legacy_ambiguous_tag(tmp_path: Path) -> None:
    specs = [
        ImageSpec(tag="a/app:latest"),
        ImageSpec(tag="b/app:latest", layers=(LayerSpec({"o": b"o"}),)),
    ]
    built = write_docker_archive(tmp_path / "two.tar", images=specs)
    with pytest.raises(SourceError, match="names 2 different images"):
        open_image(built.path, tag="latest")
    assert open_image(built.path, tag="b/app:latest").top.tag == "latest"


def test_legacy_repeated_layers_are_symlinks_pushed_once(tmp_path: Path) -> None:
    same = LayerSpec({"same.txt": b"same"})
    spec = ImageSpec(layers=(same, LayerSpec({"x": b"x"}), same))
    built = write_docker_archive(tmp_path / "dup.tar", images=[spec])
    with tarfile.open(built.path) as tf:
        assert any(m.issym() for m in tf.getmembers())
    plan = open_image(built.path)
    doc = json.loads(plan.top.data)
    assert [x["digest"] for x in doc["layers"]] == built.images[0].diff_ids
    assert len(plan.blobs) == 3  # config + two distinct layers
    assert blob_bytes(plan) == built.images[0].blobs


def test_legacy_hardlinked_layer_is_followed(tmp_path: Path) -> None:
    built = write_docker_archive(tmp_path / "img.tar", symlink_duplicate_layers=False)
    paths = built.layer_paths[0]
    files = dict(built.files)
    entries = []
    for e in entries_for(files):
        if e.name == paths[1]:
            entries.append(TarEntry("store/layer.tar", e.data))
            entries.append(TarEntry(e.name, kind="hardlink", target="./store/layer.tar"))
        else:
            entries.append(e)
    tar = write_tar(tmp_path / "linked.tar", entries)
    assert blob_bytes(open_image(tar)) == built.images[0].blobs


def test_legacy_layer_sources_are_checked(tmp_path: Path) -> None:
    built = write_docker_archive(tmp_path / "img.tar", layer_sources=True)
    assert blob_bytes(open_image(built.path)) == built.images[0].blobs
    items = json.loads(built.manifest_json)
    first = next(iter(items[0]["LayerSources"]))
    items[0]["LayerSources"][first]["digest"] = "sha256:" + "0" * 64
    files = dict(built.files, **{"manifest.json": json.dumps(items).encode()})
    tar = write_tar(tmp_path / "bad.tar", entries_for(files))
    with pytest.raises(SourceError, match="LayerSources"):
        open_image(tar)


@needs_skopeo
def test_legacy_manifest_matches_skopeo_byte_for_byte(tmp_path: Path) -> None:
    same = LayerSpec({"same.txt": b"same"})
    spec = ImageSpec(layers=(same, LayerSpec({"data.bin": os.urandom(20000)}), same))
    built = write_docker_archive(tmp_path / "img.tar", images=[spec])
    plan = open_image(built.path, skopeo_compatible=True)
    assert skopeo("inspect", "--raw", f"docker-archive:{built.path}") == plan.top.data
    # What skopeo would push with --preserve-digests (dir: keeps the manifest as is).
    out = tmp_path / "out"
    skopeo("copy", "-q", "--preserve-digests", f"docker-archive:{built.path}", f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == plan.top.data
    for b in plan.blobs:
        assert (out / hexpart(b.digest)).read_bytes() == read_range(b.source)
    # By default Hoist labels uncompressed layers for what they are.
    honest = open_image(built.path)
    assert {x["mediaType"] for x in json.loads(honest.top.data)["layers"]} == {DOCKER_LAYER}


def test_plan_docker_25_archive_uses_the_oci_form(tmp_path: Path) -> None:
    built = write_docker_archive(
        tmp_path / "new.tar", legacy=False, repo_tags=["busybox:latest", "example/app:v1"]
    )
    image = built.images[0]
    plan = open_image(built.path)
    assert plan.kind is SourceKind.DOCKER_OCI_ARCHIVE
    assert plan.top.media_type == OCI_MANIFEST
    assert plan.top.data == image.manifest
    assert plan.tags == ["busybox:latest", "example/app:v1"]
    assert open_image(built.path, tag="example/app:v1").top.tag == "v1"
    assert open_image(built.path, tag="latest").top.digest == image.manifest_digest
    assert blob_bytes(plan) == image.blobs
    assert plan.top.platform == {"architecture": "amd64", "os": "linux"}


def test_untagged_docker_25_archive_falls_back_to_manifest_json(tmp_path: Path) -> None:
    built = write_docker_archive(tmp_path / "new.tar", legacy=False, repo_tags=[])
    image = built.images[0]
    plan = open_image(built.path)
    assert plan.kind is SourceKind.DOCKER_OCI_ARCHIVE
    assert plan.top.media_type == DOCKER_MANIFEST
    assert plan.top.data == expected_docker_manifest(
        image.config, [(DOCKER_LAYER, data) for data in image.layers]
    )
    assert plan.top.tag is None


def test_list_images(tmp_path: Path) -> None:
    multi = write_oci_layout(tmp_path / "m", multi_arch=True, tag="t")
    (entry,) = list_images(multi.path)
    assert (entry.tags, entry.digest, entry.media_type) == (["t"], multi.index_digest, OCI_INDEX)
    assert entry.platforms == ["linux/amd64", "linux/arm64/v8"]
    legacy = write_docker_archive(tmp_path / "d.tar", repo_tags=["a/b:c"])
    (entry,) = list_images(legacy.path)
    assert (entry.tags, entry.digest, entry.platforms) == (["a/b:c"], None, ["linux/amd64"])
    assert list_images(tmp_path / "m" / "oci-layout") == []


# --------------------------------------------------------------------------------------------
# Validation


def layout_dir(tmp_path: Path, **kwargs: object) -> tuple[Path, dict[str, bytes]]:
    files, _ = layout_files(**kwargs)  # type: ignore[arg-type]
    return write_files(tmp_path / "layout", files), files


def test_missing_blob(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "l")
    (built.path / "blobs" / "sha256" / hexpart(built.images[0].layer_digests[1])).unlink()
    with pytest.raises(SourceError, match=r"lacks the blob of layer .*incomplete"):
        open_image(built.path)


def test_missing_manifest_of_index_entry(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "l")
    (built.path / "blobs" / "sha256" / hexpart(built.top_digest)).unlink()
    with pytest.raises(SourceError, match="lacks the blob of manifest"):
        open_image(built.path)


def test_missing_platform_child(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "m", multi_arch=True)
    (built.path / "blobs" / "sha256" / hexpart(built.images[1].manifest_digest)).unlink()
    with pytest.raises(SourceError, match="linux/arm64/v8") as info:
        open_image(built.path)
    assert "linux/amd64" in info.value.sentence()
    # The platform that is there can still be pushed.
    assert open_image(built.path, platform="linux/amd64").top.digest == (
        built.images[0].manifest_digest
    )


def test_corrupted_blob(tmp_path: Path) -> None:
    """A config is hashed as it is read; a layer of the wrong size is refused at once (one of
    the right size is checked by the registry on commit: tests/test_image_push.py)."""
    built = write_oci_layout(tmp_path / "l")
    config = built.path / "blobs" / "sha256" / hexpart(built.images[0].config_digest)
    good_config = config.read_bytes()
    config.write_bytes(good_config.replace(b"{", b" ", 1))
    with pytest.raises(SourceError, match="doesn't match its digest"):
        open_image(built.path)
    config.write_bytes(good_config)
    path = built.path / "blobs" / "sha256" / hexpart(built.images[0].layer_digests[1])
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(SourceError, match="its descriptor says"):
        open_image(built.path)


def test_corrupted_blob_in_archive(tmp_path: Path) -> None:
    files, layout = layout_files()
    name = f"blobs/sha256/{hexpart(layout.images[0].config_digest)}"
    data = bytearray(files[name])
    data[-2] ^= 1
    files[name] = bytes(data)
    tar = write_tar(tmp_path / "x.tar", entries_for(files))
    with pytest.raises(SourceError, match="doesn't match its digest"):
        open_image(tar)


def test_corrupted_manifest(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "l")
    path = built.path / "blobs" / "sha256" / hexpart(built.top_digest)
    # Still valid JSON, same size: only the digest can tell.
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r", 1))
    with pytest.raises(SourceError, match="doesn't match its digest"):
        open_image(built.path)


def test_corrupted_legacy_layer(tmp_path: Path) -> None:
    built = write_docker_archive(tmp_path / "img.tar")
    files = dict(built.files)
    path = built.layer_paths[0][1]
    data = bytearray(files[path])
    data[600] ^= 0xFF
    files[path] = bytes(data)
    tar = write_tar(tmp_path / "bad.tar", entries_for(files))
    with pytest.raises(SourceError, match="doesn't match the config's diff_id"):
        open_image(tar)


def test_truncated_gzip_layer_in_legacy_archive(tmp_path: Path) -> None:
    spec = ImageSpec(layers=(LayerSpec({"a": os.urandom(5000)}, gzip=True),))
    built = write_docker_archive(tmp_path / "img.tar", images=[spec])
    files = dict(built.files)
    path = built.layer_paths[0][0]
    files[path] = files[path][:-20]
    tar = write_tar(tmp_path / "bad.tar", entries_for(files))
    with pytest.raises(SourceError, match="truncated gzip"):
        open_image(tar)


def test_symlinked_blob_in_layout(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "l")
    path = built.path / "blobs" / "sha256" / hexpart(built.images[0].layer_digests[0])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(elsewhere)
    with pytest.raises(SourceError, match="symbolic link"):
        open_image(built.path)


@pytest.mark.parametrize("name", ["../evil", "blobs/../../evil", "/etc/evil"])
def test_path_traversal_entry_in_tar(tmp_path: Path, name: str) -> None:
    files, _ = layout_files()
    tar = write_tar(tmp_path / "x.tar", [*entries_for(files), TarEntry(name, b"x")])
    assert detect_source(tar) is SourceKind.OCI_ARCHIVE
    with pytest.raises(SourceError, match=r"absolute path|climbs out"):
        open_image(tar)


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../etc/passwd", "../../../../x"])
def test_link_out_of_the_archive(tmp_path: Path, target: str) -> None:
    files, layout = layout_files()
    name = f"blobs/sha256/{hexpart(layout.images[0].layer_digests[0])}"
    entries = [e for e in entries_for(files) if e.name != name]
    tar = write_tar(tmp_path / "x.tar", [*entries, TarEntry(name, kind="symlink", target=target)])
    with pytest.raises(SourceError, match="outside the archive"):
        open_image(tar)


def test_link_to_a_missing_member(tmp_path: Path) -> None:
    files, layout = layout_files()
    name = f"blobs/sha256/{hexpart(layout.images[0].layer_digests[0])}"
    entries = [e for e in entries_for(files) if e.name != name]
    tar = write_tar(tmp_path / "x.tar", [*entries, TarEntry(name, kind="symlink", target="nope")])
    with pytest.raises(SourceError, match="lacks the blob"):
        open_image(tar)


def test_duplicate_names_in_tar(tmp_path: Path) -> None:
    files, layout = layout_files()
    name = f"blobs/sha256/{hexpart(layout.images[0].layer_digests[0])}"
    same = write_tar(tmp_path / "same.tar", [*entries_for(files), TarEntry(name, files[name])])
    assert blob_bytes(open_image(same)) == layout.images[0].blobs
    other = write_tar(tmp_path / "other.tar", [*entries_for(files), TarEntry(name, b"other")])
    with pytest.raises(SourceError, match="twice with different content"):
        open_image(other)
    flipped = bytearray(files[name])
    flipped[0] ^= 1
    other2 = write_tar(
        tmp_path / "other2.tar", [*entries_for(files), TarEntry(f"./{name}", bytes(flipped))]
    )
    with pytest.raises(SourceError, match="twice with different content"):
        open_image(other2)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")
def test_sparse_member_is_refused(tmp_path: Path) -> None:
    data = b"\0" * (4 * 1024 * 1024) + b"tail"
    root, _ = layout_dir(
        tmp_path, images=[ImageSpec(layers=(LayerSpec({"x": b"x"}),))], tag="latest"
    )
    # Replace the one layer with a sparse file, and point the manifest at it.
    built = build_image(ImageSpec(layers=(LayerSpec({"x": b"x"}),)))
    (root / "blobs" / "sha256" / hexpart(built.layer_digests[0])).unlink()
    sparse = root / "blobs" / "sha256" / hexpart(sha256_bytes(data))
    with open(sparse, "wb") as f:
        f.truncate(len(data) - 4)
        f.seek(len(data) - 4)
        f.write(b"tail")
    manifest = json.loads(built.manifest)
    manifest["layers"][0].update(digest=sha256_bytes(data), size=len(data))
    mbytes = json.dumps(manifest).encode()
    (root / "blobs" / "sha256" / hexpart(built.manifest_digest)).unlink()
    (root / "blobs" / "sha256" / hexpart(sha256_bytes(mbytes))).write_bytes(mbytes)
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {"mediaType": OCI_MANIFEST, "digest": sha256_bytes(mbytes), "size": len(mbytes)}
                ],
            }
        )
    )
    assert open_image(root).blob_bytes == len(built.config) + len(data)
    tar = tmp_path / "sparse.tar"
    subprocess.run(
        ["tar", "--sparse", "--format=gnu", "-cf", str(tar), "-C", str(root), "."], check=True
    )
    with tarfile.open(tar) as tf:
        if not any(m.issparse() for m in tf.getmembers()):
            pytest.skip("this file system stores no holes")
    with pytest.raises(SourceError, match="sparse"):
        open_image(tar)


def test_invalid_json(tmp_path: Path) -> None:
    root, _ = layout_dir(tmp_path)
    (root / "index.json").write_bytes(b'{"schemaVersion": 2, "manifests": [')
    with pytest.raises(SourceError, match=r"index\.json is not valid JSON"):
        open_image(root)


def test_invalid_json_manifest(tmp_path: Path) -> None:
    root, _ = layout_dir(tmp_path)
    bad = b"{this is not json"
    (root / "blobs" / "sha256" / hexpart(sha256_bytes(bad))).write_bytes(bad)
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {"mediaType": OCI_MANIFEST, "digest": sha256_bytes(bad), "size": len(bad)}
                ],
            }
        )
    )
    with pytest.raises(SourceError, match="is not valid JSON"):
        open_image(root)


def test_invalid_json_docker_manifest(tmp_path: Path) -> None:
    built = write_docker_archive(tmp_path / "img.tar")
    files = dict(built.files, **{"manifest.json": b"[{not json"})
    tar = write_tar(tmp_path / "bad.tar", entries_for(files))
    assert detect_source(tar) is SourceKind.DOCKER_ARCHIVE
    with pytest.raises(SourceError, match=r"manifest\.json is not valid JSON"):
        open_image(tar)


@pytest.mark.parametrize(
    ("media_type", "message"),
    [
        ("application/vnd.example.thing+json", "unknown media type"),
        ("application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1"),
    ],
)
def test_unknown_manifest_media_type(tmp_path: Path, media_type: str, message: str) -> None:
    root, _ = layout_dir(tmp_path)
    doc = json.dumps({"schemaVersion": 2, "mediaType": media_type}).encode()
    (root / "blobs" / "sha256" / hexpart(sha256_bytes(doc))).write_bytes(doc)
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {"mediaType": media_type, "digest": sha256_bytes(doc), "size": len(doc)}
                ],
            }
        )
    )
    with pytest.raises(SourceError, match=message):
        open_image(root)


def test_media_type_disagreement(tmp_path: Path) -> None:
    files, layout = layout_files()
    index = json.loads(files["index.json"])
    index["manifests"][0]["mediaType"] = OCI_INDEX
    files["index.json"] = json.dumps(index).encode()
    tar = write_tar(tmp_path / "x.tar", entries_for(files))
    with pytest.raises(SourceError, match=r"is listed as .*index.* but says"):
        open_image(tar)
    del layout


def test_unknown_tag_lists_what_is_there(tmp_path: Path) -> None:
    built = write_oci_layout(tmp_path / "l", tag="v1")
    with pytest.raises(SourceError, match="no image tagged 'nope'; tags there: v1"):
        open_image(built.path, tag="nope")
    legacy = write_docker_archive(tmp_path / "d.tar", repo_tags=["ex/app:v1", "ex/app:v2"])
    with pytest.raises(SourceError, match="tags there: ex/app:v1, ex/app:v2"):
        open_image(legacy.path, tag="nope")


# --------------------------------------------------------------------------------------------
# Progress and serialization


def test_progress_counts_every_hashed_byte(tmp_path: Path) -> None:
    built = write_oci_archive(tmp_path / "x.tar", multi_arch=True)
    seen: list[tuple[int, int]] = []
    plan = open_image(built.path, progress=lambda done, total: seen.append((done, total)))
    assert seen[0][0] == 0
    assert seen[-1][0] == seen[-1][1] > 0
    assert seen[-1][1] <= plan.blob_bytes

    def stop(done: int, total: int) -> None:
        if done:
            raise SourceError("cancelled")

    with pytest.raises(SourceError, match="cancelled"):
        open_image(built.path, progress=stop)


# --------------------------------------------------------------------------------------------
# Less common shapes


def test_nested_index_pushes_every_level_children_first(tmp_path: Path) -> None:
    files, inner = layout_files(multi_arch=True, tag=None)
    assert inner.index is not None and inner.index_digest is not None
    outer = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_INDEX, "digest": inner.index_digest, "size": len(inner.index)}
            ],
        }
    ).encode()
    files[f"blobs/sha256/{hexpart(sha256_bytes(outer))}"] = outer
    files["index.json"] = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_INDEX,
                    "digest": sha256_bytes(outer),
                    "size": len(outer),
                    "annotations": {"org.opencontainers.image.ref.name": "nested"},
                }
            ],
        }
    ).encode()
    tar = write_tar(tmp_path / "nested.tar", entries_for(files))
    plan = open_image(tar)
    assert [m.digest for m in plan.manifests] == [
        inner.images[0].manifest_digest,
        inner.images[1].manifest_digest,
        inner.index_digest,
        sha256_bytes(outer),
    ]
    assert [m.tag for m in plan.manifests] == [None, None, None, "nested"]
    assert plan.platforms == ["linux/amd64", "linux/arm64/v8"]
    arm = open_image(tar, platform="linux/arm64")
    assert [m.digest for m in arm.manifests] == [inner.images[1].manifest_digest]
    assert arm.top.tag == "nested"


def test_foreign_layer_without_blob_is_not_pushed(tmp_path: Path) -> None:
    files, layout = layout_files()
    image = layout.images[0]
    manifest = json.loads(image.manifest)
    foreign = {
        "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "digest": "sha256:" + "ab" * 32,
        "size": 1234,
        "urls": ["https://example.com/layer.tar.gz"],
    }
    manifest["layers"].insert(0, foreign)
    data = json.dumps(manifest).encode()
    files[f"blobs/sha256/{hexpart(sha256_bytes(data))}"] = data
    files["index.json"] = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": sha256_bytes(data), "size": len(data)}
            ],
        }
    ).encode()
    plan = open_image(write_tar(tmp_path / "f.tar", entries_for(files)))
    assert plan.top.data == data
    assert foreign["digest"] not in {b.digest for b in plan.blobs}
    assert blob_bytes(plan) == image.blobs


def test_skopeo_compatible_labels_uncompressed_layers_gzip(tmp_path: Path) -> None:
    spec = ImageSpec(layers=(LayerSpec({"a": b"a"}), LayerSpec({"b": b"b"}, gzip=True)))
    built = write_docker_archive(tmp_path / "img.tar", images=[spec])
    image = built.images[0]
    plan = open_image(built.path, skopeo_compatible=True)
    assert plan.top.data == expected_docker_manifest(
        image.config, [(DOCKER_LAYER_GZIP, image.layers[0]), (DOCKER_LAYER_GZIP, image.layers[1])]
    )
    # Only the labels differ from the default plan: same blobs.
    assert blob_bytes(plan) == blob_bytes(open_image(built.path))


def test_oci_archive_with_dot_slash_names(tmp_path: Path) -> None:
    files, layout = layout_files(tag="v1")
    entries = [TarEntry("./", kind="dir")] + [
        TarEntry("./" + e.name, e.data, e.kind, e.target) for e in entries_for(files)
    ]
    tar = write_tar(tmp_path / "dot.tar", entries)
    assert detect_source(tar) is SourceKind.OCI_ARCHIVE
    assert open_image(tar).top.data == layout.images[0].manifest
