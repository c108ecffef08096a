"""Hostile registries, endless answers and bad arguments (issue 16, network and secrets half).

Each case is what a probe of Hoist found: a real registry where it can show the fault, a
scripted answer (`httpx.MockTransport`) or a small server on 127.0.0.1 where only a hostile
server would answer that way. Kept in the suite so new code meets these cases too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pushing import hoist_cli, push_paths
from support.hostile import HostileServer, Script, drip
from support.registry import RegistryProcess
from support.tokenserver import TokenServer
from test_push import make_file

from hoist.core.errors import HoistError, NetworkError, RegistryError
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient
from hoist.core.transfer.download import pull_blob

KiB = 1024
DIGEST = "sha256:" + "a" * 64


def _other_host_challenges(seen: list[httpx.Request]) -> httpx.MockTransport:
    """A registry (Basic) that redirects blobs to storage.example, which answers 401 naming
    its own Bearer realm at evil.example."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        host = request.url.host
        if host == "reg.example":
            if "Authorization" not in request.headers:
                return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
            if "/blobs/" in request.url.path:
                return httpx.Response(
                    307, headers={"Location": "https://storage.example/b?X-Signature=s3cr3t"}
                )
            return httpx.Response(200)
        if host == "storage.example":
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://evil.example/token",service="x"'
                },
            )
        return httpx.Response(200, json={"token": "stolen"})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("operation", ["pull", "push"])
async def test_another_hosts_bearer_realm_never_gets_the_credentials(operation: str) -> None:
    """#1: a redirect target's own Bearer challenge is not the registry's: no token request."""
    seen: list[httpx.Request] = []
    async with RegistryClient(
        "reg.example", credentials=Credentials("u", "pw"), transport=_other_host_challenges(seen)
    ) as client:
        await client.ping()
        with pytest.raises(HoistError):
            if operation == "pull":
                await client.stream_blob("repo", DIGEST)
            else:  # a push asks first whether the blob is there (HEAD, redirects followed)
                await client.blob_size("repo", DIGEST)
    assert any(r.url.host == "storage.example" for r in seen)
    assert not [r for r in seen if r.url.host == "evil.example"]
    for request in seen:
        if request.url.host != "reg.example":
            assert "Authorization" not in request.headers


async def test_tokens_living_five_seconds_are_used(
    registry_factory: object, token_server_factory: object, state_dir: Path, tmp_path: Path
) -> None:
    """#20: a token server issuing 5 s tokens: login (ping) and a push both work."""
    server: TokenServer = token_server_factory(expires_in=5)  # type: ignore[operator]
    reg: RegistryProcess = registry_factory(token_auth=server)  # type: ignore[operator]
    creds = Credentials("hoist", "s3cret-pass")
    async with RegistryClient(reg.host, credentials=creds) as client:
        await client.ping()
    path = make_file(tmp_path / "a.bin", 300 * KiB)
    digest, _ = await push_paths(
        reg.host, "short/tokens:v1", [path], chunk_size=64 * KiB, credentials=creds
    )
    assert digest.startswith("sha256:")
    result = hoist_cli("login", reg.host, "-u", "hoist", "--password-stdin", input="s3cret-pass\n")
    assert "Login succeeded" in result.stderr, result.stderr


# -- endless answers (#14) -----------------------------------------------------------------------


class Endless:
    """An answer body that never ends (a hostile server): counts what was read of it."""

    def __init__(self, block: bytes = b"[" * 65536, limit: int = 256 * 1024 * 1024) -> None:
        self.block = block
        self.limit = limit  # a safety stop so a failing test can't eat the machine
        self.sent = 0

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        while self.sent < self.limit:
            self.sent += len(self.block)
            yield self.block


