"""Tests of the test infrastructure itself, against the real distribution 2.8 registry.

If these fail, every higher-level resumability test is meaningless, so they check the exact
behaviours other tests rely on (auth modes, byte-exact cuts, lost responses, session survival).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.proxy import FaultProxy, ProxyFactory, match
from support.registry import DEFAULT_PASSWORD as AUTH_PASSWORD
from support.registry import DEFAULT_USER as AUTH_USER
from support.registry import RegistryFactory, RegistryProcess
from support.tokenserver import TokenServer, TokenServerFactory, token_from

OCTET = {"Content-Type": "application/octet-stream"}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="..",service=".."` → ("bearer", {...})."""
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def with_digest(location: str, base: str, digest: str) -> httpx.URL:
    # httpx's `params=` would replace the Location's own query (`_state`), so add to it.
    return httpx.URL(base).join(location).copy_add_param("digest", digest)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def error_codes(response: httpx.Response) -> set[str]:
    return {e["code"] for e in response.json().get("errors", [])}


# -- registry process -----------------------------------------------------------------------


def test_registry_answers_v2(registry: RegistryProcess) -> None:
    r = httpx.get(f"{registry.url}/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert registry.host == f"127.0.0.1:{registry.port}"
    config = registry.config_path.read_text()
    assert "uploadpurging:\n      enabled: false" in config
    assert "redirect:\n    disable: true" in config
    assert "level=info" in registry.log_text()


def test_stop_kill_restart_and_no_leak() -> None:
    with RegistryProcess(http_secret="s") as reg, httpx.Client(base_url=reg.url) as c:
        data = b"survives restarts"
        r = c.post("/v2/keep/me/blobs/uploads/")
        r = c.put(with_digest(r.headers["Location"], reg.url, sha256(data)), content=data)
        assert r.status_code == 201
        assert reg.blob_exists(sha256(data))
        pid, port = reg.pid, reg.port
        assert pid is not None
        reg.kill()
        assert not reg.running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{reg.url}/v2/", timeout=2)
        reg.restart()
        assert reg.port == port and reg.pid != pid
        assert c.head(f"/v2/keep/me/blobs/{sha256(data)}").status_code == 200
        pid = reg.pid
        assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not reg.workdir.exists()


def test_catalog_maxentries(registry_factory: RegistryFactory) -> None:
    reg = registry_factory(catalog_maxentries=2)
    with httpx.Client(base_url=reg.url) as c:
        for i in range(3):
            data = b"repo %d" % i
            r = c.post(f"/v2/cat/r{i}/blobs/uploads/")
            r = c.put(with_digest(r.headers["Location"], reg.url, sha256(data)), content=data)
            assert r.status_code == 201
        r = c.get("/v2/_catalog")
        assert r.json() == {"repositories": ["cat/r0", "cat/r1"]}
        assert 'rel="next"' in r.headers["Link"]
        r = c.get("/v2/_catalog", params={"n": 3})
        assert r.status_code == 400
        assert error_codes(r) == {"PAGINATION_NUMBER_INVALID"}


def test_extra_config_is_merged(registry_factory: RegistryFactory) -> None:
    reg = registry_factory(extra_config={"http": {"headers": {"X-Hoist-Test": ["yes"]}}})
    r = httpx.get(f"{reg.url}/v2/")
    assert r.headers["X-Hoist-Test"] == "yes"
    assert r.headers["X-Content-Type-Options"] == "nosniff"  # the default headers survive


def test_state_dir_and_qt_env(state_dir: Path, config_dir: Path, tmp_path: Path) -> None:
    assert os.environ["HOIST_STATE_DIR"] == str(tmp_path / "state") == str(state_dir)
    assert os.environ["HOIST_CONFIG_DIR"] == str(tmp_path / "config") == str(config_dir)
    assert state_dir.is_dir() and config_dir.is_dir()
    assert os.environ["QT_QPA_PLATFORM"] == "offscreen"


def test_htpasswd_registry(auth_registry: RegistryProcess) -> None:
    r = httpx.get(f"{auth_registry.url}/v2/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="hoist-test"'
    r = httpx.get(f"{auth_registry.url}/v2/", auth=(AUTH_USER, "wrong"))
    assert r.status_code == 401
    r = httpx.get(f"{auth_registry.url}/v2/", auth=(AUTH_USER, AUTH_PASSWORD))
    assert r.status_code == 200
    assert auth_registry.credentials == (AUTH_USER, AUTH_PASSWORD)


# -- token auth -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_token_registry_push(
    algorithm: str, registry_factory: RegistryFactory, token_server_factory: TokenServerFactory
) -> None:
    tokens = token_server_factory(algorithm=algorithm)
    reg = registry_factory(token_auth=tokens)
    with httpx.Client() as c:
        r = c.get(f"{reg.url}/v2/")
        assert r.status_code == 401
        scheme, params = parse_challenge(r.headers["WWW-Authenticate"])
        assert scheme == "bearer"
        assert params == {"realm": tokens.realm, "service": tokens.service}

        anon = c.get(params["realm"], params={"service": params["service"]})
        assert anon.status_code == 200
        bearer = {"Authorization": f"Bearer {token_from(anon.json())}"}
        assert c.get(f"{reg.url}/v2/", headers=bearer).status_code == 200

        # The anonymous token carries no scope: pushing needs a new, scoped one.
        r = c.post(f"{reg.url}/v2/team/app/blobs/uploads/", headers=bearer)
        assert r.status_code == 401
        _, params = parse_challenge(r.headers["WWW-Authenticate"])
        assert params["error"] == "insufficient_scope"
        # Go map order: the action order in the challenge varies between requests.
        kind, name, actions = params["scope"].split(":")
        assert (kind, name, set(actions.split(","))) == ("repository", "team/app", {"pull", "push"})

        scope = "repository:team/app:pull,push"
        r = c.get(
            params["realm"],
            params={"service": params["service"], "scope": scope},
            auth=(AUTH_USER, AUTH_PASSWORD),
        )
        assert r.status_code == 200
        body = r.json()
        assert body["expires_in"] == tokens.expires_in and "issued_at" in body
        bearer = {"Authorization": f"Bearer {token_from(body)}"}

        data = os.urandom(4096)
        r = c.post(f"{reg.url}/v2/team/app/blobs/uploads/", headers=bearer)
        assert r.status_code == 202
        r = c.put(
            with_digest(r.headers["Location"], reg.url, sha256(data)),
            content=data,
            headers={**bearer, **OCTET},
        )
        assert r.status_code == 201
        assert r.headers["Docker-Content-Digest"] == sha256(data)
        r = c.get(f"{reg.url}/v2/team/app/blobs/{sha256(data)}", headers=bearer)
        assert r.status_code == 200 and r.content == data

    assert tokens.count() == 2
    assert tokens.count(scope) == 1
    last = tokens.issued[-1]
    assert last.user == AUTH_USER and last.grant_type == "basic"
    assert [str(s) for s in last.granted] == [scope]


def test_token_policy_oauth_and_forged_tokens(token_registry: RegistryProcess) -> None:
    reg = token_registry
    tokens = reg.token_auth
    assert tokens is not None
    tokens.policy = {"": ["pull"]}
    tokens.expires_in = 30
    scope = "repository:team/app:pull,push"
    with httpx.Client() as c:
        # Anonymous asks for push but only gets pull: the registry refuses the upload.
        r = c.get(tokens.realm, params={"service": tokens.service, "scope": scope})
        assert [str(s) for s in tokens.issued[-1].granted] == ["repository:team/app:pull"]
        anon = {"Authorization": f"Bearer {token_from(r.json())}"}
        r = c.post(f"{reg.url}/v2/team/app/blobs/uploads/", headers=anon)
        assert r.status_code == 401
        assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]

        # Wrong password: 401 from the token server.
        r = c.get(tokens.realm, params={"scope": scope}, auth=(AUTH_USER, "nope"))
        assert r.status_code == 401

        # OAuth2 password grant, then refresh grant; both tokens push.
        form = {
            "grant_type": "password",
            "username": AUTH_USER,
            "password": AUTH_PASSWORD,
            "service": tokens.service,
            "client_id": "hoist",
            "scope": scope,
        }
        r = c.post(tokens.realm, data=form)
        assert r.status_code == 200
        refresh = r.json()["refresh_token"]
        assert r.json()["expires_in"] == 30
        r = c.post(
            tokens.realm,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": "hoist",
                "service": tokens.service,
                "scope": scope,
            },
        )
        assert r.status_code == 200
        bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert c.post(f"{reg.url}/v2/team/app/blobs/uploads/", headers=bearer).status_code == 202
        assert [t.grant_type for t in tokens.issued[-2:]] == ["password", "refresh_token"]
        tokens.revoke_refresh_tokens()
        r = c.post(
            tokens.realm,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": "hoist",
                "service": tokens.service,
            },
        )
        assert r.status_code == 401

        # Tokens the registry must reject: expired (beyond its 60 s leeway), wrong audience.
        now = int(time.time())
        base = {
            "iss": tokens.issuer,
            "sub": AUTH_USER,
            "aud": tokens.service,
            "iat": now,
            "nbf": now,
            "exp": now + 60,
            "jti": "x",
            "access": [{"type": "repository", "name": "team/app", "actions": ["pull"]}],
        }
        good = tokens.sign(base)
        expired = tokens.sign({**base, "exp": now - 120, "nbf": now - 300})
        other_aud = tokens.sign({**base, "aud": "someone-else"})
        url = f"{reg.url}/v2/team/app/tags/list"
        assert c.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 404
        for bad in (expired, other_aud):
            r = c.get(url, headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_token_server_without_oauth_post_answers_404(
    token_server_factory: TokenServerFactory,
) -> None:
    tokens: TokenServer = token_server_factory(oauth_post=False, allow_anonymous=False)
    assert httpx.post(tokens.realm, data={"grant_type": "password"}).status_code == 404
    assert httpx.get(tokens.realm).status_code == 401
    assert httpx.get(tokens.realm, auth=(AUTH_USER, AUTH_PASSWORD)).status_code == 200


# -- fault proxy ----------------------------------------------------------------------------


def test_proxy_forwards_and_counts_bytes(
    registry: RegistryProcess, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(registry)
    request = f"GET /v2/ HTTP/1.1\r\nHost: {proxy.host}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert proxy.bytes_up == len(request)
    assert proxy.bytes_down == len(received)
    assert proxy.connections == 1
    assert proxy.requests == [("GET", "/v2/", None, 200)]

    proxy.reset_counters()
    with httpx.Client(base_url=proxy.url) as c:
        for _ in range(3):
            assert c.get("/v2/").status_code == 200
    assert proxy.connections == 1  # keep-alive goes through the proxy too
    assert [r.status for r in proxy.requests] == [200, 200, 200]
    assert proxy.bytes_up > 0 and proxy.bytes_down > 0


async def test_proxy_usable_from_async_test(
    registry: RegistryProcess, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(registry)
    async with httpx.AsyncClient(base_url=proxy.url) as c:
        data = os.urandom(100_000)
        r = await c.post("/v2/async/t/blobs/uploads/")
        r = await c.patch(r.headers["Location"], content=data, headers=OCTET)
        assert r.status_code == 202 and r.headers["Range"] == f"0-{len(data) - 1}"
        # Locations are built from the Host header, so they point back through the proxy.
        assert r.headers["Location"].startswith(proxy.url)
    assert proxy.requests[-1] == ("PATCH", proxy.requests[-1].path, len(data), 202)


def test_cut_after_upstream_bytes_delivers_exactly_n(
    fresh_registry: RegistryProcess, fault_proxy: ProxyFactory
) -> None:
    reg = fresh_registry
    proxy = fault_proxy(reg)
    location = httpx.post(f"{proxy.url}/v2/cut/me/blobs/uploads/").headers["Location"]
    target = httpx.URL(location).raw_path.decode()
    body_len, keep = 1_000_000, 300_000
    head = (
        f"PATCH {target} HTTP/1.1\r\nHost: {proxy.host}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {body_len}\r\n\r\n"
    ).encode()
    proxy.reset_counters()
    proxy.cut_after_upstream_bytes(len(head) + keep)
    errors: list[OSError] = []
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        try:
            s.sendall(head + os.urandom(body_len))
        except OSError as exc:
            errors.append(exc)
        try:
            assert s.recv(65536) == b"", "the client must not get any response"
        except OSError as exc:
            errors.append(exc)
    assert any(isinstance(e, ConnectionResetError | BrokenPipeError) for e in errors), errors
    assert proxy.bytes_up == len(head) + keep
    assert proxy.requests[-1].status is None
    assert proxy.events[-1].startswith("cut PATCH")
    # The registry stored every delivered byte before it saw the reset.
    assert wait_for(lambda: f"copied={keep}" in reg.log_text()), reg.log_text()[-2000:]
    (upload,) = reg.upload_dirs("cut/me")
    assert (upload / "data").stat().st_size == keep

    # One-shot: the next request goes through untouched.
    assert httpx.get(f"{proxy.url}/v2/").status_code == 200


def test_cut_is_a_connection_error_for_httpx(
    registry: RegistryProcess, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(registry)
    with httpx.Client(base_url=proxy.url) as c:
        location = c.post("/v2/cut/httpx/blobs/uploads/").headers["Location"]
        proxy.cut_after_upstream_bytes(10_000)
        with pytest.raises(httpx.TransportError):
            c.patch(location, content=os.urandom(200_000), headers=OCTET)
        assert c.get("/v2/").status_code == 200
    assert proxy.connections == 2


def test_swallow_response_after_upstream_committed(
    registry: RegistryProcess, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(registry)
    data = os.urandom(50_000)
    with httpx.Client(base_url=proxy.url) as c:
        location = c.post("/v2/swallow/me/blobs/uploads/").headers["Location"]
        assert c.head(f"/v2/swallow/me/blobs/{sha256(data)}").status_code == 404
        proxy.swallow_response(match("PUT", "digest="))
        with pytest.raises(httpx.TransportError):
            c.put(with_digest(location, proxy.url, sha256(data)), content=data, headers=OCTET)
        # The client never saw the 201, yet the blob exists.
        assert c.head(f"/v2/swallow/me/blobs/{sha256(data)}").status_code == 200
    assert proxy.requests[-2].method == "PUT" and proxy.requests[-2].status == 201
    (event,) = proxy.events
    assert event.startswith("swallow PUT")


def test_swallowed_patch_kills_the_session_on_distribution_2_8(
    registry: RegistryProcess, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(registry)
    with httpx.Client(base_url=proxy.url) as c:
        location = c.post("/v2/swallow/patch/blobs/uploads/").headers["Location"]
        proxy.swallow_response("PATCH")
        with pytest.raises(httpx.TransportError):
            c.patch(location, content=b"a" * 1000, headers=OCTET)
        assert proxy.requests[-1].status == 202
        # Resuming from the last Location we *received* fails: offset 0 != stored 1000.
        r = c.get(location)
        assert r.status_code == 404 and error_codes(r) == {"BLOB_UPLOAD_INVALID"}


def test_http_level_faults(registry: RegistryProcess, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(registry)
    big = os.urandom(2_000_000)
    with httpx.Client(base_url=proxy.url) as c:
        location = c.post("/v2/faults/f/blobs/uploads/").headers["Location"]

        # nginx-style 413 answered before the body is read, then the connection closes.
        proxy.respond_instead(
            match("PATCH", min_content_length=1_000_000),
            413,
            {"Content-Type": "text/html"},
            b"<html>413 Request Entity Too Large</html>",
        )
        r = c.patch(location, content=big, headers=OCTET)
        assert r.status_code == 413 and r.headers["Connection"] == "close"
        assert r.text.startswith("<html>")

        # 429 with Retry-After after reading the body; keep-alive stays.
        proxy.respond_instead("GET", 429, {"Retry-After": "1"}, before_body=False)
        conns = proxy.connections
        r = c.get("/v2/")
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert c.get("/v2/").status_code == 200
        assert proxy.connections == conns + 1  # one reconnect after the 413 close, then reuse

        proxy.fail_every(2)
        assert [c.get("/v2/").status_code for _ in range(4)] == [200, 502, 200, 502]
        proxy.clear_faults()
        proxy.fail_every(1, 503, forward=True)
        r = c.patch(location, content=b"b" * 100, headers=OCTET)
        assert r.status_code == 503 and "503 Service Unavailable" in r.text
        proxy.clear_faults()
    statuses = [(r.method, r.status) for r in proxy.requests]
    assert statuses[1:4] == [("PATCH", 413), ("GET", 429), ("GET", 200)]
    assert statuses[-1] == ("PATCH", 202)  # the upstream applied it; the client saw a 503


# -- upload sessions across restarts --------------------------------------------------------


def _start_two_chunk_upload(c: httpx.Client, reg: RegistryProcess, chunk: bytes) -> str:
    r = c.post(f"{reg.url}/v2/restart/me/blobs/uploads/")
    assert r.status_code == 202
    r = c.patch(
        httpx.URL(reg.url).join(r.headers["Location"]),
        content=chunk,
        headers={**OCTET, "Content-Range": f"0-{len(chunk) - 1}"},
    )
    assert r.status_code == 202 and r.headers["Range"] == f"0-{len(chunk) - 1}"
    return str(httpx.URL(reg.url).join(r.headers["Location"]))


def test_restart_with_http_secret_keeps_upload_session(registry_factory: RegistryFactory) -> None:
    reg = registry_factory(http_secret="hoist-test-secret")
    one, two = os.urandom(300_000), os.urandom(200_000)
    with httpx.Client() as c:
        location = _start_two_chunk_upload(c, reg, one)
        old_pid = reg.pid
        reg.restart()
        assert reg.pid != old_pid
        end = len(one) + len(two) - 1
        r = c.patch(location, content=two, headers={**OCTET, "Content-Range": f"{len(one)}-{end}"})
        assert r.status_code == 202 and r.headers["Range"] == f"0-{end}"
        r = c.put(with_digest(r.headers["Location"], reg.url, sha256(one + two)))
        assert r.status_code == 201
        assert r.headers["Docker-Content-Digest"] == sha256(one + two)


def test_restart_without_http_secret_loses_upload_session(
    fresh_registry: RegistryProcess,
) -> None:
    reg = fresh_registry
    one = os.urandom(300_000)
    with httpx.Client() as c:
        location = _start_two_chunk_upload(c, reg, one)
        reg.restart()
        r = c.patch(
            location,
            content=b"x" * 1000,
            headers={**OCTET, "Content-Range": f"{len(one)}-{len(one) + 999}"},
        )
        assert r.status_code == 404
        assert error_codes(r) & {"BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN"}
    assert "invalid secret" in reg.log_text()


def test_proxy_standalone_context_manager(registry: RegistryProcess) -> None:
    with FaultProxy(registry.host) as proxy:
        assert httpx.get(f"{proxy.url}/v2/").status_code == 200
        port = proxy.port
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2)
