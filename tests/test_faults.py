"""Real faults between Hoist and a real distribution 2.8 registry, through the FaultProxy.

Every test pushes a file of a few MiB in 64 KiB chunks and checks three things: the registry's
blob is the file (digest and bytes), what the engine said happened, and how many bytes crossed
the proxy more than once (`resent`: blob bytes forwarded upstream minus the file and the 2-byte
config). distribution 2.8 cancels a session whose `_state` offset disagrees with what it stored
(checked with 2.8.2), so any fault after which the registry holds more than the client knows costs
the blob's acknowledged prefix; a fault that leaves the two in agreement costs nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from faults_helpers import (
    CHUNK,
    EMPTY_CONFIG_SIZE,
    RESTARTED,
    MiB,
    Recorder,
    acknowledged_at_least,
    layer_digest,
    make_file,
    messages,
    plan,
    run_transfer,
    sha,
)
from pushing import get_blob
from support.proxy import ProxyFactory, RequestHead, match
from support.registry import RegistryFactory, RegistryProcess

from hoist.core.progress import Event
from hoist.core.registry.client import RegistryClient

SIZE = 2 * MiB + 12_345  # 33 chunks, the last one short
ACKED = 8  # chunks acknowledged before a mid-upload fault


def check_blob(registry: RegistryProcess, repo: str, data: bytes, digest: str) -> None:
    assert digest == sha(data)
    assert layer_digest(registry.url, repo, "v1") == digest
    assert get_blob(registry.url, repo, digest) == data


def resent(recorder: Recorder, size: int) -> int:
    return recorder.blob_bytes_up() - size - EMPTY_CONFIG_SIZE


#: (restarted, bytes re-sent) outcomes: a reset once the whole body is in may lose the race with
#: the registry's 202 (the client gets it before the reset: nothing lost), or win it.
LOST_202 = [(True, (ACKED + 1) * CHUNK), (False, 0)]


@pytest.mark.parametrize(
    ("method", "nth", "body", "path", "outcomes"),
    [
        # The POST's head is cut: the registry opened nothing; nothing is lost.
        pytest.param("POST", 1, -40, "/blobs/uploads/", [(False, 0)], id="in-the-post"),
        # 1,000 bytes of the first chunk were stored: the session dies, 1,000 bytes re-sent.
        pytest.param("PATCH", 1, 1000, "", [(True, 1000)], id="early-first-patch"),
        # Mid-chunk after 8 acknowledged chunks: the 8 chunks and the partial one again.
        pytest.param(
            "PATCH", ACKED + 1, 20_000, "", [(True, ACKED * CHUNK + 20_000)], id="mid-chunk"
        ),
        # The whole body reached the registry and it stored it; its 202 is (mostly) lost.
        pytest.param("PATCH", ACKED + 1, CHUNK, "", LOST_202, id="on-boundary"),
        # The commit's head is cut: the registry committed nothing; Hoist asks, then commits.
        pytest.param("PUT", 1, -20, "/blobs/uploads/", [(False, 0)], id="final-put"),
    ],
)
async def test_connection_reset(
    registry: RegistryProcess,
    fault_proxy: ProxyFactory,
    state_dir: Path,
    tmp_path: Path,
    method: str,
    nth: int,
    body: int,
    path: str,
    outcomes: list[tuple[bool, int]],
    send_path: str,
) -> None:
    """Each reset with the body sent both ways (tests/conftest.py: send_path): the file and
    repository differ per way, so the second push finds nothing of the first's."""
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    recorder.cut_in(method, nth, body, path)
    salt = 0 if send_path == "sendall" else 7919
    data = make_file(tmp_path / "big.bin", SIZE, seed=nth + body + salt).read_bytes()
    repo = f"faults/reset-{method.lower()}-{nth}-{abs(body)}-{send_path}"
    transfer = plan(proxy.host, f"{repo}:v1", tmp_path / "big.bin")
    events: list[Event] = []
    await run_transfer(transfer, events=events)
    assert any(e.startswith(f"cut {method}") for e in proxy.events), proxy.events
    (record,) = transfer.blobs
    assert record.digest is not None
    check_blob(registry, repo, data, record.digest)
    said = messages(events)
    restarted = any(RESTARTED in m for m in said)
    outcome = (restarted, resent(recorder, SIZE))
    assert outcome in outcomes, f"{said}\n{recorder.timeline()}"
    assert record.restarts == int(restarted)


