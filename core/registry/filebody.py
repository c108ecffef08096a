"""Large request bodies straight from a file: PATCH and PUT of blob chunks without copies.

httpx on asyncio copies every body block several times (h11 joins it into a new bytes object,
and Python 3.11's socket transport buffers what the kernel didn't take at once), which made
client CPU about twice that of hashing the file. For the one request that carries gigabytes,
Hoist writes HTTP/1.1 itself: in a worker thread it reads a block into a reused buffer, hashes
it and sends it. Everything else (auth, small requests, manifests) stays on httpx, and so do
requests through an HTTP proxy or a scripted test transport.

How a block is sent depends on where the registry is. To another machine over plain HTTP, the
kernel sends it straight from the page cache (`sendfile`): reading it for the hash is then the
only copy. To a registry on this machine (loopback), the hashed buffer is `sendall`ed, as curl
does: sendfile's page-cache segments cost the *receiving* process more than the copy costs
Hoist (distribution, one 2 GiB PATCH, 4 runs each: registry CPU 7.5-8.2 s and 7.1-7.7 s wall
with sendfile, 6.4-7.2 s and 6.1-7.0 s with sendall; Hoist's own CPU +0.1 s/GiB), and on one
machine both share the same cores. TLS always encrypts from the buffer.

The connection is kept alive per host and reused for the next chunk. TLS goes through the same
`ssl` context rules as httpx (verification on unless the user opted out for the host).
"""

from __future__ import annotations

import array
import contextlib
import errno
import ipaddress
import os
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from hoist.core.sources.content import FileRange

try:
    import fcntl
    import termios

    _TIOCOUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):  # pragma: no cover - Windows
    _TIOCOUTQ = None
from hoist.core.errors import ANSWER_DEADLINE, FileChanged, NetworkError
from hoist.core.oci.digest import SequentialHasher

#: Bytes read, hashed and sent per step (bench/push_throughput.py: 4 MiB costs less CPU than
#: 1 MiB); under a rate cap, smaller steps keep the rate smooth.
BLOCK = 4 * 1024 * 1024
THROTTLED_BLOCK = 256 * 1024
#: A sized body's block goes in pieces this large, each counted as sent when it went.
PROGRESS_PIECE = 512 * 1024
#: A streamed body (chunked framing) is written in frames of at most BLOCK bytes and at least
#: this many; a frame announced must be sent whole, so its size bounds how long ending the
#: stream takes: frames (and the bytes left queued in the kernel) are kept to about
#: STREAM_DRAIN_SECONDS of what the link drains.
SMALLEST_FRAME = 64 * 1024
STREAM_DRAIN_SECONDS = 0.1
#: Once a stream is ended early (a pause), its answer is awaited this long; then that chunk
#: alone is given up (the next run asks the registry where it stands).
ENDED_STREAM_ANSWER_TIMEOUT = 10.0
#: Error bodies are read at most this far (the caller keeps 64 KiB of them).
MAX_RESPONSE_BODY = 64 * 1024
MAX_HEAD = 64 * 1024


class BodyAborted(Exception):
    """The transfer was paused or cancelled while its body was being sent."""


@dataclass(frozen=True)
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    sent: int = 0  # body bytes written (a streamed body may end before its planned end)


@dataclass(frozen=True)
class StreamEnd:
    """How a streamed (chunked) body may end before its planned end.

    `stop()` is polled between frames; once it says so and at least `min_bytes` went, the body
    ends cleanly (the `0` frame), so the registry keeps every byte sent.
    """

    stop: Callable[[], bool]
    min_bytes: int = 2


@dataclass
class _Conn:
    sock: socket.socket
    key: tuple[str, str, int]
    pooled: bool  # kept alive from an earlier request (the server may have closed it since)


