"""`hoist push` against the real reference registry: chunking, edge sizes, errors, interop."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from pushing import get_blob, get_manifest, hoist_cli, push_paths
from support.registry import RegistryProcess

from hoist.core.errors import AuthenticationFailed, NetworkError
from hoist.core.oci.annotations import ORAS_UNPACK, TITLE
from hoist.core.oci.manifest import FILE_MEDIA_TYPE, FOLDER_MEDIA_TYPE, OCI_EMPTY
from hoist.core.progress import BlobEvent, BlobState, Event
from hoist.core.registry.auth import Credentials

KiB = 1024


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    """Deterministic pseudo-random bytes (incompressible, so no accidental dedupe)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    path.write_bytes(bytes(out[:size]))
    return path


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def patches(log: str) -> int:
    return log.count('"PATCH /v2/')


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (300 * KiB, 64 * KiB),  # several chunks, chunk does not divide the file
        (256 * KiB, 64 * KiB),  # chunk divides the file
        (64 * KiB, 64 * KiB),  # exactly one chunk: one request
        (64 * KiB + 1, 64 * KiB),  # one chunk and a 1-byte tail
        (1000, 64 * KiB),  # small: one request
        (0, 64 * KiB),  # empty file
    ],
)
async def test_push_round_trip(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, size: int, chunk: int,
    send_path: str,
) -> None:  # fmt: skip
    # The body goes both ways (send_path); other bytes and repository for each.
    path = make_file(tmp_path / f"data-{size}.bin", size, seed=size + len(send_path))
    repo = f"roundtrip/s{size}-c{chunk}-{send_path}"
    events: list[Event] = []
    digest, _ = await push_paths(
        registry.host, f"{repo}:v1", [path], chunk_size=chunk, events=events
    )
    manifest = get_manifest(registry.url, repo, "v1")
    raw = httpx.get(
        f"{registry.url}/v2/{repo}/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).content
    assert sha(raw) == digest
    assert manifest["config"]["mediaType"] == OCI_EMPTY
    (layer,) = manifest["layers"]
    assert layer["annotations"][TITLE] == path.name
    assert layer["mediaType"] == FILE_MEDIA_TYPE
    assert layer["size"] == size
    assert get_blob(registry.url, repo, layer["digest"]) == path.read_bytes()
    done = [e for e in events if isinstance(e, BlobEvent) and e.state == BlobState.DONE]
    assert done and done[-1].acknowledged == size


async def test_chunks_are_sequential_patches(
    fresh_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """A 300 KiB file in 64 KiB chunks is 5 PATCHes and one PUT, never held in memory whole."""
    path = make_file(tmp_path / "five.bin", 300 * KiB)
    await push_paths(fresh_registry.host, "seq/five:v1", [path], chunk_size=64 * KiB)
    log = fresh_registry.log_text()
    assert patches(log) == 5
    assert log.count('"PUT /v2/seq/five/blobs/uploads/') == 2  # the file and the empty config


async def test_small_blob_is_one_request(
    fresh_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "small.bin", 1000)
    await push_paths(fresh_registry.host, "seq/small:v1", [path], chunk_size=64 * KiB)
    assert patches(fresh_registry.log_text()) == 0


async def test_blob_already_present_is_skipped(
    fresh_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "again.bin", 200 * KiB)
    await push_paths(fresh_registry.host, "skip/a:v1", [path], chunk_size=64 * KiB)
    before = patches(fresh_registry.log_text())
    events: list[Event] = []
    await push_paths(fresh_registry.host, "skip/a:v2", [path], chunk_size=64 * KiB, events=events)
    # Chunked blobs have no digest up front, so the second push uploads again; a blob whose
    # digest is known (small ones, hashed first) is skipped by HEAD:
    small = make_file(tmp_path / "small.bin", 1000)
    await push_paths(fresh_registry.host, "skip/a:v3", [small])
    events.clear()
    await push_paths(fresh_registry.host, "skip/a:v4", [small], events=events)
    states = {e.state for e in events if isinstance(e, BlobEvent)}
    assert BlobState.EXISTS in states
    assert patches(fresh_registry.log_text()) >= before


async def test_folder_is_packed_for_oras_when_asked(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    make_file(folder / "weights.bin", 100 * KiB)
    (folder / "sub" / "config.json").write_text('{"layers": 2}')
    digest, transfer = await push_paths(registry.host, "folders/model:v1", [folder], pack=True)
    # The packed tar was staged for resumes; once the push is done it is gone.
    assert not (state_dir / "staging" / transfer.id).exists()
    manifest = get_manifest(registry.url, "folders/model", "v1")
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == FOLDER_MEDIA_TYPE
    assert layer["annotations"][TITLE] == "model"
    assert layer["annotations"][ORAS_UNPACK] == "true"
    assert digest.startswith("sha256:")
    packed = get_blob(registry.url, "folders/model", layer["digest"])
    assert packed[:2] == b"\x1f\x8b" and packed[8] == 4  # gzip, XFL 4: the fastest level


async def test_bad_credentials_are_refused(
    auth_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "x.bin", 1000)
    with pytest.raises(AuthenticationFailed) as info:
        await push_paths(
            auth_registry.host, "auth/x:v1", [path], credentials=Credentials("hoist", "wrong")
        )
    assert "hoist login" in info.value.sentence()


async def test_basic_auth_push(
    auth_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "x.bin", 200 * KiB)
    assert auth_registry.credentials
    user, password = auth_registry.credentials
    await push_paths(
        auth_registry.host, "auth/ok:v1", [path], chunk_size=64 * KiB,
        credentials=Credentials(user, password),
    )  # fmt: skip
    manifest = get_manifest(auth_registry.url, "auth/ok", "v1", auth=(user, password))
    blob = get_blob(auth_registry.url, "auth/ok", manifest["layers"][0]["digest"], (user, password))
    assert blob == path.read_bytes()


async def test_registry_down_is_a_network_error(state_dir: Path, tmp_path: Path) -> None:
    from support.registry import free_port

    path = make_file(tmp_path / "x.bin", 1000)
    with pytest.raises(NetworkError) as info:
        await push_paths(f"127.0.0.1:{free_port()}", "down/x:v1", [path])
    assert "registry is running" in info.value.sentence()


# -- the command line, as a subprocess ---------------------------------------------------------


def test_cli_push_prints_reference(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    a = make_file(tmp_path / "a.bin", 150 * KiB, seed=1)
    b = make_file(tmp_path / "b.txt", 10, seed=2)
    result = hoist_cli(
        "push", f"{registry.host}/cli/files:v1", str(a), str(b), "--chunk-size", "64KiB"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip()
    assert out.startswith(f"{registry.host}/cli/files@sha256:")
    manifest = get_manifest(registry.url, "cli/files", "v1")
    titles = [layer["annotations"][TITLE] for layer in manifest["layers"]]
    assert titles == ["a.bin", "b.txt"]
    # The journal entry is gone once the push is done.
    assert not list((state_dir / "transfers").glob("*.json"))


def test_cli_errors_exit_nonzero_with_a_sentence(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    a = make_file(tmp_path / "a.bin", 10)
    bad = hoist_cli("push", "localhost:5000/Bad Name", str(a))
    assert bad.returncode == 2  # usage (issue 16 #22)
    assert "hoist:" in bad.stderr and "Traceback" not in bad.stderr
    missing = hoist_cli("push", f"{registry.host}/cli/missing:v1", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    size = hoist_cli("push", f"{registry.host}/cli/x:v1", str(a), "--chunk-size", "lots")
    assert size.returncode == 2 and "not a size" in size.stderr  # usage (issue 16 #22)


def test_cli_json_progress(registry: RegistryProcess, state_dir: Path, tmp_path: Path) -> None:
    a = make_file(tmp_path / "a.bin", 200 * KiB)
    result = hoist_cli(
        "push",
        f"{registry.host}/cli/json:v1",
        str(a),
        "--chunk-size",
        "64KiB",
        "--progress",
        "json",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    blobs = [e for e in lines if e["event"] == "blob"]
    assert blobs and blobs[-1]["state"] == "done" and blobs[-1]["acknowledged"] == 200 * KiB
    assert any(e["event"] == "transfer" and e["state"] == "done" for e in lines)


# -- interop with real clients ---------------------------------------------------------------


async def test_oras_pulls_what_hoist_pushed(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    import oras.client

    a = make_file(tmp_path / "model.safetensors", 700 * KiB, seed=7)
    b = make_file(tmp_path / "README.md", 123, seed=8)
    await push_paths(registry.host, "interop/oras:v1", [a, b], chunk_size=128 * KiB)
    out = tmp_path / "pulled"
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    client.pull(target=f"{registry.host}/interop/oras:v1", outdir=str(out))
    assert (out / "model.safetensors").read_bytes() == a.read_bytes()
    assert (out / "README.md").read_bytes() == b.read_bytes()


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is installed by .ci/run")
async def test_skopeo_accepts_the_manifest(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    a = make_file(tmp_path / "a.bin", 100 * KiB)
    digest, _ = await push_paths(registry.host, "interop/skopeo:v1", [a])
    raw = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw",
         f"docker://{registry.host}/interop/skopeo:v1"],
        capture_output=True, check=True, env={**os.environ, "HOME": str(tmp_path)},
    ).stdout  # fmt: skip
    assert sha(raw) == digest
    assert json.loads(raw)["artifactType"] == "application/vnd.unknown.artifact.v1"


async def test_adaptive_chunks_grow_on_a_fast_link(
    fresh_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """With the default (adaptive) chunk size, chunks double while they go through in under a
    second: fewer registry turnarounds, and a cut chunk still costs about a second of upload."""
    from hoist.core.transfer.upload import UploadSettings

    path = make_file(tmp_path / "fast.bin", 40 * 1024 * KiB)
    settings = UploadSettings(chunk_size=1024 * KiB, adaptive=True)
    events: list[Event] = []
    await push_paths(
        fresh_registry.host, "adaptive/fast:v1", [path], settings=settings, events=events
    )
    acked = sorted(
        {e.acknowledged for e in events if isinstance(e, BlobEvent) and e.state == "uploading"}
    )
    chunks = [b - a for a, b in itertools.pairwise(acked) if b > a]
    assert chunks[0] == 1024 * KiB and max(chunks) >= 8 * 1024 * KiB, chunks
    assert chunks[:4] == sorted(chunks[:4])  # growing, not jumping around
    assert patches(fresh_registry.log_text()) < 40 // 2  # fixed 1 MiB chunks: 40 PATCHes
    manifest = get_manifest(fresh_registry.url, "adaptive/fast", "v1")
    blob = get_blob(fresh_registry.url, "adaptive/fast", manifest["layers"][0]["digest"])
    assert blob == path.read_bytes()


async def test_credentials_are_looked_up_only_when_the_registry_asks(
    registry: RegistryProcess, auth_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """An anonymous registry never touches the keyring (no locked-wallet prompt); one that
    asks gets the credentials the lookup finds, once."""
    from hoist.core.oci.reference import parse_reference
    from hoist.core.registry.client import RegistryClient
    from hoist.core.transfer.push import TransferRun, plan_file_push

    calls: list[str] = []

    def lookup() -> Credentials | None:
        calls.append("looked up")
        assert auth_registry.credentials
        return Credentials(*auth_registry.credentials)

    path = make_file(tmp_path / "a.bin", 100 * KiB)
    for reg, expected in ((registry, []), (auth_registry, ["looked up"])):
        calls.clear()
        target = parse_reference(f"{reg.host}/lazy/a:v1")
        async with RegistryClient(target.api_host, credentials_lookup=lookup) as client:
            await TransferRun(plan_file_push(target, [path]), client).run()
        assert calls == expected


def test_cli_finds_docker_config_credentials(
    auth_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    import base64

    assert auth_registry.credentials
    user, password = auth_registry.credentials
    docker = tmp_path / "docker"
    docker.mkdir()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (docker / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": token}}})
    )
    path = make_file(tmp_path / "a.bin", 100 * KiB)
    result = hoist_cli(
        "push", f"{auth_registry.host}/lazy/cli:v1", str(path), env={"DOCKER_CONFIG": str(docker)}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{auth_registry.host}/lazy/cli@sha256:")
