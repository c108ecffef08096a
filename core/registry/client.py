"""An async client for one registry: the distribution API's operations, one method each.

Each method mirrors one protocol step (ping, HEAD a blob, open an upload, PATCH a chunk, ...);
policy (chunking, retries, resume) lives in `upload.py`. Every error response becomes a typed
`RegistryError` after reading at most 64 KiB of its body.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import importlib.util
import json
import socket
import ssl
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hoist.core import __version__
from hoist.core.bandwidth import Throttle
from hoist.core.errors import (
    ANSWER_DEADLINE,
    MAX_ERROR_BODY,
    HoistError,
    NetworkError,
    NotFound,
    RegistryError,
    RegistryNotAnswering,
    connection_refused,
    error_from_response,
)
from hoist.core.oci.digest import SequentialHasher
from hoist.core.oci.reference import is_loopback_host
from hoist.core.registry.answers import EVENT_HOOKS, drain, read_capped
from hoist.core.registry.auth import SYSTEM_CLOCK, Clock, Credentials, RegistryAuth
from hoist.core.registry.filebody import BodyAborted, FileBodySender, RawResponse, StreamEnd
from hoist.core.sources.content import FileRange, stream_range

USER_AGENT = f"hoist/{__version__}"


def _answer_missing_sniffio_at_once() -> None:
    """httpcore runs `import sniffio` six times a request to tell asyncio from trio; when it is
    not installed (Hoist doesn't need it), each failed import walks sys.path again: 65-255 µs,
    0.4-1.5 ms a request (tests/test_folders.py). `None` in sys.modules makes the import fail
    at once, as Python documents; httpcore then assumes asyncio, which Hoist runs on."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


_answer_missing_sniffio_at_once()

#: Manifests are small (registries accept at least 4 MB); refuse to read more than this.
MAX_MANIFEST = 8 * 1024 * 1024
#: Lists of repositories or tags, one page: generous but bounded.
MAX_LIST_PAGE = 16 * 1024 * 1024
#: Redirects followed for one request (httpx's default is 20): more is a loop.
MAX_REDIRECTS = 10


@dataclass(frozen=True)
class TLSOptions:
    """Per-registry TLS choices: verification is on unless the user opted out for this host."""

    ca_bundle: Path | None = None
    insecure: bool = False

    def verify(self) -> ssl.SSLContext | bool:
        """The SSL context for these choices, built once per process: loading the CA store
        costs tens of milliseconds, and every client (API, token realm, file bodies) needs it."""
        return _ssl_context(self.ca_bundle, self.insecure)


@functools.lru_cache(maxsize=16)
def _ssl_context(ca_bundle: Path | None, insecure: bool) -> ssl.SSLContext | bool:
    if insecure:
        return False
    if ca_bundle is not None:
        return ssl.create_default_context(cafile=str(ca_bundle))
    return ssl.create_default_context()


@dataclass(frozen=True)
class UploadStatus:
    """Where an upload session stands: its newest Location and how many bytes it holds.

    `offset` is the count of bytes the registry acknowledged (the end of `Range: 0-N` plus one,
    except for `0-0` before any byte, which is ambiguous: Hoist never sends a 1-byte first chunk).
    """

    location: str
    offset: int
    min_chunk: int = 0
    known: bool = True  # False: the registry sent no usable `Range` (missing or junk)


@dataclass
class FileBody:
    """A request body that is bytes of a blob's file, hashed as it is sent.

    `on_block(n)` runs on the event loop after each block; `throttle(n)` is awaited before it.
    `sent` is set once the request was answered: the body bytes that went (a streamed body
    may end early).
    """

    source: FileRange
    hasher: SequentialHasher
    on_block: Callable[[int], None] | None = None
    throttle: Throttle | None = None
    sent: int = 0


def _proxied(base: httpx.URL) -> bool:
    """Whether the environment routes this registry through an HTTP proxy (httpx honours it;
    the direct file-body path doesn't speak to proxies, so it stands aside)."""
    proxies = urllib.request.getproxies()
    if not any(proxies.get(k) for k in (base.scheme, "all")):
        return False
    return not urllib.request.proxy_bypass(base.netloc.decode("ascii"))


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
        credentials: None for anonymous access (or until `credentials_lookup` finds some).
        credentials_lookup: finds credentials when the registry first asks (see RegistryAuth).
        plain_http: True forces http://; None picks https, or http for a loopback registry
            that does not answer TLS (as docker does).
        transport: an httpx transport to use instead of the network (tests' scripted fakes).
        clock: when tokens expire (tests drive expiry with a fake one).
    """

    host: str
    credentials: Credentials | None = None
    plain_http: bool | None = None
    credentials_lookup: Callable[[], Credentials | None] | None = None
    tls: TLSOptions = field(default_factory=TLSOptions)
    transport: httpx.AsyncBaseTransport | None = None
    timeout: float = 60.0
    answer_deadline: float = ANSWER_DEADLINE
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False)
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)
    _token_client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)
    _base: httpx.URL | None = field(default=None, init=False, repr=False)
    auth: RegistryAuth | None = field(default=None, init=False, repr=False)
    pacer: Pacer = field(default_factory=Pacer, init=False, repr=False)
    _sender: FileBodySender | None = field(default=None, init=False, repr=False)
    _connect_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in (self._client, self._token_client):
            if client is not None:
                await client.aclose()
        self._client = self._token_client = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None

    # -- connection -------------------------------------------------------------------------

    def _make_clients(self, scheme: str) -> httpx.AsyncClient:
        timeout = httpx.Timeout(self.timeout, connect=15.0)
        verify = self.tls.verify()
        common: dict[str, object] = {
            "timeout": timeout,
            "headers": {"User-Agent": USER_AGENT},
            "verify": verify,
        }
        if self.transport is not None:
            common["transport"] = self.transport
        common["max_redirects"] = MAX_REDIRECTS
        common["event_hooks"] = EVENT_HOOKS
        self._token_client = httpx.AsyncClient(follow_redirects=True, **common)  # type: ignore[arg-type]
        base = httpx.URL(f"{scheme}://{self.host}")
        port = base.port or (443 if scheme == "https" else 80)
        assert base.host
        self.auth = RegistryAuth(
            (base.host, port), self.credentials, token_client=self._token_client,
            lookup=self.credentials_lookup, clock=self.clock,
        )  # fmt: skip
        client = httpx.AsyncClient(auth=self.auth, **common)  # type: ignore[arg-type]
        self._base = base
        if self._sender is not None:
            self._sender.close()
        self._sender = None
        if self.transport is None and not _proxied(base):
            self._sender = FileBodySender(verify, self.timeout, USER_AGENT)
        return client

    async def _ensure(self) -> httpx.AsyncClient:
        if self._client is not None:
            return self._client
        async with self._connect_lock:  # two first requests at once must not both connect
            if self._client is None:
                self._client = await self._connect()
            return self._client

    async def _connect(self) -> httpx.AsyncClient:
        # Clients are built in a worker thread: loading the CA store for an SSL context takes
        # tens of milliseconds, enough to stall a window's event loop.
        if self.plain_http or (self.plain_http is None and is_loopback_host(self.host)):
            client = await asyncio.to_thread(self._make_clients, "http")
            if not self.plain_http and await self._speaks_tls_only(client):
                await client.aclose()
                assert self._token_client is not None
                await self._token_client.aclose()
                client = await asyncio.to_thread(self._make_clients, "https")
        else:
            client = await asyncio.to_thread(self._make_clients, "https")
        return client

    async def _speaks_tls_only(self, client: httpx.AsyncClient) -> bool:
        """For a loopback registry: does it answer plain HTTP? (docker also allows plain HTTP
        there). Go's TLS server answers a plain request at once with `400 ... HTTP request to an
        HTTPS server`; a closed connection also means TLS."""
        try:
            request = client.build_request("GET", self.url("/v2/"))
            async with asyncio.timeout(self.answer_deadline):
                response = await client.send(request, auth=None, stream=True)
            body = await read_capped(response, MAX_ERROR_BODY, deadline=self.answer_deadline)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return True
        except (httpx.TransportError, NetworkError, TimeoutError):
            return False  # down, or refusing: the real request will say so
        return response.status_code == 400 and b"HTTPS" in body

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
        try:
            resolved = (against or self.base_url).join(location)
        except httpx.InvalidURL:
            resolved = httpx.URL()
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
        # Headers (after any redirects and a token) within the answer deadline, unless the
        # request streams a body (a chunk through a proxy), whose upload may take longer.
        deadline = None if isinstance(content, AsyncIterable) else self.answer_deadline
        try:
            async with asyncio.timeout(deadline):
                response = await client.send(req, stream=True, follow_redirects=follow_redirects)
        except TimeoutError as exc:
            raise NetworkError(
                f"{what or method}: {self.host} did not answer within {deadline:.0f} s"
            ) from exc
        except httpx.TimeoutException as exc:
            raise NetworkError(f"{what or method}: {self.host} did not answer in time") from exc
        except (httpx.TooManyRedirects, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            if req.url.port is not None and not 0 < req.url.port < 65536:
                raise RegistryError(  # the registry's own address, not a redirect
                    f"{what or method}: port {req.url.port} of {self.host} does not exist",
                    status=0,
                    hint="Ports are 1 to 65535; check the registry's address",
                ) from None
            raise _unusable_redirect(what or method, exc) from None
        except httpx.RemoteProtocolError as exc:
            said = str(exc).lower()
            if "location header" in said:
                raise _unusable_redirect(what or method, exc) from None
            if not any(cut in said for cut in ("disconnect", "peer closed", "incomplete")):
                # Not a cut connection (that heals): a server speaking broken HTTP, which won't.
                raise RegistryError(
                    f"{what or method}: {self.host} answered with something that is not valid "
                    f"HTTP ({str(exc)[:100]})",
                    status=0,
                    hint="A server or proxy there speaks broken HTTP; tell the registry's owner",
                ) from None
            raise NetworkError(
                f"{what or method}: connection to {self.host} failed ({exc})"
            ) from exc
        except httpx.TransportError as exc:
            if connection_refused(exc):
                raise RegistryNotAnswering(
                    f"{what or method}: {self.host} refused the connection"
                ) from exc
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
        body = await read_capped(response, MAX_ERROR_BODY, deadline=self.answer_deadline)
        elsewhere = _origin(response.request.url) != _origin(self.base_url)
        raise error_from_response(response, body, what=what, elsewhere=elsewhere)

    # -- simple operations ------------------------------------------------------------------

    async def ping(self) -> None:
        """GET /v2/: reachable, speaks the API, and (with credentials) accepts them."""
        response = await self.request("GET", "/v2/", what="ping")
        await drain(response)
        if self.auth is not None and self.auth.scheme == "bearer" and self.auth.credentials:
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
        await drain(response)
        return header_count(response, "Content-Length")

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
        await drain(response)
        if response.status_code == 201 and params:
            return None
        return UploadStatus(
            location=self._location(response),
            offset=0,
            min_chunk=header_count(response, "OCI-Chunk-Min-Length"),
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
        value = response.headers.get("Range")
        offset = parse_range_end(value)
        known = value is not None and (offset > 0 or value.strip().removeprefix("bytes=") == "0-0")
        return UploadStatus(location, offset, known=known)

    async def upload_status(self, location: str) -> UploadStatus:
        """GET the upload URL: where the registry stands (204, `Range: 0-N`)."""
        response = await self.request("GET", location, what="upload status", ok=(200, 204))
        await drain(response)
        return self._status_from(response, location)

    async def send_chunk(
        self, location: str, body: FileBody, start: int, length: int
    ) -> UploadStatus:
        """PATCH bytes [start, start+length) to the session. 202 (201 from ECR) → new status."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + length - 1}",
            # Always sent: httpx would stream a generator body chunked otherwise, and
            # distribution only checks Content-Range when Content-Length is present.
            "Content-Length": str(length),
        }
        response = await self.send_file_body(
            "PATCH", httpx.URL(location), headers, body, start, start + length,
            what="upload chunk", ok=(201, 202, 204),  # ECR answers a PATCH with 201
        )  # fmt: skip
        return self._status_from(response, location)

    async def stream_chunk(
        self, location: str, body: FileBody, start: int, length: int, end: StreamEnd
    ) -> UploadStatus:
        """PATCH up to `length` bytes from `start` as a streamed body (`Transfer-Encoding:
        chunked`, no `Content-Range`): an append the registry keeps however early `end` stops
        it. `body.sent` then says how many bytes went; the caller checks the `Range`."""
        headers = {"Content-Type": "application/octet-stream"}
        response = await self.send_file_body(
            "PATCH", httpx.URL(location), headers, body, start, start + length,
            what="upload chunk", ok=(201, 202, 204), streamed=end,
        )  # fmt: skip
        return self._status_from(response, location)

    async def finish_upload(
        self,
        location: str,
        digest: str,
        body: FileBody | bytes | None = None,
        length: int = 0,
    ) -> str:
        """PUT ?digest= to commit the blob (with all its bytes as body, or none)."""
        url = httpx.URL(location).copy_merge_params({"digest": digest})
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
        if isinstance(body, FileBody) and length:
            response = await self.send_file_body(
                "PUT", url, headers, body, 0, length, what="commit blob", ok=(201, 204)
            )
        else:
            response = await self.request(
                "PUT", url, headers=headers, content=body if isinstance(body, bytes) else b"",
                what="commit blob", ok=(201, 204),
            )  # fmt: skip
            await drain(response)
        return str(response.headers.get("Docker-Content-Digest", digest))

    async def send_file_body(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        body: FileBody,
        start: int,
        end: int,
        *,
        what: str,
        ok: tuple[int, ...],
        streamed: StreamEnd | None = None,
    ) -> httpx.Response:
        """Send a request whose body is bytes [start, end) of a blob's file.

        The direct path (see filebody.py) when the client talks to the network itself; httpx
        with a streamed body through a proxy or a scripted transport. Either way the response
        comes back as an httpx.Response with its (small) body read, or as a typed error.
        With `streamed`, the body goes chunked and may end early (filebody.StreamEnd).
        """
        client = await self._ensure()
        body.sent = 0
        if self._sender is None or not body.source.is_one_file:  # a bundle: generated bytes
            stream = stream_range(
                body.source, start, end, body.hasher, on_block=body.on_block,
                throttle=body.throttle,
            )  # fmt: skip
            content: AsyncIterable[bytes] = stream
            if streamed is not None:
                content = _ending(stream, body, streamed)
            else:
                body.sent = end - start
            try:
                response = await self.request(
                    method, url, headers=headers, content=content, what=what, ok=ok
                )
                await read_capped(response, MAX_ERROR_BODY, deadline=self.answer_deadline)
            finally:
                await stream.aclose()
            return response
        request = client.build_request(method, url, headers=headers)
        if self.auth is not None:
            header = await self.auth.authorization(request)
            if header:
                headers = {**headers, "Authorization": header}
        await self.pacer.wait()
        raw = await self._run_sender(method, url, headers, body, start, end, streamed)
        body.sent = raw.sent
        response = httpx.Response(
            raw.status, headers=raw.headers, content=raw.body, request=request
        )
        if raw.status in ok:
            self.pacer.relax()
            return response
        if raw.status == 429:
            self.pacer.slow_down()
        if raw.status == 401 and self.auth is not None:
            await self.auth.on_unauthorized(request, response.headers)
        raise error_from_response(response, raw.body, what=what)

    async def _run_sender(
        self, method: str, url: httpx.URL, headers: dict[str, str], body: FileBody, start: int,
        end: int, streamed: StreamEnd | None = None,
    ) -> RawResponse:  # fmt: skip
        """Run the blocking sender in a worker thread; progress and rate limiting hop back to
        the event loop; cancelling (stop at once: a second Ctrl-C, Pause now) shuts the socket so
        the thread stops, cutting the request (a pause ends a streamed body cleanly instead)."""
        assert self._sender is not None
        loop = asyncio.get_running_loop()
        abort = threading.Event()
        sockets: list[socket.socket] = []

        def on_block(n: int) -> None:
            if body.on_block is not None:
                loop.call_soon_threadsafe(body.on_block, n)

        async def take(n: int) -> None:
            assert body.throttle is not None
            await body.throttle(n)

        def throttle(n: int) -> None:
            future = asyncio.run_coroutine_threadsafe(take(n), loop)
            while True:
                try:
                    future.result(timeout=0.5)
                    return
                except concurrent.futures.TimeoutError:
                    if abort.is_set():
                        future.cancel()
                        raise BodyAborted() from None

        job = loop.run_in_executor(
            None,
            functools.partial(
                self._sender.send, method, url, headers, body.source, start, end, body.hasher,
                on_block=on_block, throttle=throttle if body.throttle else None, abort=abort,
                on_socket=sockets.append, streamed=streamed,
            ),
        )  # fmt: skip
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            abort.set()
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            # The worker ends with BodyAborted (or the error the shut socket gave it): that is
            # the expected end of a cancelled send, retrieved here so it is never reported.
            job.add_done_callback(lambda f: f.cancelled() or f.exception())
            with contextlib.suppress(BaseException):
                await asyncio.wait([job], timeout=30)
            raise

    async def cancel_upload(self, location: str) -> None:
        """DELETE the session (only for uploads the user cancels: never for ones to resume)."""
        response = await self.request("DELETE", location, what="cancel upload", ok=(200, 202, 204))
        await drain(response)

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
        await drain(response)
        from hoist.core.oci.digest import sha256_bytes

        return response.headers.get("Docker-Content-Digest") or sha256_bytes(data)

    async def get_manifest(
        self, repository: str, reference: str, accept: tuple[str, ...] = ()
    ) -> ManifestData:
        from hoist.core.oci.digest import sha256_bytes
        from hoist.core.oci.manifest import ACCEPT_ALL

        response = await self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(accept or ACCEPT_ALL)},
            what="get manifest",
            ok=(200,),
        )
        data = await read_capped(response, MAX_MANIFEST, strict=True, deadline=self.answer_deadline)
        return ManifestData(
            data,
            response.headers.get("Content-Type", "").split(";")[0].strip(),
            sha256_bytes(data),
        )

    async def head_manifest(self, repository: str, reference: str) -> str | None:
        """The manifest's digest when the reference exists, else None."""
        from hoist.core.oci.manifest import ACCEPT_ALL

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
        await drain(response)
        return str(response.headers.get("Docker-Content-Digest", ""))

    async def delete_manifest(self, repository: str, digest: str) -> None:
        response = await self.request(
            "DELETE", f"/v2/{repository}/manifests/{digest}", what="delete", ok=(200, 202, 204)
        )
        await drain(response)

    async def get_json(self, url: str | httpx.URL, *, what: str) -> tuple[object, httpx.Response]:
        response = await self.request("GET", url, what=what, ok=(200,))
        data = await read_capped(
            response, MAX_LIST_PAGE, strict=True, deadline=self.answer_deadline
        )
        try:
            return json.loads(data), response
        except (ValueError, RecursionError) as exc:  # RecursionError: `[[[[...` nested deep
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


async def _ending(
    stream: AsyncIterable[bytes], body: FileBody, end: StreamEnd
) -> AsyncIterable[bytes]:
    """A body for httpx (no Content-Length: it goes chunked) that ends once `end` says so."""
    async for block in stream:
        if body.sent >= end.min_bytes and end.stop():
            return
        body.sent += len(block)
        yield block


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


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def header_count(response: httpx.Response, name: str) -> int:
    """A header holding a count of bytes (`Content-Length`, `OCI-Chunk-Min-Length`): absent
    is 0; anything but a plain non-negative number is the registry misbehaving."""
    value = response.headers.get(name)
    if value is None or not value.strip():
        return 0
    text = value.strip()
    if not text.isdigit() or len(text) > 19:
        raise RegistryError(
            f"the registry answered with a {name} of {value[:40]!r}, which is not a size",
            status=response.status_code,
            hint="The registry or a proxy in front of it is misbehaving; tell its owner",
        )
    return int(text)


def _unusable_redirect(what: str, exc: Exception) -> RegistryError:
    """A redirect Hoist can't or won't follow: waiting would not change it, so not temporary.

    A loop, a `Location` that is not a URL (or names a port over 65535), or one leading
    outside http(s) such as `file://`.
    """
    if isinstance(exc, httpx.TooManyRedirects):
        said = f"its redirects go round in a loop (more than {MAX_REDIRECTS})"
    elif isinstance(exc, httpx.UnsupportedProtocol):
        said = "it redirected to a URL that is not http(s), such as a file:// one"
    else:
        said = "it redirected with a Location header that is not a usable URL"
    return RegistryError(
        f"{what}: {said}",
        status=0,
        hint="The registry or a proxy in front of it is misconfigured; tell its owner",
    )


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
