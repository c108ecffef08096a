"""Pure pieces of the engine: references, sizes, error decoding, hashing, rate estimation."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import httpx
import pytest

from hoist.core.errors import (
    InvalidReference,
    InvalidSize,
    UploadSessionLost,
    error_from_response,
    first_meaningful_line,
    parse_retry_after,
)
from hoist.core.oci.digest import SequentialHasher, hash_file_range
from hoist.core.oci.reference import is_loopback_host, parse_reference
from hoist.core.progress import RateEstimator
from hoist.core.registry.client import next_link, parse_range_end
from hoist.core.units import format_duration, format_size, parse_rate, parse_size

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("ubuntu", "docker.io", "library/ubuntu", None, None),
        ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None),
        ("user/repo", "docker.io", "user/repo", None, None),
        ("index.docker.io/user/repo:v1", "docker.io", "user/repo", "v1", None),
        ("localhost/repo", "localhost", "repo", None, None),
        ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", None),
        ("127.0.0.1:5000/models/llama:v1", "127.0.0.1:5000", "models/llama", "v1", None),
        ("ghcr.io/org/img@sha256:" + "a" * 64, "ghcr.io", "org/img", None, "sha256:" + "a" * 64),
        ("ghcr.io/org/img:t@sha256:" + "b" * 64, "ghcr.io", "org/img", "t", "sha256:" + "b" * 64),
        ("[::1]:5000/repo", "[::1]:5000", "repo", None, None),
        ("example.com/a__b/c-d/e.f", "example.com", "a__b/c-d/e.f", None, None),
    ],
)
def test_parse_reference(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


def test_docker_hub_api_host_and_round_trip() -> None:
    ref = parse_reference("alpine:3")
    assert ref.api_host == "registry-1.docker.io"
    assert str(ref) == "docker.io/library/alpine:3"
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        " repo",
        "Repo/UPPER",  # a first component with capitals is a host; "UPPER" is not a valid path
        "localhost:5000/repo:bad tag",
        "localhost:5000/re__-po",
        "localhost:5000/repo:" + "t" * 129,
        "localhost:5000/repo@sha256:short",
        "https://ghcr.io/a/b",
        "localhost:5000/",
        "localhost:5000/-repo",
    ],
)
def test_bad_references_say_why(text: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert info.value.hint  # tells the person how to write one
    assert "repository" in info.value.sentence() or "reference" in info.value.sentence()


def test_loopback_hosts() -> None:
    assert is_loopback_host("localhost:5000")
    assert is_loopback_host("127.0.0.1:1234")
    assert is_loopback_host("[::1]:5000")
    assert not is_loopback_host("ghcr.io")
    assert not is_loopback_host("10.0.0.1:5000")


@pytest.mark.parametrize(
    ("text", "value"),
    [("16MiB", 16 << 20), ("1GiB", 1 << 30), ("500KiB", 500 << 10), ("1048576", 1 << 20),
     ("1.5GiB", 3 << 29), ("2 MB", 2_000_000), (4096, 4096)],
)  # fmt: skip
def test_parse_size(text: str | int, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "ten", "5 parsecs", "-1MiB", "1..2GiB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(InvalidSize):
        parse_size(text)


def test_rates_and_formatting() -> None:
    assert parse_rate("20MiB/s") == 20 << 20
    assert parse_rate("500KiB/s") == 500 << 10
    assert format_size(1536) == "1.5 KiB"
    assert format_size(3 << 30) == "3 GiB"
    assert format_duration(3725) == "1h 02m"
    assert format_duration(None) == "—"


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("PATCH", "http://r.example/v2/a/blobs/uploads/x?_state=secret")
    return httpx.Response(status, content=body, headers=headers, request=request)


def test_registry_error_json() -> None:
    body = b'{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}'
    err = error_from_response(_response(404, body), body, what="upload chunk")
    assert isinstance(err, UploadSessionLost)
    assert err.code == "BLOB_UPLOAD_INVALID" and err.status == 404
    assert "BLOB_UPLOAD_INVALID" in err.sentence()
    assert "_state" not in err.url  # the upload state never ends up in an error message


def test_registry_error_html_page_gives_its_title() -> None:
    page = b"<html><head><title>413 Request Entity Too Large</title></head><body>" + b"x" * 5000
    err = error_from_response(_response(413, page), page)
    assert "413 Request Entity Too Large" in err.message
    assert "<" not in err.message and len(err.message) < 300
    assert err.temporary is False


def test_registry_error_text_429_with_retry_after() -> None:
    body = b"Too Many Requests\n"
    err = error_from_response(_response(429, body, {"Retry-After": "7"}), body)
    assert err.temporary and err.retry_after == 7.0
    assert "Too Many Requests" in err.message


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert first_meaningful_line("\n\n  <p>  hello   there </p>") == "hello there"


def test_range_header_parsing() -> None:
    assert parse_range_end("0-99") == 100
    assert parse_range_end("bytes=0-99") == 100
    assert parse_range_end("0-0") == 0  # "nothing yet": Hoist never sends a 1-byte first chunk
    assert parse_range_end("garbage") == 0
    assert parse_range_end("5-9") == 0
    assert parse_range_end(None) == 0


def test_link_header() -> None:
    base = httpx.URL("http://r.example/v2/_catalog?n=2")
    link = '</v2/_catalog?last=b&n=2>; rel="next"'
    assert next_link(link, base) == httpx.URL("http://r.example/v2/_catalog?last=b&n=2")
    assert next_link(None, base) is None


def test_sequential_hasher_ignores_resent_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    h = SequentialHasher()
    h.update(0, data[:1000])
    h.update(500, data[500:3000])  # overlaps: only the new part counts
    h.update(0, data[:3000])  # a whole re-send: nothing new
    h.update(3000, data[3000:])
    assert h.digest() == "sha256:" + hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError):
        SequentialHasher().update(10, b"gap")
    path = tmp_path / "f"
    path.write_bytes(data)
    assert hash_file_range(path, 100, 1000).digest() == (
        "sha256:" + hashlib.sha256(data[100:1100]).hexdigest()
    )


def test_prefix_digest_does_not_finish_the_hash() -> None:
    h = SequentialHasher()
    h.update(0, b"abc")
    assert h.prefix_digest() == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    h.update(3, b"def")
    assert h.digest() == "sha256:" + hashlib.sha256(b"abcdef").hexdigest()


def test_rate_estimator_steady_stalled_and_restart() -> None:
    est = RateEstimator(window=20.0)
    for t in range(0, 31):  # steady 10 MB/s
        est.add(t * 10_000_000, now=float(t))
    assert est.rate(now=30.0) == pytest.approx(10_000_000, rel=0.01)
    assert est.eta(100_000_000, now=30.0) == pytest.approx(10.0, rel=0.01)
    for t in range(31, 41):  # stalled for ten seconds: the rate falls, it doesn't freeze
        est.add(300_000_000, now=float(t))
    stalled = est.rate(now=40.0)
    assert stalled is not None and stalled < 6_000_000
    est.add(0, now=41.0)  # a restart from zero clears the history
    assert est.rate(now=41.0) is None


def test_core_never_imports_qt() -> None:
    """The engine must run without Qt (CLI, tests, headless servers)."""
    for path in (ROOT / "core").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("PySide6", "qasync", "gui")), f"{path}: {name}"


def test_journal_sweeps_temp_files_a_killed_write_left(tmp_path: Path) -> None:
    import os
    import time

    from hoist.core.transfer.journal import TransferJournal

    root = tmp_path / "transfers"
    root.mkdir()
    stale = root / ".t1.json.abc123.tmp"
    fresh = root / ".t2.json.def456.tmp"  # a write in flight in another process
    for path in (stale, fresh):
        path.write_text("{")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    journal = TransferJournal(root)
    journal.save("t3", {"id": "t3"})
    assert not stale.exists() and fresh.exists()
    assert journal.ids() == ["t3"]
    assert (root / "t3.json").stat().st_mode & 0o777 == 0o600


def test_a_lost_session_is_never_temporary() -> None:
    """Even answered with a 5xx, a lost session is started again, not waited for."""
    body = b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown"}]}'
    err = error_from_response(_response(503, body), body)
    assert isinstance(err, UploadSessionLost) and not err.temporary


async def test_retry_gives_up_only_after_a_stretch_without_progress() -> None:
    """With `progress`, a call that keeps failing but gets further each time is retried past
    `give_up_after` (a slow, flaky download); one that makes no progress is given up on."""
    from hoist.core.errors import NetworkError
    from hoist.core.retry import RetryPolicy, retry_temporary

    policy = RetryPolicy(first=0.01, cap=0.01, give_up_after=0.05)
    received = 0
    calls = 0

    async def flaky() -> str:
        nonlocal received, calls
        calls += 1
        if calls < 20:
            received += 1  # got a little further, then the connection dropped
            raise NetworkError("reset")
        return "whole"

    assert await retry_temporary(flaky, policy, progress=lambda: received) == "whole"
    assert calls == 20  # 19 waits of ≥ 5 ms: well past give_up_after without the resets

    async def stuck() -> str:
        raise NetworkError("reset")

    with pytest.raises(NetworkError):
        await retry_temporary(stuck, policy, progress=lambda: received)