async def test_lost_patch_answer_restarts_the_blob(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """The registry stored chunk 9 but its 202 never arrived: 2.8 drops the session (stored
    offset ≠ `_state`), so the blob starts again at 0 and the engine says so."""
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    count = 0

    def ninth_patch(req: RequestHead) -> bool:
        nonlocal count
        count += req.method == "PATCH"
        return req.method == "PATCH" and count == ACKED + 1

    proxy.swallow_response(ninth_patch)
    data = make_file(tmp_path / "big.bin", SIZE, seed=9).read_bytes()
    transfer = plan(proxy.host, "faults/lost-202:v1", tmp_path / "big.bin")
    events: list[Event] = []

    await run_transfer(transfer, events=events)

    (swallowed,) = [e for e in proxy.events if e.startswith("swallow")]
    assert swallowed.startswith("swallow PATCH") and swallowed.endswith("-> 202")
    (record,) = transfer.blobs
    assert record.digest is not None
    check_blob(registry, "faults/lost-202", data, record.digest)
    assert resent(recorder, SIZE) == (ACKED + 1) * CHUNK
    said = messages(events)
    assert any(RESTARTED in m and "BLOB_UPLOAD_INVALID" in m for m in said), said


async def test_lost_commit_answer_is_not_uploaded_again(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """The PUT committed the blob, the 201 was lost: Hoist HEADs, finds it, and stops."""
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    proxy.swallow_response(match("PUT", "/blobs/uploads/"))
    data = make_file(tmp_path / "big.bin", SIZE, seed=10).read_bytes()
    transfer = plan(proxy.host, "faults/lost-201:v1", tmp_path / "big.bin")
    events: list[Event] = []

    await run_transfer(transfer, events=events)

    (record,) = transfer.blobs
    digest = sha(data)
    assert record.digest == digest
    check_blob(registry, "faults/lost-201", data, digest)
    requests = proxy.requests
    swallowed = next(
        i for i, r in enumerate(requests) if r.method == "PUT" and "/blobs/uploads/" in r.path
    )
    assert requests[swallowed].status == 201  # the registry did commit
    after = requests[swallowed + 1 :]
    assert not [r for r in after if r.method == "PATCH"], after
    uploads = [r.content_length for r in after if r.method == "PUT" and "/uploads/" in r.path]
    assert uploads == [EMPTY_CONFIG_SIZE]  # only the config blob is uploaded after that
    assert any(r.method == "HEAD" and digest in r.path and r.status == 200 for r in after)
    assert resent(recorder, SIZE) == 0
    assert record.restarts == 0


@pytest.mark.parametrize("secret", [True, False], ids=["http_secret", "no_secret"])
async def test_registry_killed_and_restarted_mid_upload(
    registry_factory: RegistryFactory,
    fault_proxy: ProxyFactory,
    state_dir: Path,
    tmp_path: Path,
    secret: bool,
) -> None:
    """SIGKILL the registry after 8 acknowledged chunks, bring it back on the same storage.

    With `http.secret` its `_state` still verifies and the upload goes on from chunk 9; without,
    the restarted registry can't read the session's state and the blob starts again.
    """
    registry = registry_factory(http_secret="hoist-faults" if secret else None)
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    data = make_file(tmp_path / "big.bin", SIZE, seed=11).read_bytes()
    transfer = plan(proxy.host, "faults/killed:v1", tmp_path / "big.bin")
    events: list[Event] = []
    at_kill: list[int] = []
    back = threading.Event()

    def kill_and_restart() -> None:
        registry.kill()
        at_kill.append(recorder.blob_bytes_up())

        def restart() -> None:
            time.sleep(0.3)  # let Hoist meet the dead registry a few times
            registry.restart()
            back.set()

        threading.Thread(target=restart, daemon=True).start()

    await run_transfer(
        transfer, events=events, on_event=acknowledged_at_least(ACKED * CHUNK, kill_and_restart)
    )

    assert back.is_set() and at_kill == [ACKED * CHUNK]
    (record,) = transfer.blobs
    assert record.digest is not None
    check_blob(registry, "faults/killed", data, record.digest)
    after = recorder.blob_bytes_up() - at_kill[0] - EMPTY_CONFIG_SIZE
    said = messages(events)
    assert any("waiting for the network" in m for m in said), said
    if secret:
        assert SIZE - ACKED * CHUNK <= after <= SIZE - ACKED * CHUNK + CHUNK
        assert not any(RESTARTED in m for m in said), said
        assert record.restarts == 0
    else:
        assert SIZE <= after <= SIZE + CHUNK
        assert any(RESTARTED in m for m in said), said
        assert record.restarts == 1


async def test_loopback_registry_is_reached_over_http_promptly(
    registry: RegistryProcess, fault_proxy: ProxyFactory
) -> None:
    """A loopback registry with no scheme forced is spoken to over plain HTTP at once. (Probing
    TLS first stalled behind a peer that waits silently for a request line, like this proxy,
    for the 15 s connect timeout, then leaked a raw httpx.ConnectTimeout.)"""
    proxy = fault_proxy(registry)
    started = time.monotonic()
    async with RegistryClient(proxy.host) as client:
        await asyncio.wait_for(client.ping(), timeout=8)
        assert str(client.base_url).startswith("http://")
    assert time.monotonic() - started < 8


async def test_reset_during_the_manifest_put(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """The last request of a push, the manifest PUT, is cut: a blip at the very end must be
    waited out like any other, not fail the push after every byte got there."""
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    recorder.cut_in("PUT", 1, -30, "/manifests/")
    data = make_file(tmp_path / "big.bin", SIZE, seed=12).read_bytes()
    transfer = plan(proxy.host, "faults/manifest-cut:v1", tmp_path / "big.bin")

    await run_transfer(transfer)

    assert any(e.startswith("cut PUT") for e in proxy.events), proxy.events
    check_blob(registry, "faults/manifest-cut", data, sha(data))
    assert resent(recorder, SIZE) == 0


async def test_small_blob_survives_two_blips_in_a_row(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """A blob below one chunk goes in one PUT. Its PUT is cut, and so is the HEAD that asks
    whether the PUT got through: two blips within the retry window must not fail the push."""
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    recorder.cut_in("PUT", 1, 500, "/blobs/uploads/")
    recorder.cut_in("HEAD", 2, -10, "/blobs/")  # the 1st HEAD is the check before uploading
    data = make_file(tmp_path / "small.bin", 40_000, seed=13).read_bytes()
    transfer = plan(proxy.host, "faults/small-blips:v1", tmp_path / "small.bin")

    await run_transfer(transfer)

    assert [e.split()[:2] for e in proxy.events] == [["cut", "PUT"], ["cut", "HEAD"]]
    check_blob(registry, "faults/small-blips", data, sha(data))
    assert resent(recorder, len(data)) == 500
