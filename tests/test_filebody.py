"""The raw body sender (core/filebody.py) against peers a registry can't be made to imitate.

A peer that accepts a PATCH and then stops reading must not hang the upload: the body goes
out with the socket in blocking mode (one `sendfile` per block), so it is the kernel's send
timeout (SO_SNDTIMEO) that ends it, as a NetworkError the retry policy understands.
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

from core.content import FileRange
from core.digest import SequentialHasher
from core.errors import NetworkError
from core.filebody import FileBodySender

MiB = 1024 * 1024


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
    silent_peer: tuple[str, int], tmp_path: Path
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


def test_an_abort_from_another_thread_stops_a_blocked_send(
    silent_peer: tuple[str, int], tmp_path: Path
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
