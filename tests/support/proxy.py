"""A fault-injecting HTTP/1.1 TCP proxy for resumability tests.

Real network failures (a reset after N bytes reached the server, a response lost after the
server committed, a gateway answering 413/429/502 on its own) cannot be produced by mocking
httpx, so tests route the real client through this proxy to the real registry.

The proxy runs its own asyncio loop in its own thread, so synchronous tests and tests with
their own event loop can both use it. It frames HTTP/1.1 in both directions (Content-Length,
chunked, read-until-close; keep-alive and pipelining) but forwards bytes unchanged.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal, NamedTuple, Protocol, Self

from support.service import Service

_MAX_HEAD = 64 * 1024
_READ_SIZE = 64 * 1024


class HasHost(Protocol):
    """Anything with a `host` ("127.0.0.1:PORT"), e.g. a RegistryProcess."""

    @property
    def host(self) -> str: ...


Upstream = str | tuple[str, int] | HasHost


class ProtocolError(Exception):
    """Bytes that are not HTTP/1.1 as we expect it."""


class _Abort(Exception):
    """End the connection with a reset on both sides (an injected fault)."""


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header `name` (any case) in a parsed head; None when absent."""
    lname = name.lower()
    for k, v in headers:
        if k.lower() == lname:
            return v
    return None


@dataclass
class RequestHead:
    """A parsed request line and header block."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    raw: bytes = b""
    #: Body bytes forwarded upstream so far, and (chunked bodies) the framing among them.
    payload: int = 0
    framing: int = 0
    #: Body bytes (framing left out) read and dropped: a canned answer kept them from upstream.
    dropped: int = 0
    #: Cut the connection once this many payload bytes of the body went (chunk framing not
    #: counted: a streamed body's cut lands at a byte of the blob, whatever its frames).
    cut_at_payload: int | None = None

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    @property
    def path(self) -> str:
        return self.target

    @property
    def content_length(self) -> int | None:
        value = self.header("Content-Length")
        return int(value) if value is not None and value.strip().isdigit() else None

    @property
    def chunked(self) -> bool:
        return "chunked" in (self.header("Transfer-Encoding") or "").lower()


@dataclass
class ResponseHead:
    """A parsed status line and header block."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)


class RequestRecord(NamedTuple):
    """One request seen by the proxy.

    `status` is what the upstream answered when the request was forwarded (also when the
    response was then swallowed or replaced), the canned status when the proxy answered
    itself, and None when the connection was cut before any response.
    """

    method: str
    path: str
    content_length: int | None
    status: int | None


Matcher = Callable[[RequestHead], bool]


def match(
    method: str | None = None,
    path_contains: str | None = None,
    *,
    min_content_length: int | None = None,
    header: tuple[str, str] | None = None,
) -> Matcher:
    """A request predicate, e.g. `match("PUT", "digest=")` or `match("PATCH")`."""

    def predicate(req: RequestHead) -> bool:
        if method is not None and req.method.upper() != method.upper():
            return False
        if path_contains is not None and path_contains not in req.target:
            return False
        if min_content_length is not None:
            cl = req.content_length
            if cl is None or cl <= min_content_length:
                return False
        return header is None or (req.header(header[0]) or "") == header[1]

    return predicate


def _as_matcher(m: Matcher | str | None) -> Matcher:
    if m is None:
        return lambda _req: True
    if isinstance(m, str):
        return match(m)
    return m


def html_error_page(status: int, server: str = "nginx") -> bytes:
    """The kind of HTML body a front proxy (nginx) sends instead of JSON errors."""
    title = f"{status} {HTTPStatus(status).phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>{server}</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


