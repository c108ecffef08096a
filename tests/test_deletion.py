"""How a delete is done (core's `hoist.core.registry.deletion`), against the real registry.

The window's browser and `hoist delete` both plan with `plan_delete` and delete with
`delete_manifests`; the window's sentences are tested in tests/gui/test_browse_pane.py.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pushing import push_paths
from support.registry import DEFAULT_PASSWORD, DEFAULT_USER, RegistryProcess
from test_browse import EMPTY, artifact_manifest, put_blob, put_manifest
from test_push import make_file

from hoist.core.errors import DeleteRefused, NotFound
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.deletion import DeletePlan, delete_manifests, plan_delete


async def tagged(reg: RegistryProcess, repo: str, tags: dict[str, bytes]) -> dict[str, str]:
    """Put each tag's manifest (tags given the same bytes share a digest): tag → digest."""
    async with httpx.AsyncClient(base_url=reg.url) as c:
        await put_blob(c, repo, EMPTY)
        return {tag: await put_manifest(c, repo, tag, data) for tag, data in tags.items()}


async def test_the_plan_names_every_tag_sharing_the_chosen_manifests(
    fresh_registry: RegistryProcess,
) -> None:
    one = artifact_manifest(annotations={"n": "1"})
    two = artifact_manifest(annotations={"n": "2"})
    digests = await tagged(fresh_registry, "del/r", {"a": one, "b": one, "c": two, "d": two})
    async with RegistryClient(fresh_registry.host) as client:
        plan = await plan_delete(client, "del/r", ["a", "c", "d"])
        assert plan == DeletePlan(
            "del/r", ("a", "c", "d"), {digests["a"]: ("a", "b"), digests["c"]: ("c", "d")}
        )
        assert plan.also_removed == ["b"]
        deleted: list[str] = []
        await delete_manifests(client, plan, deleted)
        assert deleted == [digests["a"], digests["c"]]
        for tag in "abcd":
            assert await client.head_manifest("del/r", tag) is None


async def test_a_digest_can_be_planned_and_names_its_tags(
    fresh_registry: RegistryProcess,
) -> None:
    digests = await tagged(
        fresh_registry, "del/d", {"x": artifact_manifest(), "y": artifact_manifest()}
    )
    digest = digests["x"]
    async with RegistryClient(fresh_registry.host) as client:
        plan = await plan_delete(client, "del/d", [digest])
    assert list(plan.digests) == [digest]
    assert sorted(plan.also_removed) == ["x", "y"]


async def test_planning_a_missing_tag_says_it_does_not_exist(registry: RegistryProcess) -> None:
    await tagged(registry, "del/missing", {"there": artifact_manifest()})
    async with RegistryClient(registry.host) as client:
        with pytest.raises(NotFound, match="does not exist"):
            await plan_delete(client, "del/missing", ["there", "gone"])


async def test_credentials_without_delete_rights_are_told_so(
    token_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    server = token_registry.token_auth
    assert server is not None
    creds = Credentials(DEFAULT_USER, DEFAULT_PASSWORD)
    path = make_file(tmp_path / "a.bin", 100)
    await push_paths(token_registry.host, "del/tok:v1", [path], credentials=creds)
    server.policy = {DEFAULT_USER: ["pull", "push"], "": ["pull"]}
    async with RegistryClient(token_registry.host, credentials=creds) as client:
        plan = await plan_delete(client, "del/tok", ["v1"])
        deleted: list[str] = []
        with pytest.raises(DeleteRefused) as info:
            await delete_manifests(client, plan, deleted)
        assert deleted == []
        assert await client.head_manifest("del/tok", "v1") is not None
    assert info.value.hint == "These credentials may not delete here"