class FileBodySender:
    """Sends requests whose body is a byte range of a file, on reusable HTTP/1.1 connections.

    Thread-safe: each call takes a connection out of the idle pool (or opens one) and gives it
    back when the response was read whole.
    """

    def __init__(self, verify: ssl.SSLContext | bool, timeout: float, user_agent: str) -> None:
        self.timeout = timeout
        self.user_agent = user_agent
        if verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._ssl: ssl.SSLContext = ctx
        elif verify is True:
            self._ssl = ssl.create_default_context()
        else:
            self._ssl = verify
        self._idle: dict[tuple[str, str, int], list[socket.socket]] = {}
        self._rates: dict[tuple[str, str, int], float] = {}  # the link's speed, per host
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for socks in self._idle.values():
                for sock in socks:
                    sock.close()
            self._idle.clear()

    def _connect(self, url: httpx.URL) -> _Conn:
        scheme = url.scheme
        host = url.host
        port = url.port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        with self._lock:
            pool = self._idle.get(key)
            if pool:
                return _Conn(pool.pop(), key, pooled=True)
        raw = socket.create_connection((host, port), timeout=min(self.timeout, 15.0))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(self.timeout)
        sock: socket.socket = raw
        if scheme == "https":
            sock = self._ssl.wrap_socket(raw, server_hostname=host)
        return _Conn(sock, key, pooled=False)

    def _release(self, conn: _Conn, reusable: bool) -> None:
        if not reusable:
            conn.sock.close()
            return
        with self._lock:
            self._idle.setdefault(conn.key, []).append(conn.sock)

    def send(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        source: FileRange,
        start: int,
        end: int,
        hasher: SequentialHasher,
        *,
        on_block: Callable[[int], None],
        throttle: Callable[[int], None] | None,
        abort: threading.Event,
        on_socket: Callable[[socket.socket], None],
        streamed: StreamEnd | None = None,
    ) -> RawResponse:
        """Send `method url` with the blob's bytes [start, end) as body; read the response.

        Blocking: run it in a worker thread. `abort` (with the socket shut down by the caller
        through `on_socket`'s handle) stops it between blocks or inside a blocked send: the
        request is cut. With `streamed`, the body goes with `Transfer-Encoding: chunked` and no
        length, and may end cleanly at any frame (see StreamEnd): `sent` says where.
        """
        length = end - start
        for attempt in (1, 2):
            try:
                conn = self._connect(url)
            except (OSError, ssl.SSLError) as exc:
                raise NetworkError(f"can't connect to {url.host}: {exc}") from exc
            on_socket(conn.sock)
            sent = [0]
            body = _Body(source, start, end, hasher, on_block, throttle, abort, sent)
            counted = [0]  # bytes reported to on_block: those the peer's kernel acknowledged
            try:
                self._write_head(conn.sock, method, url, headers, length, streamed is not None)
                if streamed is not None:
                    drain = _Drain(conn.sock, self._rates.get(conn.key, 0.0))
                    ended = self._write_stream(conn.sock, body, streamed, drain)
                    self._rates[conn.key] = drain.rate
                    if ended:
                        conn.sock.settimeout(min(self.timeout, ENDED_STREAM_ANSWER_TIMEOUT))
                elif length:
                    self._write_body(conn.sock, body, counted)
                response, reusable = _read_response(conn.sock, method)
                conn.sock.settimeout(self.timeout)
            except (BodyAborted, FileChanged, NetworkError):
                conn.sock.close()  # a half-sent request: the connection can't be reused
                raise
            except (OSError, ssl.SSLError) as exc:
                conn.sock.close()
                if abort.is_set():
                    raise BodyAborted() from exc
                early = getattr(exc, "hoist_response", None)
                if isinstance(early, RawResponse):
                    return RawResponse(early.status, early.reason, early.headers, early.body, 0)
                stale = isinstance(exc, (BrokenPipeError, ConnectionResetError))
                if conn.pooled and stale and not sent[0] and attempt == 1:
                    continue  # a kept-alive connection the server had closed: open a fresh one
                raise NetworkError(f"connection to {url.host} broke: {exc}") from exc
            if streamed is None and counted[0] < length:  # answered: every byte arrived
                on_block(length - counted[0])  # (a stream counts its own frames as they go)
            self._release(conn, reusable)
            return RawResponse(response.status, response.reason, response.headers, response.body,
                               sent[0])  # fmt: skip
        raise AssertionError("unreachable")

    def _write_head(
        self,
        sock: socket.socket,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        length: int,
        streamed: bool = False,
    ) -> None:
        target = url.raw_path.decode("ascii")
        host = url.netloc.decode("ascii")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {self.user_agent}"]
        framing = ("content-length", "content-range", "transfer-encoding")
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in framing]
        if streamed:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() == "content-range"]
            lines.append(f"Content-Length: {length}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _write_stream(
        self, sock: socket.socket, body: _Body, streamed: StreamEnd, drain: _Drain
    ) -> bool:
        """Write bytes [start, end) as chunked frames, then the last (`0`) frame. Returns True
        when `streamed.stop()` ended it early.

        Each block read from disk (BLOCK bytes, hashed frame by frame so the hash never runs
        ahead of what the registry got) goes as frames sized to the link (_Drain): large on
        a fast link (few syscalls, ≈ curl's throughput), small on a slow one, so that a stop
        waits for about STREAM_DRAIN_SECONDS of queued bytes, not for a whole block.
        """
        source, end, sent = body.source, body.end, body.sent
        throttle, abort = body.throttle, body.abort
        buf = bytearray(min(BLOCK, end - body.start) or 1)
        view = memoryview(buf)
        tls = isinstance(sock, ssl.SSLSocket)
        ended = False
        with (
            open(source.path, "rb", buffering=0) as f,
            _blocking(sock, _sendfile_wanted(sock), self.timeout) as direct,
        ):
            fd = f.fileno()
            pos = body.start
            while pos < end and not ended:
                n = min(len(buf), end - pos)
                _read_block(fd, view[:n], source, pos)
                at = 0
                while at < n:
                    if abort.is_set():
                        raise BodyAborted()
                    if sent[0] >= streamed.min_bytes and streamed.stop():
                        ended = True
                        break
                    drain.wait_for_room(abort, streamed, sent[0])
                    k = min(n - at, drain.frame())
                    if throttle is not None:
                        k = min(k, THROTTLED_BLOCK)
                        throttle(k)
                    frame = view[at : at + k]
                    body.hasher.update(pos, frame)
                    with _early_answer(sock):
                        if direct:
                            direct = _send_file_frame(sock, fd, source.offset + pos, frame, source)
                            if not direct:  # the file's filesystem can't sendfile: copy
                                sock.settimeout(self.timeout)
                        else:
                            _send_frame(sock, frame, tls)
                    drain.sent(k)
                    at += k
                    pos += k
                    sent[0] += k
                    body.on_block(k)
            with _early_answer(sock):
                sock.sendall(b"0\r\n\r\n")
        return ended

    def _write_body(self, sock: socket.socket, body: _Body, counted: list[int]) -> None:
        """Read, hash and send the body. `on_block` hears only the bytes that left the
        kernel's send queue (the peer acknowledged them): when the connection breaks, what
        still sat there (up to 4 MiB, tcp_wmem) never crossed the network, and counting it
        as sent would count it as re-sent once the chunk goes again."""
        source, end, sent, throttle = body.source, body.end, body.sent, body.throttle
        buf = bytearray(min(BLOCK if throttle is None else THROTTLED_BLOCK, end - body.start))
        view = memoryview(buf)
        with (
            open(source.path, "rb", buffering=0) as f,
            _blocking(sock, _sendfile_wanted(sock), self.timeout) as blocking,
        ):
            direct = blocking
            fd = f.fileno()
            pos = body.start
            while pos < end:
                if body.abort.is_set():
                    raise BodyAborted()
                n = min(len(buf), end - pos)
                if throttle is not None:
                    throttle(n)
                block = view[:n]
                _read_block(fd, block, source, pos)
                body.hasher.update(pos, block)
                # Sent in pieces, each counted as it goes: progress moves several times a
                # second even on a slow link (a 4 MiB block takes 2 s at 2 MiB/s).
                for at in range(0, n, PROGRESS_PIECE):
                    piece = block[at : at + PROGRESS_PIECE]
                    with _early_answer(sock):
                        if direct:
                            # If the file changed since the read, the registry gets other bytes
                            # than were hashed and refuses the digest: never a corrupt blob.
                            where = source.offset + pos + at
                            direct = _sendfile_all(sock.fileno(), fd, where, len(piece), source)
                            if not direct:  # the file's filesystem can't sendfile: copy
                                sock.settimeout(self.timeout)
                                sock.sendall(piece)
                        else:
                            sock.sendall(piece)
                    sent[0] += len(piece)
                    arrived = sent[0] - _unacknowledged(sock)
                    if arrived > counted[0]:
                        body.on_block(arrived - counted[0])
                        counted[0] = arrived
                pos += n