@dataclass
class CannedResponse:
    """A response the proxy sends on its own."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reason: str | None = None

    def encode(self, *, head_only: bool, close: bool) -> bytes:
        reason = self.reason
        if reason is None:
            try:
                reason = HTTPStatus(self.status).phrase
            except ValueError:
                reason = "Unknown"
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        names = {k.lower() for k, _ in self.headers}
        lines += [f"{k}: {v}" for k, v in self.headers]
        if "content-length" not in names:
            lines.append(f"Content-Length: {len(self.body)}")
        if close and "connection" not in names:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def _headers_list(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


@dataclass
class _Rule:
    kind: Literal["swallow", "respond", "fail_every"]
    matcher: Matcher
    remaining: int | None  # None: until cleared
    canned: CannedResponse | None = None
    before_body: bool = True
    close: bool = False
    every: int = 1
    seen: int = 0
    forward: bool = False


@dataclass
class _Decision:
    mode: Literal["forward", "swallow", "replace", "canned"]
    canned: CannedResponse | None = None
    before_body: bool = False
    close: bool = False


@dataclass
class _Item:
    req: RequestHead | None  # None: the client finished (sentinel)
    decision: _Decision = field(default_factory=lambda: _Decision("forward"))


def _parse_headers(lines: list[bytes]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError(f"bad header line {line!r}")
        out.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
    return out


def parse_request_head(raw: bytes) -> RequestHead:
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        raise ProtocolError(f"bad request line {lines[0][:100]!r}")
    method, target, version = (p.decode("latin-1") for p in parts)
    return RequestHead(method, target, version, _parse_headers(lines[1:]), raw)


def parse_response_head(raw: bytes) -> ResponseHead:
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {lines[0][:100]!r}")
    reason = parts[2].decode("latin-1") if len(parts) == 3 else ""
    return ResponseHead(
        parts[0].decode("latin-1"), int(parts[1]), reason, _parse_headers(lines[1:]), raw
    )


class _Reader:
    """Buffered reader over a StreamReader; `fill` is cancel-safe (no bytes are lost)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.buf = bytearray()
        self.eof = False

    async def fill(self) -> bool:
        if self.eof:
            return False
        data = await self.stream.read(_READ_SIZE)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def read_head(self) -> bytes | None:
        """One header block including the blank line; None on EOF before any byte."""
        while True:
            while self.buf.startswith(b"\r\n"):  # tolerate stray CRLF between messages
                del self.buf[:2]
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[: i + 4])
                del self.buf[: i + 4]
                return head
            if len(self.buf) > _MAX_HEAD:
                raise ProtocolError("header block too large")
            if not await self.fill():
                if self.buf:
                    raise ProtocolError("connection closed inside a header block")
                return None

    async def read_line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[: i + 2])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > _MAX_HEAD:
                raise ProtocolError("line too long")
            if not await self.fill():
                raise ProtocolError("connection closed inside a chunked body")

    async def read_some(self, limit: int) -> bytes:
        """Up to `limit` bytes (b"" only at EOF)."""
        if not self.buf and not await self.fill():
            return b""
        data = bytes(self.buf[:limit])
        del self.buf[:limit]
        return data


Send = Callable[[bytes], Awaitable[None]]
Framing = tuple[Literal["none", "length", "chunked", "eof"], int]


def request_framing(req: RequestHead) -> Framing:
    if req.chunked:
        return ("chunked", 0)
    cl = req.content_length
    return ("length", cl) if cl else ("none", 0)


def response_framing(req: RequestHead, resp: ResponseHead) -> Framing:
    if req.method == "HEAD" or resp.status < 200 or resp.status in (204, 304):
        return ("none", 0)
    if "chunked" in (resp.header("Transfer-Encoding") or "").lower():
        return ("chunked", 0)
    cl = resp.header("Content-Length")
    if cl is not None and cl.strip().isdigit():
        n = int(cl)
        return ("length", n) if n else ("none", 0)
    return ("eof", 0)


