"""Hostile registries, endless answers and bad arguments (issue 16, network and secrets half).

Each case is what a probe of Hoist found: a real registry where it can show the fault, a
scripted answer (`httpx.MockTransport`) or a small server on 127.0.0.1 where only a hostile
server would answer that way. Kept in the suite so new code meets these cases too.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pushing import hoist_cli, push_paths
from support.registry import RegistryProcess
from support.tokenserver import TokenServer
from test_push import make_file

from core.auth import Credentials
from core.errors import HoistError
from core.registry import RegistryClient

KiB = 1024
DIGEST = "sha256:" + "a" * 64


def _other_host_challenges(seen: list[httpx.Request]) -> httpx.MockTransport:
    """A registry (Basic) that redirects blobs to storage.example, which answers 401 naming
    its own Bearer realm at evil.example."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        host = request.url.host
        if host == "reg.example":
            if "Authorization" not in request.headers:
                return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
            if "/blobs/" in request.url.path:
                return httpx.Response(
                    307, headers={"Location": "https://storage.example/b?X-Signature=s3cr3t"}
                )
            return httpx.Response(200)
        if host == "storage.example":
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://evil.example/token",service="x"'
                },
            )
        return httpx.Response(200, json={"token": "stolen"})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("operation", ["pull", "push"])
async def test_another_hosts_bearer_realm_never_gets_the_credentials(operation: str) -> None:
    """#1: a redirect target's own Bearer challenge is not the registry's: no token request."""
    seen: list[httpx.Request] = []
    async with RegistryClient(
        "reg.example", credentials=Credentials("u", "pw"), transport=_other_host_challenges(seen)
    ) as client:
        await client.ping()
        with pytest.raises(HoistError):
            if operation == "pull":
                await client.stream_blob("repo", DIGEST)
            else:  # a push asks first whether the blob is there (HEAD, redirects followed)
                await client.blob_size("repo", DIGEST)
    assert any(r.url.host == "storage.example" for r in seen)
    assert not [r for r in seen if r.url.host == "evil.example"]
    for request in seen:
        if request.url.host != "reg.example":
            assert "Authorization" not in request.headers


async def test_tokens_living_five_seconds_are_used(
    registry_factory: object, token_server_factory: object, state_dir: Path, tmp_path: Path
) -> None:
    """#20: a token server issuing 5 s tokens: login (ping) and a push both work."""
    server: TokenServer = token_server_factory(expires_in=5)  # type: ignore[operator]
    reg: RegistryProcess = registry_factory(token_auth=server)  # type: ignore[operator]
    creds = Credentials("hoist", "s3cret-pass")
    async with RegistryClient(reg.host, credentials=creds) as client:
        await client.ping()
    path = make_file(tmp_path / "a.bin", 300 * KiB)
    digest, _ = await push_paths(
        reg.host, "short/tokens:v1", [path], chunk_size=64 * KiB, credentials=creds
    )
    assert digest.startswith("sha256:")
    result = hoist_cli("login", reg.host, "-u", "hoist", "--password-stdin", input="s3cret-pass\n")
    assert "Login succeeded" in result.stderr, result.stderr
