"""Peak memory while a hostile server sends endless answers (issue 16 #14: target < 200 MB).

A server on 127.0.0.1 answers every request with a body that never ends: the token realm,
a 401 and a redirect (bodies httpx reads itself), an error page without a length, a manifest,
and the reply to a chunk sent straight from the file. For each case this prints how many bytes
the server got out before Hoist stopped reading, how long that took, what Hoist said, and the
process's peak RSS so far.

    .venv/bin/python bench/hostile_memory.py
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hoist.core.errors import HoistError  # noqa: E402
from hoist.core.oci.digest import SequentialHasher  # noqa: E402
from hoist.core.registry.auth import Credentials  # noqa: E402
from hoist.core.registry.client import FileBody, RegistryClient  # noqa: E402
from hoist.core.sources.content import FileRange  # noqa: E402

BLOCK = b"[" * 65536
sent = [0]


async def endless(writer: asyncio.StreamWriter, head: bytes) -> None:
    writer.write(head)
    try:
        while True:
            writer.write(b"10000\r\n" + BLOCK + b"\r\n" if b"chunked" in head else BLOCK)
            sent[0] += len(BLOCK)
            await writer.drain()
    except (ConnectionError, OSError):
        pass


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    port = writer.get_extra_info("sockname")[1]
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    line = head.split(b"\r\n", 1)[0].decode()
    method, path = line.split(" ")[:2]
    if path.startswith("/token"):
        await endless(writer, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
    elif path == "/v2/" and b"authorization" not in head.lower():
        realm = f'Bearer realm="http://127.0.0.1:{port}/token"'.encode()
        await endless(writer, b"HTTP/1.1 401 No\r\nWWW-Authenticate: " + realm + b"\r\n\r\n")
    elif "/blobs/sha" in path:
        await endless(writer, b"HTTP/1.1 307 Go\r\nLocation: /v2/r/blobs/sha256:" + b"b" * 64
                      + b"\r\n\r\n")  # fmt: skip
    elif "/manifests/" in path:
        await endless(writer, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    elif method == "PATCH":
        await reader.readexactly(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))
        await endless(writer, b"HTTP/1.1 202 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    else:
        await endless(writer, b"HTTP/1.1 503 Busy\r\n\r\n")
    writer.close()


def serve() -> int:
    loop = asyncio.new_event_loop()
    ready: list[int] = []

    async def start() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        ready.append(server.sockets[0].getsockname()[1])

    loop.run_until_complete(start())
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return ready[0]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def case(name: str, call: object) -> None:
    sent[0] = 0
    started = time.monotonic()
    try:
        await asyncio.wait_for(call, 120)  # type: ignore[arg-type]
        said = "answered (the rest of its body left unread)"
    except HoistError as exc:
        said = exc.sentence()[:90]
    except TimeoutError:
        said = "STILL READING after 120 s"
    took = time.monotonic() - started
    print(f"{name:28} server sent {sent[0] / 2**20:8.1f} MiB in {took:5.1f} s; "
          f"peak RSS {peak_mb():6.1f} MB; {said}")  # fmt: skip


async def main(port: int) -> None:
    host = f"127.0.0.1:{port}"
    print(f"peak RSS at start {peak_mb():.1f} MB")
    creds = Credentials("u", "p")
    async with RegistryClient(host, plain_http=True, credentials=creds) as c:
        await case("token realm + 401 body", c.ping())
    async with RegistryClient(host, plain_http=True) as c:
        await case("error page, no length", c.get_json("/v2/_catalog", what="catalog"))
        await case("manifest", c.get_manifest("r", "v1"))
        await case("redirect bodies (a loop)", c.stream_blob("r", "sha256:" + "a" * 64))
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"x" * 100_000)
            f.flush()
            body = FileBody(FileRange.whole(Path(f.name)), SequentialHasher())
            url = f"http://{host}/v2/r/blobs/uploads/1"
            await case("chunk reply (file body)", c.send_chunk(url, body, 0, 100_000))


if __name__ == "__main__":
    asyncio.run(main(serve()))