async def _pipe_body(
    reader: _Reader,
    framing: Framing,
    send: Send,
    req: RequestHead | None = None,
    cut: Callable[[int], None] | None = None,
    *,
    dropped: bool = False,
) -> None:
    """Forward one message body exactly as framed (raw bytes, chunk syntax included), counting
    its payload and framing bytes on `req` as they go (and arming `cut` at `cut_at_payload`)."""
    kind, length = framing
    inner = send

    async def counted(data: bytes, framing_bytes: int = 0) -> None:
        if req is None:
            await inner(data)
            return
        payload = len(data) - framing_bytes
        if dropped:
            await inner(data)
            req.dropped += payload
            return
        target = req.cut_at_payload
        if target is not None and cut is not None and req.payload + payload >= target:
            keep = target - req.payload  # payload comes first in `data`
            req.cut_at_payload = None
            req.payload += keep
            cut(keep)
            await inner(data)
            return
        await inner(data)
        req.framing += framing_bytes
        req.payload += payload

    send = counted
    if kind == "none":
        return
    if kind == "length":
        left = length
        while left:
            data = await reader.read_some(min(left, _READ_SIZE))
            if not data:
                raise ProtocolError(f"connection closed with {left} body bytes missing")
            left -= len(data)
            await send(data)
        return
    if kind == "eof":
        while data := await reader.read_some(_READ_SIZE):
            await send(data)
        return
    while True:  # chunked
        line = await reader.read_line()
        await counted(line, len(line))
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise ProtocolError(f"bad chunk size line {line!r}") from exc
        if size == 0:
            while (trailer := await reader.read_line()) != b"\r\n":
                await counted(trailer, len(trailer))
            await counted(b"\r\n", 2)
            return
        left = size + 2  # chunk data and its CRLF
        while left:
            data = await reader.read_some(min(left, _READ_SIZE))
            if not data:
                raise ProtocolError("connection closed inside a chunk")
            crlf = max(0, len(data) - (left - 2))
            left -= len(data)
            await counted(data, crlf)


async def _discard(_data: bytes) -> None:
    return None


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0 so the peer gets an RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _unsent(writer: asyncio.StreamWriter) -> int:
    """Bytes not yet acknowledged by the peer (asyncio buffer + kernel send queue)."""
    pending = writer.transport.get_write_buffer_size()
    sock = writer.get_extra_info("socket")
    if sock is not None:
        buf = array.array("i", [0])
        with contextlib.suppress(OSError):
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf, True)
            pending += buf[0]
    return pending


class _Conn:
    def __init__(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
    ) -> None:
        self.client = _Reader(client_r)
        self.client_w = client_w
        self.upstream = _Reader(up_r)
        self.up_w = up_w
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.up_done = asyncio.Event()
        self.link_buffer_set = False


