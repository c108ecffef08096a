"""An async client for one registry: the distribution API's operations, one method each.

Each method mirrors one protocol step (ping, HEAD a blob, open an upload, PATCH a chunk, ...);
policy (chunking, retries, resume) lives in `upload.py`. Every error response becomes a typed
`RegistryError` after reading at most 64 KiB of its body.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from . import __version__
from .auth import Credentials, RegistryAuth
from .errors import (
    MAX_ERROR_BODY,
    HoistError,
    NetworkError,
    NotFound,
    RegistryError,
    error_from_response,
)
from .reference import is_loopback_host

USER_AGENT = f"hoist/{__version__}"
#: Manifests are small (registries accept at least 4 MB); refuse to read more than this.
MAX_MANIFEST = 8 * 1024 * 1024
#: Lists of repositories or tags, one page: generous but bounded.
MAX_LIST_PAGE = 16 * 1024 * 1024


@dataclass(frozen=True)
class TLSOptions:
    """Per-registry TLS choices: verification is on unless the user opted out for this host."""

    ca_bundle: Path | None = None
    insecure: bool = False

    def verify(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False
        if self.ca_bundle is not None:
            return ssl.create_default_context(cafile=str(self.ca_bundle))
        return True


@dataclass(frozen=True)
class UploadStatus:
    """Where an upload session stands: its newest Location and how many bytes it holds.

    `offset` is the count of bytes the registry acknowledged (the end of `Range: 0-N` plus one,
    except for `0-0` before any byte, which is ambiguous: Hoist never sends a 1-byte first chunk).
    """

    location: str
    offset: int
    min_chunk: int = 0


@dataclass(frozen=True)
class ManifestData:
    data: bytes
    media_type: str
    digest: str


class Pacer:
    """Spaces requests to one host after it said 429, then relaxes as requests succeed.

    A push of many small chunks can trip a registry's secondary rate limit (GHCR); rather than
    retrying at full speed, every request to the host waits `interval`, which doubles on each
    429 (up to 5 s) and shrinks by 10 % on each success.
    """

    def __init__(self) -> None:
        self.interval = 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if self.interval <= 0:
            return
        now = time.monotonic()
        delay = self._next - now
        self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)

    def slow_down(self) -> None:
        self.interval = min(5.0, max(0.05, self.interval * 2))

    def relax(self) -> None:
        if self.interval:
            self.interval = self.interval * 0.9 if self.interval > 0.01 else 0.0


@dataclass
class RegistryClient:
    """Talks to one registry host.

    Args:
        host: `ghcr.io`, `localhost:5000`...
        credentials: None for anonymous access.
        plain_http: True forces http://; None picks https, or http for a loopback registry
            that does not answer TLS (as docker does).
        transport: an httpx transport to use instead of the network (tests' scripted fakes).
    """

    host: str
    credentials: Credentials | None = None
    plain_http: bool | None = None
    tls: TLSOptions = field(default_factory=TLSOptions)
    transport: httpx.AsyncBaseTransport | None = None
    timeout: float = 60.0
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)
    _token_client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)
    _base: httpx.URL | None = field(default=None, init=False, repr=False)
    auth: RegistryAuth | None = field(default=None, init=False, repr=False)
    pacer: Pacer = field(default_factory=Pacer, init=False, repr=False)

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in (self._client, self._token_client):
            if client is not None:
                await client.aclose()
        self._client = self._token_client = None

    # -- connection -------------------------------------------------------------------------

    def _make_clients(self, scheme: str) -> httpx.AsyncClient:
        timeout = httpx.Timeout(self.timeout, connect=15.0)
        common: dict[str, object] = {
            "timeout": timeout,
            "headers": {"User-Agent": USER_AGENT},
            "verify": self.tls.verify(),
        }
        if self.transport is not None:
            common["transport"] = self.transport
        self._token_client = httpx.AsyncClient(follow_redirects=True, **common)  # type: ignore[arg-type]
        base = httpx.URL(f"{scheme}://{self.host}")
        port = base.port or (443 if scheme == "https" else 80)
        assert base.host
        self.auth = RegistryAuth(
            (base.host, port), self.credentials, token_client=self._token_client
        )
        client = httpx.AsyncClient(auth=self.auth, **common)  # type: ignore[arg-type]
        self._base = base
        return client

    async def _ensure(self) -> httpx.AsyncClient:
        if self._client is not None:
            return self._client
        if self.plain_http or (self.plain_http is None and is_loopback_host(self.host)):
            client = self._make_clients("http")
            if not self.plain_http and await self._speaks_tls_only(client):
                await client.aclose()
                assert self._token_client is not None
                await self._token_client.aclose()
                client = self._make_clients("https")
        else:
            client = self._make_clients("https")
        self._client = client
        return client

    async def _speaks_tls_only(self, client: httpx.AsyncClient) -> bool:
        """For a loopback registry: does it answer plain HTTP? (docker also allows plain HTTP
        there). Go's TLS server answers a plain request at once with `400 ... HTTP request to an
        HTTPS server`; a closed connection also means TLS."""
        try:
            response = await client.get(self.url("/v2/"), auth=None)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return True
        except httpx.TransportError:
            return False  # down, or refusing: the real request will say so
        return response.status_code == 400 and b"HTTPS" in response.content

    @property
    def base_url(self) -> httpx.URL:
        if self._base is None:
            raise RuntimeError("not connected yet")
        return self._base

    def url(self, path: str) -> httpx.URL:
        assert self._base is not None
        return self._base.join(path)

    def resolve(self, location: str, against: httpx.URL | None = None) -> str:
        """Resolve a Location (absolute or relative) and refuse anything but http(s)."""
        resolved = (against or self.base_url).join(location)
        if resolved.scheme not in ("http", "https") or not resolved.host:
            raise RegistryError(
                f"the registry gave an unusable upload location {location[:100]!r}",
                status=0,
                hint="The registry or a proxy in front of it is misbehaving",
            )
        return str(resolved)

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
        params: dict[str, str] | None = None,
        what: str = "",
        ok: tuple[int, ...] = (200, 201, 202, 204),
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send one request; return the response (body unread) or raise a typed error.

        The caller reads or closes the response. Error bodies are read up to 64 KiB.
        """
        client = await self._ensure()
        if isinstance(url, str) and url.startswith("/"):
            url = self.url(url)
        req = client.build_request(method, url, headers=headers, content=content, params=params)
        await self.pacer.wait()
        try:
            response = await client.send(req, stream=True, follow_redirects=follow_redirects)
        except httpx.TimeoutException as exc:
            raise NetworkError(f"{what or method}: {self.host} did not answer in time") from exc
        except httpx.TransportError as exc:
            raise NetworkError(
                f"{what or method}: connection to {self.host} failed ({exc})"
            ) from exc
        except HoistError:
            raise
        if response.status_code in ok:
            self.pacer.relax()
            return response
        if response.status_code == 429:
            self.pacer.slow_down()
        body = await read_capped(response, MAX_ERROR_BODY)
        raise error_from_response(response, body, what=what)

    # -- simple operations ------------------------------------------------------------------

    async def ping(self) -> None:
        """GET /v2/: reachable, speaks the API, and (with credentials) accepts them."""
        response = await self.request("GET", "/v2/", what="ping")
        await response.aclose()
        if self.auth is not None and self.auth.scheme == "bearer" and self.credentials:
            # The challenge only told us where tokens come from: check the credentials there.
            await self.auth.token_for([], force=True)

    async def blob_size(self, repository: str, digest: str) -> int | None:
        """The blob's size when the registry has it (HEAD), else None."""
        try:
            response = await self.request(
                "HEAD",
                f"/v2/{repository}/blobs/{digest}",
                what="check blob",
                ok=(200,),
                follow_redirects=True,
            )
        except NotFound:
            return None
        await response.aclose()
        return int(response.headers.get("Content-Length", "0"))

    async def start_upload(
        self, repository: str, *, mount: str | None = None, from_repo: str | None = None
    ) -> UploadStatus | None:
        """POST an upload session. Returns None when a cross-repository mount succeeded."""
        params = {"mount": mount, "from": from_repo} if mount and from_repo else None
        response = await self.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            headers={"Content-Length": "0"},
            params=params,
            what="start upload",
            ok=(201, 202),
        )
        await response.aclose()
        if response.status_code == 201 and params:
            return None
        return UploadStatus(
            location=self._location(response),
            offset=0,
            min_chunk=int(response.headers.get("OCI-Chunk-Min-Length", "0") or 0),
        )

    def _location(self, response: httpx.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(
                f"{response.request.method} answered {response.status_code} without a Location",
                status=response.status_code,
            )
        return self.resolve(location, response.request.url)

    def _status_from(self, response: httpx.Response, fallback_location: str) -> UploadStatus:
        """Read `Location` and `Range` from an upload response (PATCH, GET)."""
        location = (
            self._location(response) if response.headers.get("Location") else fallback_location
        )
        return UploadStatus(location, parse_range_end(response.headers.get("Range")))

    async def upload_status(self, location: str) -> UploadStatus:
        """GET the upload URL: where the registry stands (204, `Range: 0-N`)."""
        response = await self.request("GET", location, what="upload status", ok=(200, 204))
        await response.aclose()
        return self._status_from(response, location)

    async def send_chunk(
        self, location: str, body: AsyncIterable[bytes], start: int, length: int
    ) -> UploadStatus:
        """PATCH bytes [start, start+length) to the session. 202 (201 from ECR) → new status."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + length - 1}",
            # Always sent: httpx would stream a generator body chunked otherwise, and
            # distribution only checks Content-Range when Content-Length is present.
            "Content-Length": str(length),
        }
        response = await self.request(
            "PATCH",
            location,
            headers=headers,
            content=body,
            what="upload chunk",
            ok=(201, 202, 204),  # ECR answers a PATCH with 201
        )
        await response.aclose()
        return self._status_from(response, location)

    async def finish_upload(
        self,
        location: str,
        digest: str,
        body: AsyncIterable[bytes] | bytes | None = None,
        length: int = 0,
    ) -> str:
        """PUT ?digest= to commit the blob (with the last bytes, or all of them, as body)."""
        url = httpx.URL(location).copy_merge_params({"digest": digest})
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
        response = await self.request(
            "PUT",
            url,
            headers=headers,
            content=body if length else b"",
            what="commit blob",
            ok=(201, 204),
        )
        await response.aclose()
        return str(response.headers.get("Docker-Content-Digest", digest))

    async def cancel_upload(self, location: str) -> None:
        """DELETE the session (only for uploads the user cancels: never for ones to resume)."""
        response = await self.request("DELETE", location, what="cancel upload", ok=(200, 202, 204))
        await response.aclose()

    async def put_manifest(
        self, repository: str, reference: str, data: bytes, media_type: str
    ) -> str:
        response = await self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Content-Type": media_type},
            content=data,
            what="push manifest",
            ok=(200, 201, 202),
        )
        await response.aclose()
        from .digest import sha256_bytes

        return response.headers.get("Docker-Content-Digest") or sha256_bytes(data)

    async def get_manifest(
        self, repository: str, reference: str, accept: tuple[str, ...] = ()
    ) -> ManifestData:
        from .digest import sha256_bytes
        from .manifest import ACCEPT_ALL

        response = await self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(accept or ACCEPT_ALL)},
            what="get manifest",
            ok=(200,),
        )
        data = await read_capped(response, MAX_MANIFEST, strict=True)
        return ManifestData(
            data,
            response.headers.get("Content-Type", "").split(";")[0].strip(),
            sha256_bytes(data),
        )

    async def head_manifest(self, repository: str, reference: str) -> str | None:
        """The manifest's digest when the reference exists, else None."""
        from .manifest import ACCEPT_ALL

        try:
            response = await self.request(
                "HEAD",
                f"/v2/{repository}/manifests/{reference}",
                headers={"Accept": ", ".join(ACCEPT_ALL)},
                what="check manifest",
                ok=(200,),
            )
        except NotFound:
            return None
        await response.aclose()
        return str(response.headers.get("Docker-Content-Digest", ""))

    async def delete_manifest(self, repository: str, digest: str) -> None:
        response = await self.request(
            "DELETE", f"/v2/{repository}/manifests/{digest}", what="delete", ok=(200, 202, 204)
        )
        await response.aclose()

    async def get_json(self, url: str | httpx.URL, *, what: str) -> tuple[object, httpx.Response]:
        response = await self.request("GET", url, what=what, ok=(200,))
        data = await read_capped(response, MAX_LIST_PAGE, strict=True)
        try:
            return json.loads(data), response
        except ValueError as exc:
            raise RegistryError(
                f"{what}: the registry answered something that is not JSON",
                status=response.status_code,
            ) from exc

    async def stream_blob(
        self, repository: str, digest: str, *, start: int = 0
    ) -> tuple[httpx.Response, int]:
        """GET a blob (following redirects to object storage, without credentials there).

        Returns the open response and the offset its body starts at (a registry may ignore
        `Range` and send from 0).
        """
        headers = {"Range": f"bytes={start}-"} if start else {}
        response = await self.request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            headers=headers,
            what="download blob",
            ok=(200, 206),
            follow_redirects=True,
        )
        begins = start if response.status_code == 206 else 0
        return response, begins


def parse_range_end(value: str | None) -> int:
    """Bytes held, from a `Range: 0-N` header (also `bytes=0-N`). Missing or junk → 0."""
    if not value:
        return 0
    value = value.strip()
    if value.startswith("bytes="):
        value = value[6:]
    first, sep, last = value.partition("-")
    try:
        if not sep or int(first) != 0:
            return 0
        end = int(last)
    except ValueError:
        return 0
    return end + 1 if end > 0 else 0


async def read_capped(response: httpx.Response, limit: int, *, strict: bool = False) -> bytes:
    """Read at most `limit` bytes of a body and close it. `strict` raises when it is longer."""
    parts: list[bytes] = []
    total = 0
    try:
        async for part in response.aiter_bytes():
            parts.append(part)
            total += len(part)
            if total >= limit:
                if strict and total > limit:
                    raise RegistryError(
                        f"the registry's answer is larger than {limit} bytes",
                        status=response.status_code,
                    )
                break
    except httpx.TransportError as exc:
        raise NetworkError("the connection broke while reading the registry's answer") from exc
    finally:
        await response.aclose()
    return b"".join(parts)[:limit]


async def iter_link_pages(
    client: RegistryClient, first: httpx.URL, key: str, *, what: str
) -> AsyncIterator[list[str]]:
    """Yield pages of a list (`repositories` or `tags`), following `Link: <...>; rel="next"`.

    The next URL is used as the registry gives it (cursors may be opaque), resolved against the
    request URL, and only when it stays on the same host.
    """
    url: httpx.URL | None = first
    seen: set[str] = set()
    while url is not None:
        doc, response = await client.get_json(url, what=what)
        items = doc.get(key) if isinstance(doc, dict) else None
        if items is None:
            items = []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise RegistryError(f"{what}: the registry's list is malformed", status=200)
        yield items
        url = next_link(response.headers.get("Link"), response.request.url)
        if url is not None:
            if url.host != first.host or url.port != first.port:
                raise RegistryError(
                    f"{what}: the registry's next page points at another host ({url.host})",
                    status=200,
                    hint="Hoist only follows pages on the registry's own host",
                )
            if str(url) in seen or not items:
                break
            seen.add(str(url))


def next_link(header: str | None, against: httpx.URL) -> httpx.URL | None:
    """The `rel="next"` target of a Link header, resolved against the request URL."""
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        if (
            target.startswith("<")
            and target.endswith(">")
            and 'rel="next"' in params.replace(" ", "").replace("rel=next", 'rel="next"')
        ):
            return against.join(target[1:-1])
    return None
