"""The browsing commands as a person runs them: catalog, tags, inspect, pull, delete."""

from __future__ import annotations

import json
from pathlib import Path

from pushing import hoist_cli, push_paths
from support.registry import RegistryProcess
from test_push import make_file

KiB = 1024


async def test_catalog_tags_inspect_pull_delete(
    fresh_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    reg = fresh_registry
    a = make_file(tmp_path / "weights.bin", 300 * KiB, seed=1)
    b = make_file(tmp_path / "notes.txt", 50, seed=2)
    digest, _ = await push_paths(reg.host, "cli/model:v1", [a, b], chunk_size=64 * KiB)
    await push_paths(reg.host, "cli/model:also", [b])  # another manifest, another digest
    await push_paths(reg.host, "cli/other:v1", [b])

    catalog = hoist_cli("catalog", reg.host, "--page-size", "1")
    assert catalog.returncode == 0, catalog.stderr
    assert catalog.stdout.split() == ["cli/model", "cli/other"]

    tags = hoist_cli("tags", f"{reg.host}/cli/model")
    assert sorted(tags.stdout.split()) == ["also", "v1"]

    inspected = hoist_cli("inspect", f"{reg.host}/cli/model:v1")
    info = json.loads(inspected.stdout)
    assert info["digest"] == digest
    assert [layer["title"] for layer in info["layers"]] == ["weights.bin", "notes.txt"]
    assert info["pull_command"].startswith("oras pull")

    out = tmp_path / "pulled"
    pulled = hoist_cli("pull", f"{reg.host}/cli/model:v1", "-o", str(out), "--progress", "plain")
    assert pulled.returncode == 0, pulled.stderr
    assert (out / "weights.bin").read_bytes() == a.read_bytes()
    assert (out / "notes.txt").read_bytes() == b.read_bytes()

    deleted = hoist_cli("delete", f"{reg.host}/cli/model:v1")  # no other tag shares its digest
    assert deleted.returncode == 0, deleted.stderr
    gone = hoist_cli("inspect", f"{reg.host}/cli/model@{digest}")
    assert gone.returncode == 1 and "MANIFEST_UNKNOWN" in gone.stderr


def test_delete_names_tags_sharing_the_digest(
    fresh_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    reg = fresh_registry
    b = make_file(tmp_path / "x.txt", 10)
    first = hoist_cli("push", f"{reg.host}/cli/shared:one", str(b))
    ref = first.stdout.strip()
    digest = ref.split("@", 1)[1]
    # Tag the very same manifest a second time by pushing its bytes under another tag.
    import httpx

    raw = httpx.get(
        f"{reg.url}/v2/cli/shared/manifests/{digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    httpx.put(
        f"{reg.url}/v2/cli/shared/manifests/two",
        content=raw.content,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    ).raise_for_status()
    refused = hoist_cli("delete", f"{reg.host}/cli/shared:one")
    assert refused.returncode == 1 and "two" in refused.stderr and "--yes" in refused.stderr
    deleted = hoist_cli("delete", f"{reg.host}/cli/shared:one", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    # --yes deletes, and still says which other tag went with the manifest.
    assert "two" in deleted.stderr and digest in deleted.stderr
    assert "two" not in hoist_cli("tags", f"{reg.host}/cli/shared").stdout.split()


def test_catalog_of_an_unreachable_registry_is_a_sentence(state_dir: Path) -> None:
    from support.registry import free_port

    result = hoist_cli("catalog", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stderr.startswith("hoist: ") and "Traceback" not in result.stderr
