"""The raw body sender (core/filebody.py) against peers a registry can't be made to imitate.

A peer that accepts a PATCH and then stops reading must not hang the upload. Both ways of
sending are checked: `sendfile` with the socket in blocking mode (to other machines: the
kernel's send timeout, SO_SNDTIMEO, ends it) and `sendall` of the hashed buffer (to loopback
registries: Python's socket timeout ends it). The peer here is on loopback, so the test picks
the way by standing in for the loopback check.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core import filebody
from core.content import FileRange
from core.digest import SequentialHasher
from core.errors import NetworkError
from core.filebody import FileBodySender

MiB = 1024 * 1024


@pytest.fixture(params=["sendfile", "sendall"])
def send_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which way the body goes: sendfile (a remote registry) or sendall (a loopback one).
    Returns the list of ways seen used (for the test to check)."""
    used: list[str] = []
    real = filebody._sendfile_all

    def counted(*args: object) -> None:
        used.append("sendfile")
        real(*args)  # type: ignore[arg-type]

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
    from core.filebody import BodyAborted

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
