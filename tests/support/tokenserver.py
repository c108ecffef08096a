"""A minimal Docker token server for distribution's `auth: token` mode.

Real Bearer-token flows (challenge → realm → JWT → retry, scope upgrades, expiry, OAuth2 refresh)
are what hosted registries use, so tests run them against the real registry verifying real JWTs.

distribution 2.8 verifies: `iss` in its configured issuer, `aud` (a string) equal to its
service, `exp`/`nbf` with 60 s leeway, and a signature by a key found through the JWT header:
`x5c` (certificate chain verified against `rootcertbundle`, which is what we send), `jwk`, or
`kid` (libtrust fingerprint). `alg` must match the key: RS256 for RSA, ES256 (raw r||s) for P-256.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from support.service import Service

Algorithm = Literal["RS256", "ES256"]
# policy(user, type, name, requested actions) -> granted actions; user "" is anonymous.
PolicyFn = Callable[[str, str, str, list[str]], Iterable[str]]
Policy = Mapping[str, Iterable[str]] | PolicyFn

ANONYMOUS = ""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Scope:
    """One `type:name:actions` scope (`repository:team/app:pull,push`)."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            raise ValueError(f"malformed scope {text!r}")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass(frozen=True)
class IssuedToken:
    """One successful token response, for assertions about how often a client asks."""

    user: str  # "" when anonymous
    method: Literal["GET", "POST"]
    grant_type: str  # "basic", "anonymous", "password", "refresh_token"
    service: str
    requested: tuple[Scope, ...]
    granted: tuple[Scope, ...]
    token: str
    refresh_token: str | None
    expires_in: int
    issued_at: float = field(default_factory=time.time)

    @property
    def scopes(self) -> tuple[str, ...]:
        """The requested scopes as strings, as the client sent them."""
        return tuple(str(s) for s in self.requested)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end so handler threads do not pile up
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(
        self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path != self.server.owner.path:
            self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
            return
        status, payload, headers = self.server.owner._handle_get(
            urllib.parse.parse_qs(url.query, keep_blank_values=True),
            self.headers.get("Authorization"),
        )
        self._reply(status, payload, headers)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        owner = self.server.owner
        if url.path != owner.path or not owner.oauth_post:
            self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
            return
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        status, payload, headers = owner._handle_post(form)
        self._reply(status, payload, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: TokenServer


class TokenServer(Service):
    """Token realm on 127.0.0.1 signing JWTs that distribution 2.8 accepts.

    `users`: user → password for Basic (GET) and password grants (POST).
    `policy`: user → allowed actions on every repository (missing user: all requested actions),
    or a callable `(user, type, name, requested) -> granted`.
    `expires_in` is short by default so tests can exercise refresh; distribution adds 60 s of
    leeway to `exp`, so a token only stops working `expires_in + 60` seconds after issue.
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        allow_anonymous: bool = True,
        policy: Policy | None = None,
        expires_in: int = 60,
        service: str = "hoist-registry",
        issuer: str = "hoist-token-issuer",
        algorithm: Algorithm = "ES256",
        oauth_post: bool = True,
        path: str = "/token",
    ) -> None:
        self.users: dict[str, str] = dict(users if users is not None else {"hoist": "s3cret-pass"})
        self.allow_anonymous = allow_anonymous
        self.policy = policy
        self.expires_in = expires_in
        self.service = service
        self.issuer = issuer
        self.algorithm: Algorithm = algorithm
        self.oauth_post = oauth_post
        self.path = path
        self.issued: list[IssuedToken] = []
        self.failures: list[tuple[int, str]] = []  # (status, reason) of refused requests
        self._refresh_tokens: dict[str, str] = {}  # refresh token -> user
        self._lock = threading.Lock()
        self.workdir = Path(tempfile.mkdtemp(prefix="hoist-tokens-"))
        self.rootcertbundle = self.workdir / "root.pem"
        self._make_keys()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- keys --------------------------------------------------------------------------------

    def _new_key(self) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        if self.algorithm == "RS256":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    def _make_keys(self) -> None:
        """A root CA (written as the bundle) and a leaf signing cert sent in `x5c`."""
        now = dt.datetime.now(dt.UTC)
        ca_key = self._new_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hoist test token CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self._key = self._new_key()
        leaf = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hoist test token signer")])
            )
            .issuer_name(ca_name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self._x5c = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()]
        self.rootcertbundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def sign(self, claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
        """Sign arbitrary claims (tests can forge odd tokens with this)."""
        head = {"typ": "JWT", "alg": self.algorithm, "x5c": self._x5c, **(header or {})}
        signing_input = (
            _b64url(json.dumps(head, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        ).encode("ascii")
        key = self._key
        if isinstance(key, rsa.RSAPrivateKey):
            sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS wants raw r||s
        return signing_input.decode("ascii") + "." + _b64url(sig)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="token-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(5)

    def close(self) -> None:
        """Stop and delete the key/bundle folder."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("token server not started")
        port: int = self._httpd.server_address[1]
        return port

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"http://{self.host}{self.path}"

    def registry_auth_config(self) -> dict[str, str]:
        """The `auth: token:` section for the registry config."""
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(self.rootcertbundle),
        }

    # -- assertions helpers ------------------------------------------------------------------

    def count(self, scope: str | None = None) -> int:
        """Tokens issued (for a given requested scope string, e.g. 'repository:a/b:pull,push')."""
        with self._lock:
            if scope is None:
                return len(self.issued)
            return sum(1 for t in self.issued if scope in t.scopes)

    def reset(self) -> None:
        with self._lock:
            self.issued.clear()
            self.failures.clear()

    def revoke_refresh_tokens(self) -> None:
        """Forget every refresh token (the next refresh grant fails with 401)."""
        with self._lock:
            self._refresh_tokens.clear()

    # -- token logic -------------------------------------------------------------------------

    def _grant(self, user: str, requested: list[Scope]) -> list[Scope]:
        granted: list[Scope] = []
        for scope in requested:
            wanted = list(scope.actions)
            if self.policy is None:
                allowed = wanted
            elif callable(self.policy):
                allowed = [a for a in self.policy(user, scope.type, scope.name, wanted) if a]
            elif user in self.policy:
                permitted = set(self.policy[user])
                allowed = [a for a in wanted if a in permitted or "*" in permitted]
            else:
                allowed = wanted
            if allowed:
                granted.append(Scope(scope.type, scope.name, tuple(allowed)))
        return granted

    def _issue(
        self,
        user: str,
        method: Literal["GET", "POST"],
        grant_type: str,
        service: str,
        requested: list[Scope],
        refresh: bool,
    ) -> dict[str, Any]:
        granted = self._grant(user, requested)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": service,
            "exp": now + self.expires_in,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [
                {"type": s.type, "name": s.name, "actions": list(s.actions)} for s in granted
            ],
        }
        token = self.sign(claims)
        refresh_token: str | None = None
        if refresh and user:
            refresh_token = secrets.token_urlsafe(24)
        with self._lock:
            if refresh_token is not None:
                self._refresh_tokens[refresh_token] = user
            self.issued.append(
                IssuedToken(
                    user=user,
                    method=method,
                    grant_type=grant_type,
                    service=service,
                    requested=tuple(requested),
                    granted=tuple(granted),
                    token=token,
                    refresh_token=refresh_token,
                    expires_in=self.expires_in,
                )
            )
        payload: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z"),
        }
        if refresh_token is not None:
            payload["refresh_token"] = refresh_token
        return payload

    def _fail(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.failures.append((status, message))
        return status, {"errors": [{"code": code, "message": message}]}, dict(headers or {})

    @staticmethod
    def _scopes(values: Iterable[str]) -> list[Scope]:
        out: list[Scope] = []
        for value in values:
            out.extend(Scope.parse(part) for part in value.split() if part)
        return out

    def _handle_get(
        self, query: Mapping[str, list[str]], authorization: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        service = (query.get("service") or [self.service])[0]
        if service != self.service:
            return self._fail(400, "INVALID_SERVICE", f"unknown service {service!r}")
        try:
            requested = self._scopes(query.get("scope", []))
        except ValueError as exc:
            return self._fail(400, "INVALID_SCOPE", str(exc))
        challenge = {"WWW-Authenticate": 'Basic realm="hoist-token"'}
        user = ANONYMOUS
        if authorization:
            kind, _, cred = authorization.partition(" ")
            if kind.lower() != "basic":
                return self._fail(401, "UNAUTHORIZED", "basic credentials expected", challenge)
            try:
                name, _, password = base64.b64decode(cred).decode().partition(":")
            except ValueError:
                return self._fail(401, "UNAUTHORIZED", "malformed basic credentials", challenge)
            if self.users.get(name) != password or name == ANONYMOUS:
                return self._fail(401, "UNAUTHORIZED", "bad credentials", challenge)
            user = name
        elif not self.allow_anonymous:
            return self._fail(401, "UNAUTHORIZED", "authentication required", challenge)
        offline = (query.get("offline_token") or ["false"])[0].lower() == "true"
        grant = "basic" if user else "anonymous"
        return 200, self._issue(user, "GET", grant, service, requested, offline), {}

    def _handle_post(
        self, form: Mapping[str, list[str]]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        def one(key: str, default: str = "") -> str:
            return (form.get(key) or [default])[0]

        service = one("service", self.service)
        if service != self.service:
            return self._fail(400, "INVALID_SERVICE", f"unknown service {service!r}")
        if not one("client_id"):
            return self._fail(400, "INVALID_REQUEST", "missing client_id")
        try:
            requested = self._scopes(form.get("scope", []))
        except ValueError as exc:
            return self._fail(400, "INVALID_SCOPE", str(exc))
        grant_type = one("grant_type")
        if grant_type == "password":
            user, password = one("username"), one("password")
            if not user or self.users.get(user) != password:
                return self._fail(401, "UNAUTHORIZED", "bad credentials")
            return 200, self._issue(user, "POST", grant_type, service, requested, True), {}
        if grant_type == "refresh_token":
            with self._lock:
                user = self._refresh_tokens.get(one("refresh_token"), "")
            if not user:
                return self._fail(401, "UNAUTHORIZED", "unknown refresh token")
            payload = self._issue(user, "POST", grant_type, service, requested, False)
            payload["refresh_token"] = one("refresh_token")
            return 200, payload, {}
        return self._fail(400, "UNSUPPORTED_GRANT_TYPE", f"unsupported grant_type {grant_type!r}")

    def __repr__(self) -> str:
        where = self.realm if self._httpd is not None else "stopped"
        return f"<TokenServer {where} {self.algorithm} issued={len(self.issued)}>"


def token_from(response_json: Mapping[str, Any]) -> str:
    """The bearer token from a token response (`token` or `access_token`)."""
    value = response_json.get("token") or response_json.get("access_token")
    if not isinstance(value, str):
        raise ValueError("no token in response")
    return value


# The `token_server_factory` fixture's type: `(**TokenServer options) -> started server`.
TokenServerFactory = Callable[..., TokenServer]
