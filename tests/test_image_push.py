"""Container images pushed to the real registry, checked with skopeo byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pushing import get_blob, hoist_cli
from support.images import write_docker_archive, write_oci_archive, write_oci_layout
from support.registry import RegistryProcess

from hoist.core.oci.digest import sha256_bytes
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, BlobState, Event
from hoist.core.registry.client import RegistryClient
from hoist.core.sources.formats import open_image
from hoist.core.transfer.push import TransferRun, plan_image_push

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="make test installs skopeo")


def skopeo(*args: str, home: Path) -> bytes:
    return subprocess.run(
        ["skopeo", *args], capture_output=True, check=True, env={**os.environ, "HOME": str(home)}
    ).stdout


async def push_image(
    host: str, ref: str, source: Path, events: list[Event] | None = None, **kw: object
) -> str:
    target = parse_reference(f"{host}/{ref}")
    transfer = plan_image_push(target, source, **kw)  # type: ignore[arg-type]
    async with RegistryClient(target.api_host) as client:
        run = TransferRun(transfer, client, on_event=events.append if events is not None else None)
        return await run.run()


def assert_same_as_skopeo_reads(
    registry: RegistryProcess, repo: str, source: Path, tmp: Path
) -> None:
    """skopeo copies the pushed image out; every manifest and blob equals the source's."""
    out = tmp / "skopeo-out"
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests",
           f"docker://{registry.host}/{repo}", f"oci:{out}:x", home=tmp)  # fmt: skip
    plan = open_image(source)
    for blob in plan.blobs:
        d = blob
        pulled = (out / "blobs" / "sha256" / d.digest[7:]).read_bytes()
        assert sha256_bytes(pulled) == d.digest and len(pulled) == d.size


@pytest.mark.parametrize("kind", ["layout", "oci-archive", "docker-legacy", "docker-oci"])
async def test_single_image_round_trip(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, kind: str
) -> None:
    if kind == "layout":
        source = write_oci_layout(tmp_path / "layout", tag="v1").path
    elif kind == "oci-archive":
        source = write_oci_archive(tmp_path / "image.tar", tag="v1").path
    else:
        source = write_docker_archive(tmp_path / "save.tar", legacy=kind == "docker-legacy").path
    repo = f"images/{kind}"
    events: list[Event] = []
    digest = await push_image(registry.host, f"{repo}:v1", source, events)
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{registry.host}/{repo}:v1",
                 home=tmp_path)  # fmt: skip
    assert sha256_bytes(raw) == digest
    assert raw == open_image(source).top.data  # byte for byte
    assert_same_as_skopeo_reads(registry, f"{repo}:v1", source, tmp_path)
    # One BlobEvent stream per layer and config: what the window shows as child rows.
    blobs = {e.blob for e in events if isinstance(e, BlobEvent)}
    assert len(blobs) == len(open_image(source).blobs)