@dataclass(frozen=True)
class _Body:
    """The blob's bytes [start, end) one request sends, and whom it tells as they go:
    `on_block` (bytes sent), `throttle` (asked before each piece), `abort` (stop now), `sent`
    (bytes handed to the socket so far, read by `send` when the connection breaks)."""

    source: FileRange
    start: int
    end: int
    hasher: SequentialHasher
    on_block: Callable[[int], None]
    throttle: Callable[[int], None] | None
    abort: threading.Event
    sent: list[int]


def _sendfile_wanted(sock: socket.socket) -> bool:
    """sendfile to another machine over plain HTTP; else the hashed buffer (module docstring)."""
    return (
        not isinstance(sock, ssl.SSLSocket) and hasattr(os, "sendfile") and not _loopback_peer(sock)
    )


def _read_block(fd: int, into: memoryview, source: FileRange, pos: int) -> None:
    """Read the blob's bytes from `pos` into all of `into`; a file that has since shrunk is
    FileChanged (the upload can't go on with other bytes than it planned)."""
    if os.preadv(fd, [into], source.offset + pos) != len(into):
        raise FileChanged(f"{source.path} is shorter than when the upload began")


def _unacknowledged(sock: socket.socket) -> int:
    """Bytes in the socket's send queue the peer has not acknowledged (Linux SIOCOUTQ, which
    is TIOCOUTQ); 0 where the kernel can't tell."""
    if _TIOCOUTQ is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), _TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return max(0, int(struct.unpack("i", raw)[0]))


