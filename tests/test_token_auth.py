"""Bearer tokens for real: distribution in `auth: token` mode with the suite's token server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from pushing import push_paths
from support.registry import RegistryProcess
from test_push import make_file

from hoist.core.errors import AccessDenied, AuthenticationFailed, RegistryError
from hoist.core.oci.reference import parse_reference
from hoist.core.registry.auth import Credentials, parse_www_authenticate
from hoist.core.registry.client import RegistryClient
from hoist.core.transfer.push import TransferRun, plan_file_push
from hoist.core.transfer.upload import UploadSettings

KiB = 1024
MiB = 1024 * 1024


def creds(reg: RegistryProcess) -> Credentials:
    """The token server's user (conftest's AUTH_USER / AUTH_PASSWORD)."""
    del reg
    return Credentials("hoist", "s3cret-pass")


async def test_push_with_token_asks_for_pull_push_once(
    token_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    server = token_registry.token_auth
    assert server is not None
    path = make_file(tmp_path / "a.bin", 300 * KiB)
    await push_paths(
        token_registry.host,
        "tok/a:v1",
        [path],
        chunk_size=64 * KiB,
        credentials=creds(token_registry),
    )
    pushes = [t for t in server.issued if any("push" in s for s in t.scopes)]
    assert pushes and all(t.user == "hoist" for t in pushes)
    # One token serves the whole push (HEADs, POST, PATCHes, PUTs, manifest): tokens are cached.
    assert len(server.issued) <= 3, [t.scopes for t in server.issued]


class FakeClock:
    """Time that passes only as bytes are sent, at a pretended rate: a long upload's token
    life in a fraction of a second of wall clock (an UploadSettings.throttle that never waits).
    """

    def __init__(self, bytes_per_second: int) -> None:
        self.rate = bytes_per_second
        self.elapsed = 0.0
        self._start = time.monotonic()
        self._epoch = time.time()

    def monotonic(self) -> float:
        return self._start + self.elapsed

    def time(self) -> float:
        return self._epoch + self.elapsed

    async def send(self, n: int) -> None:
        self.elapsed += n / self.rate


async def test_long_upload_refreshes_its_token_before_expiry(
    token_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """Tokens that live 8 s and an upload that takes 20 s on Hoist's clock: each token is
    replaced once less than half its life is left (every 4 s), so none expires mid-upload."""
    server = token_registry.token_auth
    assert server is not None
    server.expires_in = 8
    path = make_file(tmp_path / "slow.bin", 5 * MiB)
    clock = FakeClock(256 * KiB)  # 5 MiB: 20 s
    settings = UploadSettings(chunk_size=256 * KiB, throttle=clock.send)
    transfer = plan_file_push(parse_reference(f"{token_registry.host}/tok/slow:v1"), [path])
    async with RegistryClient(
        token_registry.host, credentials=creds(token_registry), clock=clock
    ) as client:
        await TransferRun(transfer, client, settings=settings).run()
    assert clock.elapsed == pytest.approx(20.0)  # every byte once
    push_tokens = [t for t in server.issued if any("push" in s for s in t.scopes)]
    # Refreshed at most 4 s after each fetch: 20 s need at least 5. (Refreshed only at expiry:
    # 3; never refreshed: 1.)
    assert len(push_tokens) >= clock.elapsed // 4, [t.scopes for t in server.issued]
    assert not server.failures


async def test_401_mid_upload_fetches_a_fresh_token_and_resends_the_chunk(
    token_registry: RegistryProcess, state_dir: Path, tmp_path: Path, fault_proxy
) -> None:
    server = token_registry.token_auth
    assert server is not None
    proxy = fault_proxy(token_registry)
    challenge = (
        f'Bearer realm="{server.realm}",service="{server.service}",'
        'scope="repository:tok/mid:pull,push",error="invalid_token"'
    )
    path = make_file(tmp_path / "mid.bin", 400 * KiB)
    # The third PATCH is refused as if its token had expired (GitLab's 5-minute tokens).
    state = {"patches": 0}

    def third_patch(req) -> bool:  # type: ignore[no-untyped-def]
        if req.method == "PATCH":
            state["patches"] += 1
            return state["patches"] == 3
        return False

    proxy.respond_instead(
        third_patch, 401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"},
        b'{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}', before_body=False,
    )  # fmt: skip
    before = len(server.issued)
    await push_paths(
        proxy.host, "tok/mid:v1", [path], chunk_size=64 * KiB, credentials=creds(token_registry)
    )
    assert len(server.issued) > before + 1  # the first token, then a fresh one after the 401
    statuses = [r.status for r in proxy.requests if r.method == "PATCH"]
    assert statuses.count(401) == 1 and statuses.count(202) == 7  # 400 KiB / 64 KiB


async def test_mount_asks_for_the_source_repository_pull_scope(
    token_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    server = token_registry.token_auth
    assert server is not None
    async with RegistryClient(token_registry.host, credentials=creds(token_registry)) as client:
        await client.ping()
        assert client.auth is not None
        token = await client.auth.token_for(
            ["repository:tok/dst:pull,push", "repository:tok/src:pull"], force=True
        )
        assert token.value
    last = server.issued[-1]
    assert set(last.scopes) >= {"repository:tok/src:pull"}
    assert any(s.startswith("repository:tok/dst:") for s in last.scopes)


async def test_no_push_permission_is_a_clear_refusal(
    token_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    server = token_registry.token_auth
    assert server is not None
    server.policy = {"hoist": ["pull"], "": ["pull"]}
    path = make_file(tmp_path / "a.bin", 1000)
    with pytest.raises((AuthenticationFailed, AccessDenied)) as info:
        await push_paths(
            token_registry.host, "tok/ro:v1", [path], credentials=creds(token_registry)
        )
    assert info.value.hint


async def test_wrong_password_at_the_token_service(
    token_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "a.bin", 1000)
    with pytest.raises(AuthenticationFailed) as info:
        await push_paths(
            token_registry.host, "tok/bad:v1", [path], credentials=Credentials("hoist", "nope")
        )
    assert "hoist login" in info.value.sentence()


# -- what a real registry can't be made to send: scripted answers -----------------------------


def test_www_authenticate_parsing() -> None:
    (c,) = parse_www_authenticate(
        'Bearer realm="https://auth.example/token",service="reg",'
        'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"'
    )
    assert c.scheme == "bearer"
    assert c.params["scope"] == "repository:a/b:pull,push repository:c:pull"
    assert c.params["error"] == "insufficient_scope"
    two = parse_www_authenticate('Basic realm="x", Bearer realm="https://a/t",service=s')
    assert [c.scheme for c in two] == ["basic", "bearer"]
    assert two[1].params == {"realm": "https://a/t", "service": "s"}
    escaped = parse_www_authenticate(r'Bearer realm="a\"b,c"')
    assert escaped[0].params["realm"] == 'a"b,c'
    junk = parse_www_authenticate("=== garbage ,,, ")
    assert all(c.scheme != "bearer" and not c.params for c in junk)


async def test_malformed_challenge_and_html_token_endpoint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            return httpx.Response(200, text="<html><body>Sign in</body></html>")
        if "Authorization" in request.headers:
            return httpx.Response(200)
        if request.url.path == "/v2/":
            return httpx.Response(
                401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/t"'}
            )
        return httpx.Response(401, headers={"WWW-Authenticate": "Bearer ,,,=== nonsense"})

    async with RegistryClient(
        "reg.example", credentials=Credentials("u", "p"), transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(RegistryError) as info:
            await client.ping()
        assert "not a token" in info.value.message


async def test_authorization_never_follows_a_location_to_another_host() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("Authorization")))
        if request.url.host == "reg.example":
            if request.method == "POST":
                return httpx.Response(
                    202, headers={"Location": "https://storage.example/upload/1?sig=abc"}
                )
            return httpx.Response(200)
        return httpx.Response(204, headers={"Range": "0-0", "Location": "/upload/1?sig=def"})

    async with RegistryClient(
        "reg.example", credentials=Credentials("u", "p"), transport=httpx.MockTransport(handler)
    ) as client:
        await client.ping()
        assert client.auth is not None
        client.auth.scheme = "basic"  # as if the registry had asked for Basic credentials
        status = await client.start_upload("repo")
        assert status is not None and status.location.startswith("https://storage.example/")
        await client.upload_status(status.location)
    for host, authorization in seen:
        if host == "storage.example":
            assert authorization is None
    assert any(h == "reg.example" and a for h, a in seen)


async def test_identity_token_uses_the_oauth2_refresh_grant(
    token_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """docker's identity tokens (`<token>` as the username) go to the realm as an OAuth2
    refresh_token POST, never as Basic credentials."""
    server = token_registry.token_auth
    assert server is not None
    answer = httpx.post(
        server.realm,
        data={"grant_type": "password", "username": "hoist", "password": "s3cret-pass",
              "service": server.service, "client_id": "test", "access_type": "offline",
              "scope": ""},
    )  # fmt: skip
    answer.raise_for_status()
    refresh = answer.json()["refresh_token"]
    server.reset()
    path = make_file(tmp_path / "a.bin", 200 * KiB)
    await push_paths(
        token_registry.host, "tok/oauth:v1", [path], chunk_size=64 * KiB,
        credentials=Credentials("<token>", refresh),
    )  # fmt: skip
    grants = {t.grant_type for t in server.issued}
    assert grants == {"refresh_token"}, grants
    assert all(t.method == "POST" for t in server.issued)