async def test_an_endless_token_answer_is_refused_early() -> None:
    endless = Endless(b"x" * 65536)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            return httpx.Response(200, content=endless)
        if "Authorization" in request.headers:
            return httpx.Response(200)
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/t"'}
        )

    async with RegistryClient(
        "reg.example", credentials=Credentials("u", "p"), transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(RegistryError) as info:
            await asyncio.wait_for(client.ping(), 20)
    assert endless.sent <= 2 * 1024 * 1024
    assert "token" in info.value.sentence()


@pytest.mark.parametrize("status", [201, 307, 401])
async def test_endless_replies_to_a_put_and_redirects_are_not_read_whole(status: int) -> None:
    """A commit's reply, a redirect's body and a 401's body: none is read into memory whole."""
    endless = Endless()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v2/") and request.method == "PUT":
            headers = {"Location": "/elsewhere"} if status == 307 else {}
            return httpx.Response(status, headers=headers, content=endless)
        return httpx.Response(200)

    async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
        try:
            await asyncio.wait_for(
                client.finish_upload("https://reg.example/v2/r/blobs/uploads/1", DIGEST, b"x", 1),
                20,
            )
        except HoistError:
            pass
    assert endless.sent <= 2 * 1024 * 1024


# -- what can't heal fails at once (#16), sentences not tracebacks (#18) -------------------------


def _redirecting(location: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/blobs/" in request.url.path:
            return httpx.Response(307, headers={"Location": location})
        return httpx.Response(200)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("file:///etc/passwd", "file"),
        ("/v2/r/blobs/" + DIGEST, "loop"),  # back to itself: a redirect loop
        ("http://[::1", "Location"),
        ("http://storage.example:99999/b", "Location"),
    ],
)
async def test_unusable_redirects_fail_at_once_with_a_sentence(location: str, words: str) -> None:
    async with RegistryClient("reg.example", transport=_redirecting(location)) as client:
        with pytest.raises(RegistryError) as info:
            await client.stream_blob("r", DIGEST)
    assert not info.value.temporary
    assert words.lower() in info.value.sentence().lower()


async def test_a_pull_redirected_to_a_file_url_fails_at_once(tmp_path: Path) -> None:
    """#16: before, the `file://` target was a network error and retried for 10 minutes."""
    async with RegistryClient(
        "reg.example", transport=_redirecting("file:///etc/passwd")
    ) as client:
        with pytest.raises(HoistError) as info:
            await asyncio.wait_for(pull_blob(client, "r", DIGEST, tmp_path, size=10), 20)
    assert not info.value.temporary


async def test_a_blob_shorter_than_the_manifest_says_fails_at_once(tmp_path: Path) -> None:
    """#16: a registry that sends a complete answer of the wrong size won't heal by waiting."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"short")

    async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(HoistError) as info:
            await asyncio.wait_for(pull_blob(client, "r", DIGEST, tmp_path, size=100), 20)
    assert not info.value.temporary
    assert "5" in info.value.message and "100" in info.value.message


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"errors":' * 50_000, b"\xff\xfe junk"],
)
async def test_deeply_nested_or_junk_error_bodies_are_sentences(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        return httpx.Response(404, content=body)

    async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RegistryError) as info:
            await client.get_manifest("r", "v1")
        assert "404" in info.value.sentence()
        with pytest.raises(RegistryError):
            await client.get_json("/v2/r/tags/list", what="list tags")


async def test_deeply_nested_json_in_a_success_answer_is_a_sentence() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" * 100_000)

    async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RegistryError) as info:
            await client.get_json("/v2/r/tags/list", what="list tags")
    assert "JSON" in info.value.sentence()


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Length": "lots"},
        {"Content-Length": "-5"},
    ],
)
async def test_junk_response_headers_are_sentences(headers: dict[str, str]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200)
        response.headers.update(headers)
        return response

    async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RegistryError) as info:
            await client.blob_size("r", DIGEST)
    assert "Content-Length" in info.value.sentence()


# -- secrets in logs (#2) and the window's message bar (#21) -------------------------------------


async def test_signed_redirect_queries_stay_out_of_the_log_and_errors(
    state_dir: Path, tmp_path: Path
) -> None:
    """#2: a CDN's pre-signed URL (signature in the query) is never written to the window's log
    file nor put in an error."""
    from hoist.gui.app import log_path, setup_logging

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "reg.example":
            return httpx.Response(
                307, headers={"Location": "https://cdn.example/b?X-Amz-Signature=SIGNED-SECRET"}
            )
        return httpx.Response(403, text="<Error>Request has expired</Error>")

    root = logging.getLogger()
    before = list(root.handlers), root.level
    setup_logging()
    try:
        async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(HoistError) as info:
                await client.stream_blob("r", DIGEST)
    finally:
        for handler_ in root.handlers:
            if handler_ not in before[0]:
                handler_.close()
                root.removeHandler(handler_)
        root.setLevel(before[1])
    written = log_path().read_text()
    assert "cdn.example" in written  # the request was logged, without its query
    assert "SIGNED-SECRET" not in written
    assert "X-Amz-Signature" not in info.value.sentence()
    assert "SIGNED-SECRET" not in str(vars(info.value))


@pytest.fixture
def qasync_loop(qapp: object) -> Iterator[asyncio.AbstractEventLoop]:
    import qasync

    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_registry_error_text_is_plain_text_in_the_message_bar(
    qtbot: object, qasync_loop: asyncio.AbstractEventLoop, state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """#21: a registry's error text is shown as it is, never rendered as HTML."""
    from PySide6.QtCore import Qt

    from hoist.gui.context import AppContext
    from hoist.gui.main_window import MainWindow

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    window = MainWindow(AppContext.create())
    qtbot.addWidget(window)  # type: ignore[attr-defined]
    text = 'push: registry answered 400 (<a href="http://evil.example">click</a> <b>now</b>)'
    window.show_error(text)
    assert window.message_label.text() == text
    assert window.message_label.textFormat() == Qt.TextFormat.PlainText