@contextlib.contextmanager
def _early_answer(sock: socket.socket) -> Iterator[None]:
    """A send that fails because the server answered early and closed (nginx's 413 before
    reading the body, an old nginx's 411 to a chunked one) raises with what it said attached
    (`hoist_response`), rather than as a broken pipe."""
    try:
        yield
    except OSError as exc:
        early = _try_read_early_response(sock)
        if early is not None:
            exc.hoist_response = early  # type: ignore[attr-defined]
        raise


def _send_frame(sock: socket.socket, frame: memoryview, tls: bool) -> None:
    """One chunked-encoding frame: size line, data, CRLF, in one system call where it can."""
    size = f"{len(frame):x}\r\n".encode("ascii")
    if tls:
        sock.sendall(size)
        sock.sendall(frame)
        sock.sendall(b"\r\n")
        return
    parts: list[bytes | memoryview] = [size, frame, b"\r\n"]
    while parts:
        done = sock.sendmsg(parts)
        while parts and done >= len(parts[0]):
            done -= len(parts[0])
            parts.pop(0)
        if parts and done:
            parts[0] = memoryview(parts[0])[done:]


def _send_file_frame(
    sock: socket.socket, fd: int, offset: int, frame: memoryview, source: FileRange
) -> bool:
    """One chunked-encoding frame whose data goes by sendfile (the hashed `frame` is what the
    file holds there). Returns False when the file can't be sent this way: the frame then
    went from the buffer, and so should the next ones."""
    sock.sendall(f"{len(frame):x}\r\n".encode("ascii"))
    direct = _sendfile_all(sock.fileno(), fd, offset, len(frame), source)
    if not direct:
        sock.sendall(frame)
    sock.sendall(b"\r\n")
    return direct


