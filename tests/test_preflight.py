"""What is checked before a push (core's `check_before_push`), against real registries.

The window's add sheet awaits it before planning. `hoist push` does not: it reports a source's
problems before touching the network and sends nothing before an image is verified (pinned by
test_sources.py, test_image_push.py and the exact byte counts of test_resume.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pushing import push_paths
from support.registry import DEFAULT_PASSWORD, DEFAULT_USER, RegistryProcess, free_port
from test_push import make_file

from hoist.core.errors import AccessDenied, AuthenticationFailed, RegistryNotAnswering
from hoist.core.oci.digest import sha256_bytes
from hoist.core.oci.manifest import OCI_EMPTY_DATA
from hoist.core.oci.reference import parse_reference
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient
from hoist.core.transfer.preflight import PushCheck, check_before_push


async def test_a_new_tag_is_ready_and_leaves_no_session(fresh_registry: RegistryProcess) -> None:
    reg = fresh_registry
    target = parse_reference(f"{reg.host}/pre/new:v1")
    async with RegistryClient(target.api_host) as client:
        check = await check_before_push(client, target, overwrite=False)
    assert check == PushCheck() and check.ready
    # The access check's session was used (the empty config), not left behind.
    assert reg.blob_exists(sha256_bytes(OCI_EMPTY_DATA))
    assert reg.upload_dirs("pre/new") == []


async def test_an_existing_tag_is_named_unless_overwriting(
    registry: RegistryProcess, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "a.bin", 1000)
    digest, _ = await push_paths(registry.host, "pre/there:v1", [path])
    target = parse_reference(f"{registry.host}/pre/there:v1")
    async with RegistryClient(target.api_host) as client:
        asked = await check_before_push(client, target, overwrite=False)
        chosen = await check_before_push(client, target, overwrite=True)
    assert asked.existing == digest and not asked.ready
    assert chosen.ready


async def test_wrong_password_is_refused_before_anything_else(
    auth_registry: RegistryProcess,
) -> None:
    target = parse_reference(f"{auth_registry.host}/pre/auth:v1")
    wrong = Credentials(DEFAULT_USER, "not-the-password")
    async with RegistryClient(target.api_host, credentials=wrong) as client:
        with pytest.raises(AuthenticationFailed) as info:
            await check_before_push(client, target, overwrite=False)
    assert info.value.hint


async def test_basic_auth_credentials_may_push(auth_registry: RegistryProcess) -> None:
    target = parse_reference(f"{auth_registry.host}/pre/auth:v1")
    good = Credentials(DEFAULT_USER, DEFAULT_PASSWORD)
    async with RegistryClient(target.api_host, credentials=good) as client:
        assert (await check_before_push(client, target, overwrite=False)).ready


async def test_pull_only_credentials_are_refused_by_the_access_check(
    token_registry: RegistryProcess,
) -> None:
    server = token_registry.token_auth
    assert server is not None
    server.policy = {DEFAULT_USER: ["pull"], "": ["pull"]}
    target = parse_reference(f"{token_registry.host}/pre/ro:v1")
    creds = Credentials(DEFAULT_USER, DEFAULT_PASSWORD)
    async with RegistryClient(target.api_host, credentials=creds) as client:
        with pytest.raises((AuthenticationFailed, AccessDenied)) as info:
            await check_before_push(client, target, overwrite=True)
    assert info.value.hint


async def test_a_registry_that_is_down_is_said_at_once() -> None:
    target = parse_reference(f"127.0.0.1:{free_port()}/pre/down:v1")
    async with RegistryClient(target.api_host) as client:
        with pytest.raises(RegistryNotAnswering):
            await check_before_push(client, target, overwrite=False)