# -- arguments (#22), resume --all --password-stdin (#3), smaller things ------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["catalog", "127.0.0.1:9", "--page-size", "0"], "1 to"),
        (["tags", "127.0.0.1:9/r", "--page-size", "-3"], "1 to"),
        (["push", "127.0.0.1:9/r:v1", "F", "--split", "--part-size", "0"], "1 MiB to"),
        (["push", "127.0.0.1:9/r:v1", "F", "--chunk-size", "1"], "64 KiB to"),
        (["push", "127.0.0.1:9/r:v1", "F", "--chunk-size", "99999TiB"], "64 KiB to"),
        (["push", "127.0.0.1:9/r:v1", "F", "--parallel", "-1"], "1 to"),
        (["push", "127.0.0.1:9/r:v1", "F", "--limit-rate", "fast"], "rate"),
        (["push", "127.0.0.1:9/Bad Name", "F"], "host[:port]/repository"),
        (["inspect", "127.0.0.1:99999/r:v1"], "port"),
    ],
)
def test_bad_arguments_are_usage_errors_naming_the_limits(
    args: list[str], words: str, tmp_path: Path, state_dir: Path
) -> None:
    path = make_file(tmp_path / "f.bin", 10)
    result = hoist_cli(*[str(path) if a == "F" else a for a in args])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert words.lower() in result.stderr.lower(), result.stderr