async def test_multi_arch_index_and_platform_choice(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    layout = write_oci_layout(tmp_path / "multi", multi_arch=True, tag="v1")
    digest = await push_image(registry.host, "images/multi:v1", layout.path)
    raw = skopeo("inspect", "--tls-verify=false", "--raw",
                 f"docker://{registry.host}/images/multi:v1", home=tmp_path)  # fmt: skip
    index = json.loads(raw)
    assert sha256_bytes(raw) == digest and len(index["manifests"]) == 2
    for child in index["manifests"]:  # every child went first, by digest
        got = skopeo(
            "inspect",
            "--tls-verify=false",
            "--raw",
            f"docker://{registry.host}/images/multi@{child['digest']}",
            home=tmp_path,
        )
        assert sha256_bytes(got) == child["digest"]
    one = await push_image(registry.host, "images/arm:v1", layout.path, platform="linux/arm64")
    arm = next(m for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    assert one == arm["digest"]


async def test_same_digest_as_skopeo_copy(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """`skopeo copy` of the same source into a second repository gives the same digest."""
    layout = write_oci_layout(tmp_path / "layout", tag="v1")
    ours = await push_image(registry.host, "images/ours:v1", layout.path)
    skopeo("copy", "--dest-tls-verify=false", "--preserve-digests", f"oci:{layout.path}:v1",
           f"docker://{registry.host}/images/theirs:v1", home=tmp_path)  # fmt: skip
    theirs = skopeo("inspect", "--tls-verify=false", "--raw",
                    f"docker://{registry.host}/images/theirs:v1", home=tmp_path)  # fmt: skip
    assert sha256_bytes(theirs) == ours


async def test_existing_blobs_skipped_and_mounted(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    layout = write_oci_layout(tmp_path / "layout", tag="v1")
    await push_image(registry.host, "images/mount-src:v1", layout.path)
    again: list[Event] = []
    await push_image(registry.host, "images/mount-src:v2", layout.path, again)
    assert {e.state for e in again if isinstance(e, BlobEvent)} == {BlobState.EXISTS}
    mounted: list[Event] = []
    await push_image(registry.host, "images/mount-dst:v1", layout.path, mounted,
                     mount_from=["images/mount-src"])  # fmt: skip
    states = [e.state for e in mounted if isinstance(e, BlobEvent)]
    assert states and set(states) == {BlobState.MOUNTED}
    plan = open_image(layout.path)
    for blob in plan.blobs:  # readable in the new repository
        data = get_blob(registry.url, "images/mount-dst", blob.digest)
        assert sha256_bytes(data) == blob.digest


def test_cli_detects_an_image_and_as_files_overrides(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    tar = write_docker_archive(tmp_path / "renamed.bin", legacy=True).path  # no .tar: by content
    image = hoist_cli("push", f"{registry.host}/images/cli:v1", str(tar), "--progress", "json")
    assert image.returncode == 0, image.stderr
    assert "image" in image.stderr.splitlines()[0]
    files = hoist_cli("push", f"{registry.host}/images/cli-file:v1", str(tar), "--as-files")
    assert files.returncode == 0, files.stderr
    assert "artifact" in files.stderr.splitlines()[0]


def test_a_corrupt_config_is_refused_before_anything_is_pushed(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Manifests and configs are read (small) and checked against their digests at once."""
    layout = write_oci_layout(tmp_path / "broken", tag="v1")
    config = layout.path / "blobs" / "sha256" / layout.images[0].config_digest[7:]
    data = bytearray(config.read_bytes())
    data[-2] ^= 0x01  # same size: only the digest can tell
    config.write_bytes(bytes(data))
    result = hoist_cli("push", f"{registry.host}/images/broken:v1", str(layout.path))
    assert result.returncode == 1
    assert "hoist:" in result.stderr and "Traceback" not in result.stderr
    assert "doesn't match its digest" in result.stderr
    assert "/v2/images/broken/blobs/uploads" not in registry.log_text()


def test_a_corrupt_layer_is_refused_by_the_registry_and_nothing_is_tagged(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Layers are trusted as the layout names them (as crane does: hashing them first costs
    ~0.7 s a GiB of the CPU the registry needs): the registry checks each digest on commit, the
    corrupt one is refused with a sentence, and no manifest is pushed, so the tag never
    points at it."""
    layout = write_oci_layout(tmp_path / "broken", tag="v1")
    victim = layout.path / "blobs" / "sha256" / layout.images[0].layer_digests[0][7:]
    victim.write_bytes(b"corrupted" + victim.read_bytes()[9:])
    result = hoist_cli("push", f"{registry.host}/images/broken:v1", str(layout.path))
    assert result.returncode == 1
    assert "hoist:" in result.stderr and "Traceback" not in result.stderr
    assert "local copy is corrupt" in result.stderr
    assert "/v2/images/broken/manifests/" not in registry.log_text()


def test_planning_a_layout_reads_no_layer(tmp_path: Path) -> None:
    """Planning reads the layout's manifests and configs only; every layer byte is read once,
    by the upload (issue 19: crane pushes a 768 MiB image in 2.28 s here; hashing its layers
    first took Hoist 0.5-0.8 s before the first request). So a layer corrupted in place, its
    size kept, is planned as the layout names it, and only the registry can tell."""
    layout = write_oci_layout(tmp_path / "layout", tag="v1")
    for digest in layout.images[0].layer_digests:
        layer = layout.path / "blobs" / "sha256" / digest[7:]
        data = bytearray(layer.read_bytes())
        data[-1] ^= 0xFF
        layer.write_bytes(bytes(data))
    transfer = plan_image_push(parse_reference("localhost:1/img:v1"), layout.path)
    planned = {b.digest: b.size for b in transfer.blobs}
    for digest, data in zip(layout.images[0].layer_digests, layout.images[0].layers, strict=True):
        assert planned[digest] == len(data)


@pytest.mark.parametrize("chunk", [0, 4096])  # one PUT; PATCH chunks then a PUT
async def test_layers_the_layout_names_are_not_hashed_again_while_sent(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    chunk: int,
) -> None:  # fmt: skip
    """Reading the layout checked every digest; the registry checks them again on commit. The
    upload itself hashes nothing (as crane): that CPU is the registry's on a 2-core machine."""
    from hoist.core.oci.digest import SequentialHasher

    source = write_oci_layout(tmp_path / "layout", tag="v1").path
    target = parse_reference(f"{registry.host}/img/nohash-{chunk}:v1")
    transfer = plan_image_push(target, source, chunk_size=chunk)
    hashed = [0]
    real_update = SequentialHasher.update

    def counting(self: SequentialHasher, offset: int, data: bytes | memoryview) -> None:
        hashed[0] += len(data)
        real_update(self, offset, data)

    monkeypatch.setattr(SequentialHasher, "update", counting)
    async with RegistryClient(registry.host) as client:
        await TransferRun(transfer, client).run()
    assert hashed[0] == 0
    assert_same_as_skopeo_reads(registry, f"img/nohash-{chunk}:v1", source, tmp_path)


@pytest.mark.parametrize("chunk", [0, 4096])
async def test_a_layer_corrupted_after_reading_is_refused_by_the_registry_with_a_sentence(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, chunk: int
) -> None:
    from hoist.core.errors import FileChanged

    source = write_oci_layout(tmp_path / "layout", tag="v1").path
    target = parse_reference(f"{registry.host}/img/corrupt-{chunk}:v1")
    transfer = plan_image_push(target, source, chunk_size=chunk)
    layer = max(transfer.blobs, key=lambda b: b.size).source.path
    st = layer.stat()
    data = bytearray(layer.read_bytes())
    data[0] ^= 0xFF
    layer.write_bytes(bytes(data))  # same size, mtime put back: Hoist can't see the change
    os.utime(layer, ns=(st.st_atime_ns, st.st_mtime_ns))
    async with RegistryClient(registry.host) as client:
        with pytest.raises(FileChanged, match="don't match") as info:
            await TransferRun(transfer, client).run()
    assert "local copy is corrupt or was changed" in info.value.sentence()
    assert all(b.restarts == 0 for b in transfer.blobs)  # refused at once, not sent again


def test_an_image_goes_four_blobs_at_once_by_default_as_files_do(tmp_path: Path) -> None:
    """bench/image_push.py, quiet machine: 6 × 128 MiB layers in 2.34 s at 3 at once, 1.80 s
    at 4 (crane's number), 1.97 s at 6: images take the same default as files and folders,
    and the same as the window's "Blobs at once"."""
    from hoist.core.transfer.push import DEFAULT_BLOBS_AT_ONCE

    layout = write_oci_layout(tmp_path / "layout", tag="v1").path
    transfer = plan_image_push(parse_reference("localhost:1/img:v1"), layout)
    assert transfer.parallel == DEFAULT_BLOBS_AT_ONCE == 4
    usage = hoist_cli("push", "--help").stdout
    assert "3 for images" not in usage
