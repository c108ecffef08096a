"""The raw body sender (hoist.core.registry.filebody) vs peers a registry can't be made to imitate.

A peer that accepts a PATCH and then stops reading must not hang the upload. Both ways of
sending are checked: `sendfile` with the socket in blocking mode (to other machines: the
kernel's send timeout, SO_SNDTIMEO, ends it) and `sendall` of the hashed buffer (to loopback
registries: Python's socket timeout ends it). The peer here is on loopback, so the test picks
the way by standing in for the loopback check.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.registry import RegistryProcess

from hoist.core.errors import NetworkError
from hoist.core.oci.digest import SequentialHasher
from hoist.core.registry import filebody
from hoist.core.registry.filebody import FileBodySender
from hoist.core.sources.content import FileRange

MiB = 1024 * 1024


@pytest.fixture(params=["sendfile", "sendall"])
def send_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which way the body goes: sendfile (a remote registry) or sendall (a loopback one).
    Returns the list of ways seen used (for the test to check)."""
    used: list[str] = []
    real = filebody._sendfile_all

    def counted(*args: object) -> bool:
        used.append("sendfile")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(filebody, "_sendfile_all", counted)
    monkeypatch.setattr(filebody, "_loopback_peer", lambda sock: request.param == "sendall")
    used.append(str(request.param))
    return used


def test_a_loopback_peer_is_recognised() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    unconnected = socket.socket()
    try:
        assert filebody._loopback_peer(client)
        assert not filebody._loopback_peer(unconnected)  # no peer
    finally:
        for sock in (client, server, unconnected):
            sock.close()


@pytest.fixture
def silent_peer() -> Iterator[tuple[str, int]]:
    """Accepts connections, reads the request head, then never reads again."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.recv(4096)
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_peer_that_stops_reading_ends_the_send_after_the_timeout(
    silent_peer: tuple[str, int], tmp_path: Path, send_path: list[str]
) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(64 * MiB))  # far more than the socket buffers hold
    host, port = silent_peer
    sender = FileBodySender(True, timeout=1.5, user_agent="hoist-test")
    sent: list[int] = []
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        sender.send(
            "PATCH", httpx.URL(f"http://{host}:{port}/v2/r/blobs/uploads/x"),
            {"Content-Type": "application/octet-stream"}, FileRange(path, 0, 64 * MiB),
            0, 64 * MiB, SequentialHasher(), on_block=sent.append, throttle=None,
            abort=threading.Event(), on_socket=lambda s: None,
        )  # fmt: skip
    took = time.monotonic() - started
    sender.close()
    assert 1.0 <= took < 10, took  # the send timeout, not a hang, not at once
    assert "broke" in str(caught.value) and sum(sent) < 64 * MiB
    assert caught.value.temporary  # retried by the upload's policy
    way = send_path[0]
    assert ("sendfile" in send_path[1:]) == (way == "sendfile")  # the way chosen was taken


def test_an_abort_from_another_thread_stops_a_blocked_send(
    silent_peer: tuple[str, int], tmp_path: Path, send_path: list[str]
) -> None:
    """Pause-now and Ctrl-C shut the socket down while sendfile blocks in the kernel."""
    from hoist.core.registry.filebody import BodyAborted

    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(64 * MiB))
    host, port = silent_peer
    sender = FileBodySender(True, timeout=60, user_agent="hoist-test")
    abort = threading.Event()
    sockets: list[socket.socket] = []

    def shut_down_soon() -> None:
        time.sleep(0.5)
        abort.set()
        for sock in sockets:
            sock.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=shut_down_soon, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(BodyAborted):
        sender.send(
            "PATCH", httpx.URL(f"http://{host}:{port}/v2/r/blobs/uploads/x"), {},
            FileRange(path, 0, 64 * MiB), 0, 64 * MiB, SequentialHasher(),
            on_block=lambda n: None, throttle=None, abort=abort, on_socket=sockets.append,
        )  # fmt: skip
    assert time.monotonic() - started < 5  # not the 60 s timeout
    sender.close()


class _Peer:
    """Just enough of a socket for `_loopback_peer`."""

    def __init__(self, address: object) -> None:
        self.address = address

    def getpeername(self) -> object:
        return self.address


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        (("127.0.0.1", 5000), True),
        (("::1", 5000, 0, 0), True),
        (("::ffff:127.0.0.1", 5000, 0, 0), True),  # a dual-stack socket's view of 127.0.0.1
        (("fe80::1%eth0", 5000, 0, 2), False),
        (("192.0.2.7", 5000), False),
        (("::ffff:192.0.2.7", 5000, 0, 0), False),
    ],
)
def test_which_peers_count_as_loopback(address: object, loopback: bool) -> None:
    assert filebody._loopback_peer(_Peer(address)) is loopback  # type: ignore[arg-type]


def test_a_file_that_cannot_be_sendfiled_goes_from_the_buffer(
    registry: RegistryProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some filesystems (FUSE, network mounts) refuse sendfile: the body then goes from the
    buffer it was hashed from, and the registry gets every byte once."""
    monkeypatch.setattr(filebody, "_loopback_peer", lambda sock: False)  # as if remote
    refused: list[int] = []

    def no_sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        refused.append(offset)
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "sendfile", no_sendfile)
    data = os.urandom(9 * MiB + 5)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    opened = httpx.post(f"{registry.url}/v2/fb/fallback/blobs/uploads/")
    location = httpx.URL(registry.url).join(opened.headers["location"])
    sender = FileBodySender(True, timeout=30, user_agent="hoist-test")
    hasher = SequentialHasher()
    try:
        response = sender.send(
            "PATCH", location,
            {"Content-Type": "application/octet-stream", "Content-Range": f"0-{len(data) - 1}"},
            FileRange(path, 0, len(data)), 0, len(data), hasher,
            on_block=lambda n: None, throttle=None, abort=threading.Event(),
            on_socket=lambda s: None,
        )  # fmt: skip
    finally:
        sender.close()
    assert response.status == 202 and refused == [0]  # tried once, then the buffer
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert hasher.position == len(data)
    after = dict((k.lower(), v) for k, v in response.headers)
    commit = httpx.URL(registry.url).join(after["location"]).copy_add_param("digest", digest)
    committed = httpx.put(commit)
    assert committed.status_code == 201, committed.text
    assert httpx.get(f"{registry.url}/v2/fb/fallback/blobs/{digest}").content == data


def test_without_a_kernel_send_timeout_the_socket_keeps_python_s() -> None:
    """Where SO_SNDTIMEO can't be set (its struct differs on some 32-bit systems), the body
    goes from the buffer under Python's timeout: a blocking send without a bound never."""

    class Refusing(socket.socket):
        def setsockopt(self, *args: object) -> None:  # type: ignore[override]
            raise OSError(errno.EINVAL, "Invalid argument")

    sock = Refusing()
    sock.settimeout(7.0)
    try:
        with filebody._blocking(sock, True, 7.0) as blocking:
            assert blocking is False and sock.gettimeout() == 7.0
        plain = socket.socket()
        try:
            with filebody._blocking(plain, True, 7.0) as blocking:
                assert blocking is True and sock.gettimeout() == 7.0
                assert plain.gettimeout() is None  # blocking, bounded by SO_SNDTIMEO
            assert plain.gettimeout() == 7.0
        finally:
            plain.close()
    finally:
        sock.close()