def test_resume_all_with_password_stdin_authenticates_every_transfer(
    auth_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    """#3: stdin has one line; every transfer `resume --all` runs gets the password."""
    from hoist.core.oci.reference import parse_reference
    from hoist.core.transfer.journal import TransferJournal
    from hoist.core.transfer.push import plan_file_push

    journal = TransferJournal()
    for n in range(2):
        path = make_file(tmp_path / f"f{n}.bin", 100 * KiB, seed=n)
        ref = parse_reference(f"{auth_registry.host}/resume/all{n}:v1")
        transfer = plan_file_push(ref, [path], chunk_size=64 * KiB)
        journal.save(transfer.id, transfer.to_json())
    user, password = auth_registry.credentials  # type: ignore[misc]
    result = hoist_cli("resume", "--all", "-u", user, "--password-stdin", input=password + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("@sha256:") == 2, result.stdout


def test_progress_line_says_no_zero_speed_and_counts_blobs_already_there() -> None:
    import io

    from hoist.core.cli.display import ProgressPrinter
    from hoist.core.progress import BlobEvent, BlobState

    out = io.StringIO()
    printer = ProgressPrinter("plain", stream=out, interval=0)
    printer(BlobEvent("t", "a", BlobState.EXISTS, 0, 0, 1024 * KiB))
    printer.finish()
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("done 1 MiB / 1 MiB (100.0%)"), last
    assert "0 B/s" not in last and "done 0 B" not in last


def test_catalog_error_does_not_promise_a_retry(registry_factory: object) -> None:
    """The catalog command exits on a 5xx: its sentence must not say Hoist retries."""
    import http.server
    import threading

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = 200 if self.path == "/v2/" else 503
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = hoist_cli("catalog", f"127.0.0.1:{server.server_address[1]}", "--plain-http")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert "503" in result.stderr and "Hoist retries" not in result.stderr, result.stderr


# -- servers that drip and stall (#15) ------------------------------------------------------------

DRIP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Junk: " + b"a" * 4000


async def _drip_headers(writer: asyncio.StreamWriter, line: str) -> None:
    if line.startswith("GET /v2/ "):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return
    await drip(writer, DRIP_HEAD, 0.05)  # a byte every 50 ms: never a 1 s silence


async def _drip_body(writer: asyncio.StreamWriter, line: str) -> None:
    if line.startswith("GET /v2/ "):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n[")
    await drip(writer, b" " * 100000, 0.05)


@pytest.mark.parametrize("script", [_drip_headers, _drip_body], ids=["headers", "body"])
async def test_a_dripping_answer_ends_in_a_timeout(script: Script) -> None:
    """#15: a byte every 50 ms never trips a 1 s read timeout; the answer deadline ends it."""
    with HostileServer(script) as server:
        async with RegistryClient(
            server.host, plain_http=True, timeout=1.0, answer_deadline=2.0
        ) as client:
            with pytest.raises(NetworkError) as info:
                await asyncio.wait_for(client.get_manifest("r", "v1"), 20)
    assert info.value.temporary


async def test_a_chunk_reply_that_drips_ends_in_a_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#15: the reply to a PATCH sent straight from the file (core/filebody.py) drips."""
    from hoist.core.oci.digest import SequentialHasher
    from hoist.core.registry import filebody
    from hoist.core.registry.client import FileBody
    from hoist.core.sources.content import FileRange

    monkeypatch.setattr(filebody, "ANSWER_DEADLINE", 2.0)

    async def script(writer: asyncio.StreamWriter, line: str) -> None:
        if line.startswith("PATCH"):
            await drip(writer, DRIP_HEAD, 0.05)

    path = make_file(tmp_path / "a.bin", 1000)
    with HostileServer(script) as server:
        async with RegistryClient(server.host, plain_http=True, timeout=1.0) as client:
            body = FileBody(FileRange.whole(path), SequentialHasher())
            with pytest.raises(NetworkError):
                await asyncio.wait_for(
                    client.send_chunk(f"http://{server.host}/v2/r/blobs/uploads/1", body, 0, 1000),
                    20,
                )


@pytest.mark.slow
async def test_a_stalled_download_waits_for_the_network_then_gives_up(tmp_path: Path) -> None:
    """#15: a blob that stalls after a few bytes: read timeout, "waiting for the network,
    retry in N s", and the error once the policy gives up."""
    from hoist.core.progress import BlobEvent, BlobState
    from hoist.core.retry import RetryPolicy

    async def script(writer: asyncio.StreamWriter, line: str) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        await writer.drain()
        await asyncio.sleep(3600)

    events: list[object] = []
    with HostileServer(script) as server:
        async with RegistryClient(server.host, plain_http=True, timeout=1.0) as client:
            with pytest.raises(NetworkError):
                await asyncio.wait_for(
                    pull_blob(
                        client, "r", DIGEST, tmp_path, size=100, on_event=events.append,
                        retry=RetryPolicy(first=0.5, cap=1.0, give_up_after=4.0),
                    ),
                    60,
                )  # fmt: skip
    waiting = [e for e in events if isinstance(e, BlobEvent) and e.state == BlobState.WAITING]
    assert waiting and "network" in waiting[0].message and waiting[0].retry_in is not None


# -- paging and large indexes (#17) -----------------------------------------------------------


def _paging(next_cursor: Callable[[int], str], items: Callable[[int], list[str]]) -> tuple[
    httpx.MockTransport, list[httpx.Request]
]:  # fmt: skip
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) > 500:  # a safety stop for the code before the fix
            return httpx.Response(500)
        n = len(seen)
        link = f'</v2/_catalog?n=2&last={next_cursor(n)}>; rel="next"'
        return httpx.Response(200, json={"repositories": items(n)}, headers={"Link": link})

    return httpx.MockTransport(handler), seen


@pytest.mark.parametrize(
    ("cursor", "items"),
    [
        (lambda n: f"c{n}", lambda n: ["a", "b"]),  # a new cursor each time, the same names
        (lambda n: "x" * 1000 * n, lambda n: [f"r{n}"]),  # a cursor that grows and grows
    ],
    ids=["same-names", "growing-cursor"],
)
async def test_paging_stops_on_a_runaway_cursor(
    cursor: Callable[[int], str], items: Callable[[int], list[str]]
) -> None:
    from hoist.core.registry.listing import catalog_pages

    transport, seen = _paging(cursor, items)
    async with RegistryClient("reg.example", transport=transport) as client:
        with pytest.raises(RegistryError) as info:
            async for _page in catalog_pages(client, page_size=2):
                pass
    assert "paging" in info.value.sentence()
    assert len(seen) <= 20


async def test_inspecting_a_huge_index_fetches_only_what_is_shown() -> None:
    """#17: a 20,000-entry index: the first children are sized, the rest listed unfetched."""
    import hashlib
    import json

    from hoist.core.registry.browse import MAX_SIZED_CHILDREN, inspect

    child = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                    "digest": "sha256:" + "4" * 64},
         "layers": [], "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}}
    ).encode()  # fmt: skip
    entries = [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": len(child),
         "digest": "sha256:" + hashlib.sha256(child).hexdigest(),
         "platform": {"os": "linux", "architecture": f"a{i}"}}
        for i in range(20_000)
    ]  # fmt: skip
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": entries}
    ).encode()  # fmt: skip
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        kind = "application/vnd.oci.image.index.v1+json"
        if request.url.path.endswith("/manifests/v1"):
            return httpx.Response(200, content=index, headers={"Content-Type": kind})
        if "/manifests/" in request.url.path:
            kind = "application/vnd.oci.image.manifest.v1+json"
            return httpx.Response(200, content=child, headers={"Content-Type": kind})
        return httpx.Response(404)

    async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
        info = await inspect(client, "r", "v1", with_referrers=False)
    assert len(info.platforms) == 20_000
    assert len(seen) <= MAX_SIZED_CHILDREN + 5
    assert info.platforms[0].content_size == 2
    assert info.platforms[-1].content_size is None
    assert any("not fetched" in w for w in info.warnings)