class FaultProxy(Service):
    """TCP proxy 127.0.0.1:PORT → upstream with one-shot and HTTP-level faults.

    Counters (`bytes_up`, `bytes_down`, `connections`, `requests`, `events`) are safe to read
    from any thread. `limit_rate_up(n)` makes the uplink n bytes/s. Faults:
    - `cut_after_upstream_bytes(n)`: deliver n more client→upstream bytes, then RST both sides.
    - `swallow_response(match)`: forward a matching request, read the upstream's full answer,
      then RST the client without sending it (the server committed, the client never knows).
    - `respond_instead(...)`, `fail_every(...)`: answer on the proxy's behalf (429, 413, 502...).
    """

    linger_timeout = 5.0  # how long a "respond before body" fault drains the body (like nginx)
    delivery_timeout = 5.0  # how long a cut waits for the kernel to deliver the last bytes

    def __init__(self, upstream: Upstream, *, listen_port: int = 0) -> None:
        self._upstream = upstream
        self._listen_port = listen_port
        self.port = 0
        self._lock = threading.RLock()  # matchers run under it and may read counters
        self._bytes_up = 0
        self._bytes_down = 0
        self._connections = 0
        self._requests: list[RequestRecord] = []
        self._bodies: list[int] = []  # each recorded request's body bytes (framing left out)
        self._events: list[str] = []
        self._cut_remaining: int | None = None
        self._rules: list[_Rule] = []
        self._rate_up: float | None = None  # bytes/s client → upstream, all connections
        self._rate_next = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._startup_error: BaseException | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _upstream_addr(self) -> tuple[str, int]:
        up = self._upstream
        if isinstance(up, tuple):
            return up
        text = up if isinstance(up, str) else up.host
        text = text.removeprefix("http://")
        host, _, port = text.rpartition(":")
        return host or "127.0.0.1", int(port)

    # -- counters ----------------------------------------------------------------------------

    @property
    def bytes_up(self) -> int:
        """Bytes forwarded client → upstream."""
        with self._lock:
            return self._bytes_up

    @property
    def bytes_down(self) -> int:
        """Bytes forwarded (or sent on the proxy's behalf) to the client."""
        with self._lock:
            return self._bytes_down

    @property
    def connections(self) -> int:
        """Client connections accepted."""
        with self._lock:
            return self._connections

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of requests seen, in the order their responses (or faults) happened."""
        with self._lock:
            return list(self._requests)

    def body_bytes(self, method: str) -> int:
        """Body bytes the client sent in recorded requests with this method, sized or chunked
        (framing left out), whether forwarded or dropped by a canned answer."""
        with self._lock:
            return sum(
                n for r, n in zip(self._requests, self._bodies, strict=True) if r.method == method
            )

    @property
    def events(self) -> list[str]:
        """Human-readable log of injected faults ("cut ...", "swallow ...", "respond ...")."""
        with self._lock:
            return list(self._events)

    def reset_counters(self) -> None:
        """Zero bytes and connection counters and forget recorded requests and events."""
        with self._lock:
            self._bytes_up = self._bytes_down = self._connections = 0
            self._requests.clear()
            self._bodies.clear()
            self._events.clear()

    # -- faults ------------------------------------------------------------------------------

    def cut_after_upstream_bytes(self, n: int) -> None:
        """One-shot: after n more client→upstream bytes are delivered, RST both sides."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._cut_remaining = n

    #: What a rate-limited link holds in flight: about 0.1 s at 2 MiB/s, as a link whose
    #: buffer is sized to its speed. Left alone, loopback's receive buffer grows to megabytes
    #: and every byte written would wait seconds in it before reaching the registry.
    link_buffer = 256 * 1024

    def limit_rate_up(self, bytes_per_second: float | None) -> None:
        """Forward client → upstream bytes at most this fast (all connections together), as a
        slow uplink would: timing in tests then depends on the link, not the machine. The
        receive buffer of each connection is then kept to `link_buffer`."""
        with self._lock:
            self._rate_up = bytes_per_second
            self._rate_next = 0.0

    async def _pace_up(self, n: int) -> None:
        with self._lock:
            rate = self._rate_up
            if not rate:
                return
            now = time.monotonic()
            start = max(now, self._rate_next)
            self._rate_next = start + n / rate
        if start > now:
            await asyncio.sleep(start - now)

    def swallow_response(self, match: Matcher | str, *, times: int = 1) -> None:
        """Forward the matching request, read the upstream response, then RST the client."""
        with self._lock:
            self._rules.append(_Rule("swallow", _as_matcher(match), times))

    def respond_instead(
        self,
        match: Matcher | str | None,
        status: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str = b"",
        *,
        times: int | None = 1,
        before_body: bool = True,
        close: bool | None = None,
        reason: str | None = None,
    ) -> None:
        """Answer matching requests with a canned response; nothing reaches the upstream.

        before_body=True answers as soon as the head arrives, then drains the body for up to
        `linger_timeout` and closes (nginx's 413). before_body=False reads the whole body
        first and keeps the connection alive unless close=True. times=None: until cleared.
        """
        canned = CannedResponse(
            status,
            _headers_list(headers),
            body.encode() if isinstance(body, str) else body,
            reason,
        )
        with self._lock:
            self._rules.append(
                _Rule(
                    "respond",
                    _as_matcher(match),
                    times,
                    canned=canned,
                    before_body=before_body,
                    close=before_body if close is None else close,
                )
            )

    def fail_every(
        self,
        k: int,
        status: int = 502,
        *,
        match: Matcher | str | None = None,
        forward: bool = False,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> None:
        """Every k-th matching request (counting from now) gets `status` from the proxy.

        forward=False: the request never reaches the upstream. forward=True: it is forwarded
        and the real answer replaced (the server did the work, the client sees a failure).
        """
        if k < 1:
            raise ValueError("k must be >= 1")
        hdrs = _headers_list(headers) or [("Content-Type", "text/html")]
        canned = CannedResponse(status, hdrs, html_error_page(status) if body is None else body)
        with self._lock:
            self._rules.append(
                _Rule(
                    "fail_every",
                    _as_matcher(match),
                    None,
                    canned=canned,
                    every=k,
                    forward=forward,
                    before_body=False,
                )
            )

    def clear_faults(self) -> None:
        """Disarm every pending fault."""
        with self._lock:
            self._cut_remaining = None
            self._rules.clear()

    def _decide(self, req: RequestHead) -> _Decision:
        with self._lock:
            for rule in list(self._rules):
                if not rule.matcher(req):
                    continue
                if rule.kind == "fail_every":
                    rule.seen += 1
                    if rule.seen % rule.every:
                        continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                if rule.kind == "swallow":
                    return _Decision("swallow")
                assert rule.canned is not None
                if rule.kind == "fail_every" and rule.forward:
                    return _Decision("replace", rule.canned)
                return _Decision("canned", rule.canned, rule.before_body, rule.close)
        return _Decision("forward")

    def _record(self, req: RequestHead, status: int | None, event: str | None = None) -> None:
        with self._lock:
            self._requests.append(RequestRecord(req.method, req.target, req.content_length, status))
            self._bodies.append(req.payload + req.dropped)
            if event:
                self._events.append(f"{event} {req.method} {req.target} -> {status}")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._startup_error = None
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            try:
                loop.run_until_complete(self._serve(ready))
            finally:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
                ready.set()

        self._thread = threading.Thread(target=run, name=f"fault-proxy-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if self._startup_error is not None or not self.port:
            self.stop()
            raise RuntimeError(f"proxy failed to start: {self._startup_error!r}")
        return self

    def stop(self) -> None:
        """Close the listener and every connection; join the thread."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None or loop is None:
            return
        if stop_event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop_event.set)
        thread.join(10)
        self._thread = None
        self._loop = None
        self._stop_event = None

    close = stop

    def __repr__(self) -> str:
        return f"<FaultProxy {self.url} -> {self._upstream_addr()}>"

    async def _serve(self, ready: threading.Event) -> None:
        self._stop_event = asyncio.Event()
        try:
            server = await asyncio.start_server(self._handle, "127.0.0.1", self._listen_port)
        except OSError as exc:
            self._startup_error = exc
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._listen_port = self.port  # a later start() reuses the port
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    # -- connection handling -----------------------------------------------------------------

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self._connections += 1
        up_w: asyncio.StreamWriter | None = None
        abort = True
        try:
            try:
                up_r, up_w = await asyncio.open_connection(*self._upstream_addr())
            except OSError:
                return
            conn = _Conn(client_r, client_w, up_r, up_w)
            abort = await self._run_conn(conn)
        except asyncio.CancelledError:
            abort = True
        except Exception:
            abort = True
        finally:
            for w in (client_w, up_w):
                if w is None:
                    continue
                if abort:
                    _reset(w)
                else:
                    w.close()
            if not abort:
                for w in (client_w, up_w):
                    if w is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(w.wait_closed(), 2)
            self._tasks.discard(task)  # last: stop() must still cancel and await it until here

    async def _run_conn(self, conn: _Conn) -> bool:
        """Pump both directions; True if the connection must end with a reset."""
        up = asyncio.create_task(self._pump_requests(conn))
        down = asyncio.create_task(self._pump_responses(conn))
        pending: set[asyncio.Task[None]] = {up, down}
        abort = False
        try:
            while down in pending and not abort:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                abort = any(t.exception() is not None for t in done)
        finally:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return abort

    async def _send_up(self, conn: _Conn, data: bytes) -> None:
        if self._rate_up and not conn.link_buffer_set:
            conn.link_buffer_set = True
            sock = conn.client_w.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.link_buffer // 2)
        await self._pace_up(len(data))
        cut_at: int | None = None
        with self._lock:
            if self._cut_remaining is not None:
                if len(data) >= self._cut_remaining:
                    cut_at = self._cut_remaining
                    self._cut_remaining = None
                else:
                    self._cut_remaining -= len(data)
            self._bytes_up += len(data) if cut_at is None else cut_at
        if cut_at is None:
            conn.up_w.write(data)
            await conn.up_w.drain()
            return
        if cut_at:
            conn.up_w.write(data[:cut_at])
        # Make sure the bytes really reached the upstream's kernel before the reset.
        deadline = time.monotonic() + self.delivery_timeout
        while _unsent(conn.up_w) and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        raise _Abort("cut")

    async def _send_down(self, conn: _Conn, data: bytes) -> None:
        with self._lock:
            self._bytes_down += len(data)
        conn.client_w.write(data)
        await conn.client_w.drain()

    async def _pump_requests(self, conn: _Conn) -> None:
        """Client → upstream: frame requests, apply request-side faults, queue for responses."""
        try:
            while True:
                raw = await conn.client.read_head()
                if raw is None:
                    await conn.queue.put(_Item(None))
                    return
                req = parse_request_head(raw)
                decision = self._decide(req)
                if decision.mode == "canned":
                    if decision.before_body:
                        await conn.queue.put(_Item(req, decision))
                        if req.header("Expect") is None:
                            with contextlib.suppress(TimeoutError, ProtocolError, OSError):
                                await asyncio.wait_for(
                                    _pipe_body(
                                        conn.client, request_framing(req), _discard, req,
                                        dropped=True,
                                    ),
                                    self.linger_timeout,
                                )  # fmt: skip
                        return
                    await _pipe_body(conn.client, request_framing(req), _discard, req, dropped=True)
                    await conn.queue.put(_Item(req, decision))
                    if decision.close:
                        return
                    continue
                await conn.queue.put(_Item(req, decision))
                try:
                    await self._send_up(conn, raw)
                    await _pipe_body(
                        conn.client, request_framing(req), lambda d: self._send_up(conn, d), req,
                        self.cut_after_upstream_bytes,
                    )  # fmt: skip
                except _Abort:
                    self._record(req, None, "cut")
                    raise
        finally:
            conn.up_done.set()

    async def _next_item(self, conn: _Conn) -> _Item | None:
        """The next queued request; None if the upstream closed while idle."""
        if not conn.queue.empty():
            return conn.queue.get_nowait()
        get = asyncio.ensure_future(conn.queue.get())
        watch: asyncio.Future[bool] | None = None
        try:
            while True:
                watch = asyncio.ensure_future(conn.upstream.fill())
                done, _ = await asyncio.wait({get, watch}, return_when=asyncio.FIRST_COMPLETED)
                if get in done:
                    return get.result()
                if not watch.result():  # upstream EOF with nothing outstanding
                    return None
                # Unsolicited bytes stay buffered and are read as the next response.
        finally:
            # Cancelling a pending read or queue get loses nothing (both are cancel-safe).
            # asyncio.wait never raises their CancelledError: suppressing it here would also
            # swallow a cancel of this task (3.11 delivers it through the awaited one), and after
            # a cut `_pump_responses` would wait on the upstream while the client hangs.
            leftovers = [f for f in (get, watch) if f is not None and not f.done()]
            for fut in leftovers:
                fut.cancel()
            if leftovers:
                await asyncio.wait(leftovers)

    async def _pump_responses(self, conn: _Conn) -> None:
        """Upstream → client, in request order; canned answers are slotted in the same order."""
        while True:
            item = await self._next_item(conn)
            if item is None or item.req is None:
                return
            req, decision = item.req, item.decision
            if decision.mode == "canned":
                assert decision.canned is not None
                self._record(req, decision.canned.status, f"respond {decision.canned.status}")
                await self._send_down(
                    conn,
                    decision.canned.encode(head_only=req.method == "HEAD", close=decision.close),
                )
                if decision.close:
                    if decision.before_body:
                        # Let the client finish its body so it reads our answer, not an RST.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(conn.up_done.wait(), self.linger_timeout)
                    return
                continue
            while True:
                raw = await conn.upstream.read_head()
                if raw is None:
                    raise ProtocolError("upstream closed before responding")
                resp = parse_response_head(raw)
                if resp.status >= 200 or resp.status == 101:
                    break
                if decision.mode == "forward":
                    await self._send_down(conn, raw)  # 100 Continue and friends
            framing = response_framing(req, resp)
            if decision.mode == "forward":
                self._record(req, resp.status)
                await self._send_down(conn, raw)
                await _pipe_body(conn.upstream, framing, lambda d: self._send_down(conn, d))
            else:
                await _pipe_body(conn.upstream, framing, _discard)
                if decision.mode == "swallow":
                    self._record(req, resp.status, "swallow")
                    raise _Abort("swallow")
                assert decision.canned is not None
                self._record(req, resp.status, f"replace with {decision.canned.status}")
                await self._send_down(
                    conn, decision.canned.encode(head_only=req.method == "HEAD", close=False)
                )
            connection = (resp.header("Connection") or "").lower()
            if framing[0] == "eof" or "close" in connection or resp.version == "HTTP/1.0":
                return


# The `fault_proxy` fixture's type: `(upstream, **FaultProxy options) -> started proxy`.
ProxyFactory = Callable[..., FaultProxy]
