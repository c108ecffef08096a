"""What a server answers is bounded before Hoist reads it: size caps, deadlines, refused URLs.

A registry, a proxy in front of it or a redirect target may send an endless body, drip bytes
for ever or point at a `file://` URL. Every httpx client Hoist makes carries `EVENT_HOOKS`, and
every body read into memory goes through `read_capped` (or is drained and dropped).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from hoist.core.errors import (
    ANSWER_DEADLINE,
    MAX_ERROR_BODY,
    NetworkError,
    RegistryError,
)


class _CappedStream(httpx.AsyncByteStream):
    """A body that ends after `limit` bytes: for the answers httpx reads whole by itself
    (a redirect's body, a 401's body before the retry), which Hoist never needs in full."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self.limit
        async for part in self.inner:
            yield part[:left]
            left -= len(part)
            if left <= 0:
                return

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _refuse_unusable_urls(request: httpx.Request) -> None:
    """Before each request (a redirect's too): only http(s), and a port that exists."""
    url = request.url
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"refused a {url.scheme}:// URL", request=request)
    if url.port is not None and not 0 < url.port < 65536:
        raise httpx.InvalidURL(f"port {url.port} is out of range")


async def _cap_bodies_httpx_reads(response: httpx.Response) -> None:
    """After each response: a redirect's or a 401's body is cut at 64 KiB, since httpx reads
    it whole by itself before following the redirect or answering the challenge."""
    if response.is_redirect or response.status_code == 401:
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, MAX_ERROR_BODY)


#: Event hooks for every client Hoist makes: no answer unbounded, no URL it must not follow.
EVENT_HOOKS = {"request": [_refuse_unusable_urls], "response": [_cap_bodies_httpx_reads]}


async def drain(response: httpx.Response) -> None:
    """Finish with a response whose body doesn't matter (the empty or tiny body of a 202, 201,
    204): read it, so that httpx keeps the connection for the next request. Closing an unread
    response drops the connection, and each request to an HTTPS registry then pays a new TCP
    and TLS handshake. A large body is not worth reading: that connection is dropped."""
    try:
        no_body = response.request.method == "HEAD"
        if no_body or int(response.headers.get("Content-Length") or 0) <= MAX_ERROR_BODY:
            # Capped: a body without Content-Length (chunked) may run on for ever.
            async with asyncio.timeout(ANSWER_DEADLINE):
                async for part in response.aiter_bytes():
                    del part
                    if response.num_bytes_downloaded > MAX_ERROR_BODY:
                        break
    except (httpx.HTTPError, ValueError, TimeoutError):
        pass  # the request succeeded; only the connection's reuse is lost
    finally:
        await response.aclose()


async def read_capped(
    response: httpx.Response,
    limit: int,
    *,
    strict: bool = False,
    deadline: float = ANSWER_DEADLINE,
) -> bytes:
    """Read at most `limit` bytes of a body, within `deadline` seconds, and close it.

    `strict` (manifests, lists) raises when the body is longer than `limit` instead of cutting
    it, which would turn "too large" into a confusing "not valid JSON". A body still coming
    after `deadline` (a server dripping bytes) is a NetworkError, which is retried.
    """
    parts: list[bytes] = []
    try:
        async with asyncio.timeout(deadline):
            await _read_into(response, parts, limit, strict)
    except TimeoutError as exc:
        raise NetworkError(f"the registry's answer did not end within {deadline:.0f} s") from exc
    return b"".join(parts)[:limit]


async def _read_into(
    response: httpx.Response, parts: list[bytes], limit: int, strict: bool
) -> None:
    total = 0
    try:
        async for part in response.aiter_bytes():
            parts.append(part)
            total += len(part)
            if total > limit:
                if strict:
                    raise RegistryError(
                        f"the registry's answer is larger than {limit} bytes",
                        status=response.status_code,
                        hint="Hoist refuses oversized manifests and lists",
                    )
                break
    except httpx.TransportError as exc:
        raise NetworkError("the connection broke while reading the registry's answer") from exc
    finally:
        await response.aclose()