async def test_a_redirect_targets_refusal_names_that_host_not_a_login() -> None:
    """#1: the 401 came from the storage host, so "log in to the registry" would be wrong."""
    seen: list[httpx.Request] = []
    async with RegistryClient(
        "reg.example", credentials=Credentials("u", "pw"), transport=_other_host_challenges(seen)
    ) as client:
        await client.ping()
        with pytest.raises(RegistryError) as info:
            await client.stream_blob("repo", DIGEST)
    sentence = info.value.sentence()
    assert "storage.example" in sentence and "hoist login" not in sentence, sentence
    assert not info.value.temporary


async def test_a_junk_upload_location_is_a_sentence() -> None:
    """#18: a `Location` that is not a URL, on the registry's own answer to POST."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202, headers={"Location": "http://[::1"})

    async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RegistryError) as info:
            await client.start_upload("r")
    assert "location" in info.value.sentence().lower()


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nthis line has no colon\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 2000 Huh\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["no-colon", "negative-length", "bad-status"],
)
async def test_junk_http_on_the_wire_fails_at_once_with_a_sentence(head: bytes) -> None:
    """#18: a server that speaks broken HTTP won't heal: no 10 minutes of retries."""

    async def script(writer: asyncio.StreamWriter, line: str) -> None:
        writer.write(head)
        await writer.drain()

    with HostileServer(script) as server:
        async with RegistryClient(server.host, plain_http=True) as client:
            with pytest.raises(RegistryError) as info:
                await client.get_manifest("r", "v1")
    assert not info.value.temporary
    assert "HTTP" in info.value.sentence()


def test_retry_for_must_not_be_negative(tmp_path: Path, state_dir: Path) -> None:
    path = make_file(tmp_path / "f.bin", 10)
    result = hoist_cli("push", "127.0.0.1:9/r:v1", str(path), "--retry-for", "-5")
    assert result.returncode == 2 and "0 or more" in result.stderr, result.stderr


def test_tracebacks_in_the_log_are_redacted_too(state_dir: Path) -> None:
    """#2: a traceback whose exception text holds a signed URL is written without its query."""
    from hoist.gui.app import log_path, setup_logging

    root = logging.getLogger()
    before = list(root.handlers), root.level
    setup_logging()
    try:
        try:
            raise RuntimeError("GET https://cdn.example/b?sig=SIGNED-SECRET failed")
        except RuntimeError:
            logging.getLogger("test").exception("something broke")
    finally:
        for handler_ in root.handlers:
            if handler_ not in before[0]:
                handler_.close()
                root.removeHandler(handler_)
        root.setLevel(before[1])
    written = log_path().read_text()
    assert "something broke" in written and "cdn.example/b?" in written
    assert "SIGNED-SECRET" not in written


async def test_a_registry_address_with_port_over_65535_is_a_sentence() -> None:
    """#18: the window's registry address (not parsed as a reference) names port 70000."""
    async with RegistryClient("127.0.0.1:70000", plain_http=True) as client:
        with pytest.raises(RegistryError) as info:
            await client.ping()
    assert "65535" in info.value.sentence() and not info.value.temporary


async def test_a_blob_with_the_wrong_digest_fails_at_once(tmp_path: Path) -> None:
    """#16: the right size but other bytes: a permanent mismatch, never retried."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=b"x" * 100)

    async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(HoistError) as info:
            await asyncio.wait_for(pull_blob(client, "r", DIGEST, tmp_path, size=100), 20)
    assert not info.value.temporary
    assert "digest" in info.value.sentence() or "match" in info.value.sentence()
    assert len(requests) <= 2
    assert not list(tmp_path.iterdir()) or all(p.suffix == ".partial" for p in tmp_path.iterdir())
