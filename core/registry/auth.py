"""Registry authentication as an `httpx.Auth` flow: Basic, and Bearer tokens from a realm.

Modelled on httpx's DigestAuth: the flow answers the server's challenge itself. It also decides
what scope a request needs from its path (`/v2/<name>/blobs/...` → `repository:<name>:pull`),
so a long push asks for `pull,push` once and refreshes the token before it expires.

Credentials go only to the registry's own origin (and to the token realm it names): a Location
or redirect to another host (object storage) is sent without an Authorization header.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from hoist.core.errors import (
    ANSWER_DEADLINE,
    AuthenticationFailed,
    HoistError,
    RegistryError,
    error_from_response,
)

#: Tokens without `expires_in` live 60 s (distribution's token spec).
DEFAULT_TOKEN_LIFETIME = 60.0
#: A token answer is a small JSON document (JWTs of a few KiB); more is refused.
MAX_TOKEN_ANSWER = 1024 * 1024
_PATH_SCOPE = re.compile(r"^/v2/(.+?)/(blobs|manifests|tags|referrers)(/|$)")


class Clock(Protocol):
    """Where the token cache reads the time: the real clocks by default; a test's fake one
    drives a token to its expiry without waiting for it."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: when a cached token expires."""
        ...

    def time(self) -> float:
        """Seconds since the epoch: a JWT's `exp` is wall-clock time."""
        ...


#: The `time` module has both clocks.
SYSTEM_CLOCK: Clock = time


