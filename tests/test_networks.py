"""The networks and registries people really have: 429, 413 pages, 502s, body limits, no PATCH.

Faults come from the suite's HTTP-aware proxy in front of the real registry; every push must land
byte-exact, and each test records the requests made and the bytes re-sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from pushing import get_blob, get_manifest, hoist_cli, push_paths
from support.proxy import html_error_page, match
from support.registry import RegistryProcess
from test_push import make_file

from hoist.core.bandwidth import BandwidthLimiter
from hoist.core.errors import RegistryError
from hoist.core.progress import BlobEvent, BlobState, Event
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.profile import ProfileStore
from hoist.core.retry import RetryPolicy
from hoist.core.transfer.settings import apply_profile
from hoist.core.transfer.upload import UploadSettings

KiB = 1024
FAST_RETRY = RetryPolicy(first=0.05, cap=0.2, give_up_after=60)


def settings(host: str | None = None, **kw: object) -> UploadSettings:
    s = UploadSettings(retry=FAST_RETRY, **kw)  # type: ignore[arg-type]
    if host is not None:
        apply_profile(s, host, ProfileStore())
    return s


def assert_landed(reg: RegistryProcess, repo: str, path: Path) -> None:
    manifest = get_manifest(reg.url, repo, "v1")
    assert get_blob(reg.url, repo, manifest["layers"][0]["digest"]) == path.read_bytes()


def patch_bytes(proxy) -> int:  # type: ignore[no-untyped-def]
    """PATCH body bytes that reached the registry: sized, or streamed (chunked)."""
    return int(proxy.body_bytes("PATCH"))


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}', "application/json"),
        (b"Too Many Requests (HAP429).\n", "text/plain"),  # Docker Hub's is not JSON
    ],
)
async def test_429_honours_retry_after(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, fault_proxy, body: bytes,
    content_type: str,
) -> None:  # fmt: skip
    proxy = fault_proxy(registry)
    path = make_file(tmp_path / "a.bin", 256 * KiB)
    proxy.respond_instead(
        match("PATCH"), 429, {"Retry-After": "1", "Content-Type": content_type}, body,
        before_body=False,
    )  # fmt: skip
    events: list[Event] = []
    started = time.monotonic()
    repo = f"net/429-{content_type.split('/')[1]}"
    await push_paths(
        proxy.host, f"{repo}:v1", [path], chunk_size=64 * KiB, events=events, settings=settings()
    )
    assert time.monotonic() - started >= 1.0  # it waited as asked
    assert_landed(registry, repo, path)
    waiting = [e for e in events if isinstance(e, BlobEvent) and e.state == BlobState.WAITING]
    assert waiting and "slow down" in waiting[0].message
    statuses = [r.status for r in proxy.requests if r.method == "PATCH"]
    assert statuses.count(429) == 1 and statuses.count(202) == 4
    assert patch_bytes(proxy) == 256 * KiB + 64 * KiB  # one chunk sent twice, nothing else


async def test_413_from_a_proxy_shrinks_the_chunk_and_remembers(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, fault_proxy
) -> None:
    """nginx's client_max_body_size: an HTML 413 before the body is read. On sized chunks
    (a host that took no streamed PATCH: the limit is read from Content-Length)."""
    proxy = fault_proxy(registry)
    limit = 1_500_000
    proxy.respond_instead(
        match("PATCH", min_content_length=limit), 413,
        {"Content-Type": "text/html"}, html_error_page(413), times=None, before_body=True,
    )  # fmt: skip
    path = make_file(tmp_path / "big.bin", 5 * 1024 * KiB)
    events: list[Event] = []
    await push_paths(
        proxy.host, "net/413:v1", [path], chunk_size=4 * 1024 * KiB, events=events,
        settings=settings(proxy.host, streamed=False),
    )  # fmt: skip
    assert_landed(registry, "net/413", path)
    refused = [r for r in proxy.requests if r.status == 413]
    assert 1 <= len(refused) <= 2  # 4 MiB, then 2 MiB refused; 1 MiB passes
    messages = [e.message for e in events if isinstance(e, BlobEvent) and e.message]
    assert any("refused" in m for m in messages)
    learned = ProfileStore().get(proxy.host)
    assert learned.max_chunk is not None and learned.max_chunk <= limit
    # The next push to that host starts at the learned size: no 413 at all.
    proxy.reset_counters()
    other = make_file(tmp_path / "other.bin", 3 * 1024 * KiB, seed=3)
    await push_paths(
        proxy.host, "net/413b:v1", [other], chunk_size=4 * 1024 * KiB,
        settings=settings(proxy.host, streamed=False),
    )  # fmt: skip
    assert not [r for r in proxy.requests if r.status == 413]


async def test_occasional_502_is_retried(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, fault_proxy
) -> None:
    proxy = fault_proxy(registry)
    proxy.fail_every(3, 502, match=match("PATCH"))
    path = make_file(tmp_path / "a.bin", 640 * KiB)
    await push_paths(proxy.host, "net/502:v1", [path], chunk_size=64 * KiB, settings=settings())
    assert_landed(registry, "net/502", path)
    failed = [r for r in proxy.requests if r.status == 502]
    assert len(failed) >= 3
    # Each 502 cost exactly its own chunk: re-sent bytes = one chunk per 502.
    assert patch_bytes(proxy) == 640 * KiB + 64 * KiB * len(failed)


async def test_ghcr_style_416_above_a_maximum(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, fault_proxy
) -> None:
    """GHCR answers 416 to sized PATCH bodies above 4 MiB (a streamed one, as docker sends,
    passes): where Hoist sends sized chunks, it shrinks them and remembers."""
    proxy = fault_proxy(registry)
    proxy.respond_instead(
        match("PATCH", min_content_length=4096 * KiB), 416, {"Content-Type": "application/json"},
        b'{"errors":[{"code":"REQUESTED_RANGE_NOT_SATISFIABLE","message":"the chunk size '
        b'exceeds the maximum permissible limit"}]}',
        times=None, before_body=False,
    )  # fmt: skip
    path = make_file(tmp_path / "a.bin", 12 * 1024 * KiB)
    await push_paths(
        proxy.host, "net/416:v1", [path], chunk_size=8192 * KiB,
        settings=settings(proxy.host, streamed=False),
    )  # fmt: skip
    assert_landed(registry, "net/416", path)
    assert ProfileStore().get(proxy.host).max_chunk == 4096 * KiB
    assert [r.status for r in proxy.requests if r.method == "PATCH"].count(416) == 1


async def test_registry_without_chunked_upload_gets_one_put(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, fault_proxy
) -> None:
    """Google Artifact Registry takes no PATCH: fall back to one streamed PUT, and remember."""
    proxy = fault_proxy(registry)
    proxy.respond_instead(
        match("PATCH"), 405, {"Content-Type": "application/json"},
        b'{"errors":[{"code":"UNSUPPORTED","message":"chunked upload is not supported"}]}',
        times=None, before_body=False,
    )  # fmt: skip
    path = make_file(tmp_path / "a.bin", 300 * KiB)
    await push_paths(
        proxy.host, "net/gar:v1", [path], chunk_size=64 * KiB, settings=settings(proxy.host)
    )
    assert_landed(registry, "net/gar", path)
    assert ProfileStore().get(proxy.host).chunked is False
    puts = [r for r in proxy.requests if r.method == "PUT" and (r.content_length or 0) > 0]
    assert any(r.content_length == 300 * KiB for r in puts)


def test_profile_command_shows_and_resets(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    config = state_dir.parent / "config"
    env = {"HOIST_CONFIG_DIR": str(config), "HOIST_STATE_DIR": str(state_dir)}
    ProfileStore(config / "profiles.json").update("ghcr.io", max_chunk=4 * 1024 * KiB)
    shown = hoist_cli("profile", env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["ghcr.io"]["max_chunk"] == 4194304
    hoist_cli("profile", "ghcr.io", "--limit-rate", "20MiB/s", env=env)
    assert ProfileStore(config / "profiles.json").get("ghcr.io").limit_rate == 20 * 1024 * KiB
    assert hoist_cli("profile", "--reset", env=env).returncode == 0
    assert json.loads(hoist_cli("profile", env=env).stdout) == {}


async def test_ten_megabyte_error_body_is_read_no_further_than_64_kib() -> None:
    sent = {"bytes": 0}

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(160):
            sent["bytes"] += 65536
            yield b"<p>" + b"x" * 65530 + b"</p>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=body(), headers={"Content-Type": "text/html"})

    async with RegistryClient("reg.example", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RegistryError) as info:
            await client.ping()
    assert len(info.value.message) < 300
    assert sent["bytes"] <= 2 * 65536


async def test_rate_cap_change_wakes_waiting_uploads() -> None:
    """A new cap applies to transfers already waiting, not after their old wait ends."""
    import asyncio

    limiter = BandwidthLimiter(1 * KiB)
    waiter = asyncio.ensure_future(limiter.take(1024 * KiB))  # a 1 MiB block at 1 KiB/s: 1000 s
    await asyncio.sleep(0.05)
    assert not waiter.done()
    limiter.rate = 0  # "no limit", set from the window while the upload waits
    await asyncio.wait_for(waiter, timeout=2)
    limiter.rate = 1024 * 1024 * KiB  # 1 GiB/s: the old debt is repaid in a millisecond
    await asyncio.wait_for(limiter.take(KiB), timeout=2)


# The JSON progress stream's documented schema (README "Progress as JSON").
BLOB_KEYS = {"event": str, "transfer": str, "blob": str, "state": str, "sent": int,
             "acknowledged": int, "total": int, "rate": (float, int, type(None)),
             "eta": (float, int, type(None)), "message": str, "retry_in": (int, float, type(None)),
             "resent": int}  # fmt: skip
TRANSFER_KEYS = {"event": str, "transfer": str, "state": str, "message": str,
                 "result": (str, type(None))}  # fmt: skip
BLOB_STATES = {s.value for s in BlobState}


def test_json_progress_matches_its_schema(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "a.bin", 300 * KiB)
    result = hoist_cli(
        "push", f"{registry.host}/net/json:v1", str(path), "--chunk-size", "64KiB",
        "--progress", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert events
    for event in events:
        schema = BLOB_KEYS if event["event"] == "blob" else TRANSFER_KEYS
        assert set(event) == set(schema), event
        for key, kind in schema.items():
            assert isinstance(event[key], kind), (key, event)
        if event["event"] == "blob":
            assert event["state"] in BLOB_STATES
            assert 0 <= event["acknowledged"] <= event["total"]
    acks = [e["acknowledged"] for e in events if e["event"] == "blob" and e["blob"] == "a.bin"]
    assert acks == sorted(acks)  # acknowledged bytes never go backwards
    assert events[-1] == {**events[-1], "event": "transfer", "state": "done"}


async def test_a_push_keeps_its_connections(
    registry: RegistryProcess, state_dir: Path, tmp_path: Path, fault_proxy
) -> None:
    """One connection for small requests, one for blob bodies: on an HTTPS registry every new
    connection is a TLS handshake, so they are kept alive across the push's requests."""
    proxy = fault_proxy(registry)
    paths = [make_file(tmp_path / f"f{i}.bin", 200 * KiB, seed=i) for i in range(3)]
    await push_paths(proxy.host, "net/keepalive:v1", paths, chunk_size=64 * KiB)
    requests = len(proxy.requests)
    assert requests > 20
    # The plain-HTTP probe, then the API client and the file-body sender (a few spare ones
    # where requests overlap): far fewer than one connection per request.
    assert proxy.connections <= 5, (proxy.connections, requests)