class _Drain:
    """How fast the link takes what Hoist writes, from the bytes that left the socket's queue
    of unsent bytes (Linux's SIOCOUTQNSD; elsewhere what was written), to size the next frame
    and to keep that queue to about STREAM_DRAIN_SECONDS of sending: a stream then ends that
    fast even where the kernel would buffer megabytes for a slow link. Bytes in flight are
    left to TCP (limiting them would cap a long link's throughput). The rate starts from the
    previous stream's to the same host, so a new chunk starts at full speed."""

    def __init__(self, sock: socket.socket, rate: float = 0.0) -> None:
        self._sock = sock
        self._written = 0
        self._mark = (time.monotonic(), 0)
        self.rate = rate  # bytes/s, 0 until measured

    def _queued(self) -> int:
        if sys.platform != "linux":
            return 0
        try:
            out = array.array("i", [0])
            fcntl.ioctl(self._sock.fileno(), _SIOCOUTQNSD, out, True)
            return int(out[0])
        except OSError:
            return 0

    def _measure(self, queued: int) -> None:
        now = time.monotonic()
        left = self._written - queued
        then, left_then = self._mark
        if now - then >= 0.05:
            rate = (left - left_then) / (now - then)
            self.rate = rate if not self.rate else 0.5 * self.rate + 0.5 * rate
            self._mark = (now, left)

    def budget(self) -> int:
        if not self.rate:
            return 4 * SMALLEST_FRAME
        return int(self.rate * STREAM_DRAIN_SECONDS)

    def frame(self) -> int:
        return max(SMALLEST_FRAME, min(BLOCK, self.budget() // 2))

    def sent(self, n: int) -> None:
        self._written += n

    def wait_for_room(self, abort: threading.Event, streamed: StreamEnd, sent: int) -> None:
        """Wait while the send queue holds more than the budget (or a stop was asked)."""
        if sys.platform != "linux":
            return
        while True:
            queued = self._queued()
            self._measure(queued)
            room = max(SMALLEST_FRAME, self.budget() // 2)
            if queued <= room or abort.is_set():
                return
            if sent >= streamed.min_bytes and streamed.stop():
                return
            over = (queued - room) / self.rate if self.rate > 0 else 0.001
            time.sleep(min(0.01, max(0.0005, over)))


if sys.platform == "linux":
    import fcntl

    #: linux/sockios.h: bytes in a TCP socket's send queue not yet sent (in flight excluded).
    _SIOCOUTQNSD = 0x894B


@contextlib.contextmanager
def _blocking(sock: socket.socket, wanted: bool, timeout: float) -> Iterator[bool]:
    """The socket in blocking mode meanwhile, for one `os.sendfile` per block (socket.sendfile
    with a Python-level timeout polls and calls again each time the send buffer fills: Python
    work per call), with the kernel's send timeout (SO_SNDTIMEO) bounding how long it may
    block. Yields False, leaving the socket as it is, when that timeout can't be set (then
    the body is sent from the buffer, under Python's timeout)."""
    if not wanted or not _set_send_timeout(sock, timeout):
        yield False
        return
    sock.setblocking(True)
    try:
        yield True
    finally:
        sock.settimeout(timeout)


def _set_send_timeout(sock: socket.socket, timeout: float) -> bool:
    seconds = int(timeout)
    micros = int((timeout - seconds) * 1e6)
    # struct timeval: two C longs, or two 64-bit values where time_t outgrew long (32-bit
    # systems with 64-bit time, whose SO_SNDTIMEO takes 16 bytes).
    for layout in ("ll", "qq"):
        try:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack(layout, seconds, micros)
            )
            return True
        except OSError:
            continue
    return False


def _loopback_peer(sock: socket.socket) -> bool:
    try:
        address = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
    except (OSError, ValueError, IndexError, TypeError):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback


#: What os.sendfile answers for a file its filesystem can't send from (some FUSE and network
#: mounts; macOS for non-regular files): the body then goes from the buffer instead.
_NO_SENDFILE = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def _sendfile_all(out_fd: int, in_fd: int, offset: int, count: int, source: FileRange) -> bool:
    """Send `count` bytes of the file from `offset` on a blocking socket. False (nothing sent)
    when the file can't be sent this way."""
    first = True
    while count:
        try:
            done = os.sendfile(out_fd, in_fd, offset, count)
        except BlockingIOError:  # SO_SNDTIMEO: the registry took nothing for that long
            raise TimeoutError("the registry stopped receiving the upload") from None
        except OSError as exc:
            if first and exc.errno in _NO_SENDFILE:
                return False
            raise
        if done == 0:
            raise FileChanged(f"{source.path} shrank during the upload")
        first = False
        offset += done
        count -= done
    return True


def _try_read_early_response(sock: socket.socket) -> RawResponse | None:
    try:
        sock.settimeout(2.0)
        response, _ = _read_response(sock, "PATCH")
        return response
    except (OSError, ssl.SSLError, NetworkError):
        return None


def _recv(sock: socket.socket, deadline: float) -> bytes:
    """One recv that also keeps to the answer's deadline: a server dripping a byte now and
    then never trips the socket's own per-read timeout."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the registry's answer did not end in time")
    sock.settimeout(min(sock.gettimeout() or left, left))
    return sock.recv(65536)


def _recv_head(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        part = _recv(sock, deadline)
        if not part:
            raise ConnectionResetError("the server closed the connection before answering")
        data += part
        if len(data) > MAX_HEAD:
            raise NetworkError("the server's answer has an oversized header")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _read_response(sock: socket.socket, method: str) -> tuple[RawResponse, bool]:
    """Read one HTTP/1.1 response, within ANSWER_DEADLINE and bounded in size. Returns it and
    whether the connection can be reused."""
    timeout = sock.gettimeout()
    try:
        return _read_response_by(sock, method, time.monotonic() + ANSWER_DEADLINE)
    except ValueError as exc:  # a status, length or chunk size that is not a number
        raise NetworkError(f"the server's answer is not valid HTTP ({exc})") from None
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)


def _read_response_by(
    sock: socket.socket, method: str, deadline: float
) -> tuple[RawResponse, bool]:
    head, rest = _recv_head(sock, deadline)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise NetworkError(f"the server answered something that is not HTTP: {lines[0][:80]!r}")
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    lower = {k.lower(): v for k, v in headers}
    reusable = lower.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return RawResponse(status, reason, headers, b""), reusable
    if "chunked" in lower.get("transfer-encoding", "").lower():
        body, complete = _read_chunked(sock, rest, deadline)
        return RawResponse(status, reason, headers, body), reusable and complete
    if "content-length" in lower:
        length = int(lower["content-length"])
        body = rest
        while len(body) < min(length, MAX_RESPONSE_BODY):
            part = _recv(sock, deadline)
            if not part:
                break
            body += part
        complete = len(body) == length
        return RawResponse(status, reason, headers, body[:MAX_RESPONSE_BODY]), reusable and complete
    # No length: the body runs to the close (read a bounded part of it).
    body = rest
    with contextlib.suppress(OSError):
        while len(body) < MAX_RESPONSE_BODY:
            part = _recv(sock, deadline)
            if not part:
                break
            body += part
    return RawResponse(status, reason, headers, body[:MAX_RESPONSE_BODY]), False


def _read_chunked(sock: socket.socket, data: bytes, deadline: float) -> tuple[bytes, bool]:
    body = b""
    while True:
        while b"\r\n" not in data:
            part = _recv(sock, deadline)
            if not part or len(data) > MAX_HEAD:
                return body, False
            data += part
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return body, len(body) < MAX_RESPONSE_BODY
        while len(data) < size + 2:
            part = _recv(sock, deadline)
            if not part:
                return body, False
            data += part
            if len(body) + len(data) > MAX_RESPONSE_BODY:  # a huge chunk: keep its start only
                return (body + data)[:MAX_RESPONSE_BODY], False
        body += data[:size]
        data = data[size + 2 :]
        if len(body) > MAX_RESPONSE_BODY:
            return body[:MAX_RESPONSE_BODY], False