@dataclass(frozen=True)
class Credentials:
    """A username and secret. `username == "<token>"` means the secret is an identity token
    (docker's convention) to be used as an OAuth2 refresh token."""

    username: str
    password: str = field(repr=False)

    @property
    def is_identity_token(self) -> bool:
        return self.username == "<token>"

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse one `WWW-Authenticate` value into challenges.

    Handles several challenges in one header, quoted values with commas and escapes
    (`scope="repository:a:pull,push"`), and tolerates junk by skipping it.
    """
    challenges: list[Challenge] = []
    i, n = 0, len(header)
    current: Challenge | None = None
    token = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        m = token.match(header, i)
        if not m:
            i += 1
            continue
        word, j = m.group(0), m.end()
        k = j
        while k < n and header[k] in " \t":
            k += 1
        if k < n and header[k] == "=" and current is not None:
            k += 1
            while k < n and header[k] in " \t":
                k += 1
            if k < n and header[k] == '"':
                k += 1
                value = []
                while k < n and header[k] != '"':
                    if header[k] == "\\" and k + 1 < n:
                        k += 1
                    value.append(header[k])
                    k += 1
                k += 1
                current.params[word.lower()] = "".join(value)
            else:
                vm = re.compile(r"[^,\s]*").match(header, k)
                assert vm is not None
                current.params[word.lower()] = vm.group(0)
                k = vm.end()
            i = k
        else:
            current = Challenge(word.lower(), {})
            challenges.append(current)
            i = j
    return challenges


@dataclass
class Token:
    value: str = field(repr=False)
    scopes: frozenset[str]
    expires_at: float
    lifetime: float

    def fresh(self, now: float) -> bool:
        """Still good for a while: refresh when less than 10 % of the lifetime (≥ 5 s) is left.

        The margin is at most half the lifetime, so a token that lives 5 s or less (some token
        servers issue such) is still used after it was issued instead of never.
        """
        margin = min(max(5.0, 0.1 * self.lifetime), 0.5 * self.lifetime)
        return now < self.expires_at - margin


def scope_covers(granted: frozenset[str], needed: str) -> bool:
    """Whether the granted scopes include every action of `needed` (`repository:x:pull`)."""
    kind, _, rest = needed.partition(":")
    name, _, actions = rest.rpartition(":")
    want = set(actions.split(","))
    have: set[str] = set()
    for scope in granted:
        k, _, r = scope.partition(":")
        nm, _, acts = r.rpartition(":")
        if k == kind and nm == name:
            have.update(acts.split(","))
    return "*" in have or want <= have


def _jwt_expiry(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(payload["exp"]) if isinstance(payload, dict) and "exp" in payload else None
    except (ValueError, KeyError, TypeError):
        return None


class RegistryAuth(httpx.Auth):
    """The auth flow for one registry origin.

    Args:
        origin: `(host, port)` of the registry; no other host ever gets credentials.
        credentials: None for anonymous access.
        lookup: finds credentials (keyring, docker config: blocking, run in a worker thread)
            the first time the registry asks for them, so an anonymous registry never
            touches the keyring (no locked-wallet prompt, no start-up cost).
        token_client: a client without this auth, for the token realm (often another host).
        clock: when tokens expire (default: the system's clocks).
    """

    requires_response_body = False

    def __init__(
        self,
        origin: tuple[str, int],
        credentials: Credentials | None = None,
        *,
        token_client: httpx.AsyncClient,
        lookup: Callable[[], Credentials | None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.origin = origin
        self.clock = clock
        self.token_client = token_client
        self._token_lock = asyncio.Lock()
        self.credentials = credentials
        self._lookup = lookup
        self.scheme: str | None = None  # "basic" or "bearer", once the registry said so
        self.bearer_params: dict[str, str] = {}
        self.tokens: list[Token] = []
        self.refresh_token: str | None = (
            credentials.password if credentials and credentials.is_identity_token else None
        )
        self._push_repos: set[str] = set()
        self.token_requests = 0

    def expect_push(self, repository: str) -> None:
        """Ask for `pull,push` on this repository even for reads, so a push takes one token."""
        self._push_repos.add(repository)

    # -- scopes -----------------------------------------------------------------------------

    def scopes_for(self, request: httpx.Request) -> list[str]:
        m = _PATH_SCOPE.match(request.url.path)
        if request.url.path.rstrip("/") == "/v2/_catalog":
            return ["registry:catalog:*"]
        if not m:
            return []
        name, kind = m.group(1), m.group(2)
        method = request.method
        if method in ("GET", "HEAD"):
            actions = "pull,push" if name in self._push_repos else "pull"
        elif method == "DELETE" and kind == "manifests":
            actions = "delete"
        else:
            actions = "pull,push"
        scopes = [f"repository:{name}:{actions}"]
        mount_from = request.url.params.get("from")
        if mount_from and method == "POST":
            scopes.append(f"repository:{mount_from}:pull")
        return scopes

    def _cached(self, scopes: list[str], now: float) -> Token | None:
        for token in reversed(self.tokens):
            if token.fresh(now) and all(scope_covers(token.scopes, s) for s in scopes):
                return token
        return None

    def _same_origin(self, url: httpx.URL) -> bool:
        port = url.port or (443 if url.scheme == "https" else 80)
        return (url.host, port) == self.origin

    # -- the flow ---------------------------------------------------------------------------

    async def authorization(self, request: httpx.Request) -> str | None:
        """The Authorization header for `request`, or None (another host, or nothing known yet).

        Used by the flow below and by the file-body sender, so both send the same credentials.
        """
        if not self._same_origin(request.url):
            return None
        scopes = self.scopes_for(request)
        if self.scheme == "bearer":
            token = self._cached(scopes, self.clock.monotonic())
            if token is None and scopes:
                token = await self.token_for(scopes)
            return f"Bearer {token.value}" if token is not None else None
        if self.scheme == "basic" and self.credentials:
            return self.credentials.basic_header()
        return None

    async def _look_up_credentials(self) -> None:
        lookup, self._lookup = self._lookup, None
        if lookup is not None and self.credentials is None:
            self.credentials = await asyncio.to_thread(lookup)
            if self.credentials is not None and self.credentials.is_identity_token:
                self.refresh_token = self.credentials.password

    async def on_unauthorized(self, request: httpx.Request, headers: httpx.Headers) -> bool:
        """Learn from a 401's challenge; True when a retry may now succeed (new scheme or a
        fresh token), False when the credentials were simply refused."""
        if not self._same_origin(request.url):
            return False
        await self._look_up_credentials()
        challenges = parse_www_authenticate(headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and "realm" in bearer.params:
            self.scheme = "bearer"
            self.bearer_params = bearer.params
            wanted = self.scopes_for(request) + bearer.params.get("scope", "").split()
            await self.token_for([s for s in dict.fromkeys(wanted) if s], force=True)
            return True
        if basic is not None and self.credentials and self.scheme != "basic":
            self.scheme = "basic"
            return True
        return False

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        header = await self.authorization(request)
        if header:
            request.headers["Authorization"] = header
        elif not self._same_origin(request.url):
            request.headers.pop("Authorization", None)
        response = yield request
        if response.status_code != 401 or not self._same_origin(response.request.url):
            # A redirect target on another host (object storage, a CDN) that asks for
            # credentials names its own realm: the registry's credentials are not its to have.
            return
        # A streamed body (a chunk read from disk) can't be replayed here: the caller sees the
        # 401 and sends the chunk again with a fresh body; the new token is cached by then.
        if await self.on_unauthorized(request, response.headers) and isinstance(
            request.stream, httpx.ByteStream
        ):
            header = await self.authorization(request)
            if header:
                request.headers["Authorization"] = header
                yield request  # httpx reads (and closes) the 401 before sending this

    async def token_for(self, scopes: list[str], *, force: bool = False) -> Token:
        """A token covering `scopes`: from the cache, or fetched (one fetch at a time)."""
        async with self._token_lock:
            if not force:
                cached = self._cached(scopes, self.clock.monotonic())
                if cached is not None:
                    return cached
            return await self._fetch_token(scopes)

    async def _send_capped(self, request: httpx.Request) -> httpx.Response:
        """Send a token request and read at most MAX_TOKEN_ANSWER bytes of the answer, within
        the answer deadline: an endless answer from a realm must not fill memory."""
        from hoist.core.registry.answers import read_capped

        try:
            async with asyncio.timeout(ANSWER_DEADLINE):
                response = await self.token_client.send(request, stream=True)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("the token service did not answer in time") from exc
        try:
            body = await read_capped(
                response, MAX_TOKEN_ANSWER, strict=True, deadline=ANSWER_DEADLINE
            )
        except RegistryError as exc:
            raise RegistryError(
                f"the token service at {request.url.host} answered more than "
                f"{MAX_TOKEN_ANSWER} bytes, which is not a token",
                status=response.status_code,
                hint="The registry's auth service is misconfigured or a proxy answered instead",
            ) from exc
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )

    async def _fetch_token(self, scopes: list[str]) -> Token:
        """Get a token from the realm: OAuth2 POST with a refresh token when we have one
        (falling back to GET on 404, as docker does), else GET with Basic credentials or none."""
        realm = self.bearer_params.get("realm", "")
        realm_url = httpx.URL(realm)
        if realm_url.scheme not in ("http", "https"):
            raise AuthenticationFailed(
                f"the registry named an unusable token realm {realm!r}", status=401
            )
        service = self.bearer_params.get("service", "")
        self.token_requests += 1
        response: httpx.Response | None = None
        try:
            if self.refresh_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": self.refresh_token,
                    "service": service,
                    "client_id": "hoist",
                    "scope": " ".join(scopes),
                }
                response = await self._send_capped(
                    self.token_client.build_request("POST", realm_url, data=form)
                )
                if response.status_code in (404, 405):
                    response = None
            if response is None:
                params: list[tuple[str, str | int | float | bool | None]] = (
                    [("service", service)] if service else []
                )
                params += [("scope", s) for s in scopes]
                headers = {}
                if self.credentials and not self.credentials.is_identity_token:
                    headers["Authorization"] = self.credentials.basic_header()
                    params.append(("account", self.credentials.username))
                response = await self._send_capped(
                    self.token_client.build_request(
                        "GET", realm_url.copy_merge_params(httpx.QueryParams(params)),
                        headers=headers,
                    )
                )  # fmt: skip
        except (httpx.HTTPError, HoistError) as exc:
            if isinstance(exc, RegistryError):
                raise
            from hoist.core.errors import NetworkError

            raise NetworkError(f"can't reach the token service at {realm_url.host}") from exc
        if response.status_code >= 400:
            err = error_from_response(response, response.content, what="token request")
            raise AuthenticationFailed(
                err.message, status=response.status_code, code=err.code, details=err.details
            )
        try:
            doc = json.loads(response.content)
            value = doc.get("token") or doc.get("access_token")
            if not isinstance(value, str) or not value:
                raise ValueError("no token")
        except (ValueError, AttributeError, RecursionError) as exc:
            raise RegistryError(
                "the token service answered something that is not a token",
                status=response.status_code,
                hint="The registry's auth service is misconfigured or a proxy answered instead",
            ) from exc
        now = self.clock.monotonic()
        lifetime = DEFAULT_TOKEN_LIFETIME
        try:
            if doc.get("expires_in") is not None:
                lifetime = float(doc["expires_in"])
            else:
                exp = _jwt_expiry(value)
                if exp is not None:
                    lifetime = max(1.0, exp - self.clock.time())
        except (TypeError, ValueError):
            pass
        if isinstance(doc.get("refresh_token"), str):
            self.refresh_token = doc["refresh_token"]
        token = Token(value, frozenset(scopes), now + lifetime, lifetime)
        self.tokens = [*[t for t in self.tokens if t.fresh(now)][-15:], token]
        return token
