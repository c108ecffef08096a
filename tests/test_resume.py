"""Pause and resume: in one process, across a SIGKILL of `hoist push`, after the registry lost
the session, with the file changed meanwhile; the journal's atomicity under SIGKILL; and
scripted registries (httpx.MockTransport) for answers distribution 2.8 can't be made to give.

Bytes are counted where they cross the FaultProxy: a resume must send what the registry lacks,
and no more.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults_helpers import (
    CHUNK,
    EMPTY_CONFIG_SIZE,
    RESTARTED,
    FakeRegistry,
    KiB,
    MiB,
    Recorder,
    acknowledged_at_least,
    journal_doc,
    layer_digest,
    make_file,
    messages,
    plan,
    push_fake,
    run_transfer,
    sha,
    upload_state,
    wait_until,
)
from pushing import ROOT, get_blob, hoist_cli
from support.proxy import ProxyFactory, RequestHead, html_error_page
from support.registry import RegistryProcess

from hoist.core.errors import FileChanged, HoistError, RegistryError, TransferPaused
from hoist.core.progress import Event
from hoist.core.registry.auth import Credentials
from hoist.core.transfer.journal import JOURNAL_VERSION, TransferJournal
from hoist.core.transfer.model import Push

SIZE = 10 * CHUNK + 1234  # 11 chunks, the last one short


def journal_file(journal: TransferJournal, transfer_id: str) -> tuple[str, dict[str, Any]]:
    path = journal.path(transfer_id)
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    return text, json.loads(text)


def blob_status(url: str, repo: str, digest: str, auth: tuple[str, str] | None = None) -> int:
    return httpx.head(f"{url}/v2/{repo}/blobs/{digest}", auth=auth).status_code


def manifest_digest(registry: RegistryProcess, repo: str) -> str:
    response = httpx.head(
        f"{registry.url}/v2/{repo}/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    return response.headers["Docker-Content-Digest"]


# -- pause and resume in one process ---------------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 10])
async def test_pause_and_resume_in_one_process(
    auth_registry: RegistryProcess,
    fault_proxy: ProxyFactory,
    state_dir: Path,
    tmp_path: Path,
    k: int,
) -> None:
    """Pause after k chunks: the journal holds the newest Location and the acknowledged bytes
    (and no credential); a new TransferRun from the journal sends only the rest."""
    assert auth_registry.credentials
    user, password = auth_registry.credentials
    credentials = Credentials(user, password)
    proxy = fault_proxy(auth_registry)
    recorder = Recorder(proxy)
    data = make_file(tmp_path / "paused.bin", SIZE, seed=k).read_bytes()
    repo = f"resume/pause-{k}"
    transfer = plan(proxy.host, f"{repo}:v1", tmp_path / "paused.bin")
    journal = TransferJournal()
    pause = asyncio.Event()
    acked = k * CHUNK

    with pytest.raises(TransferPaused):
        await run_transfer(
            transfer, pause=pause, journal=journal, credentials=credentials,
            on_event=acknowledged_at_least(acked, pause.set),
        )  # fmt: skip

    assert len(recorder.requests("PATCH")) == k  # stopped at the chunk boundary
    text, doc = journal_file(journal, transfer.id)
    assert doc["state"] == "paused" and doc["version"] == JOURNAL_VERSION
    (blob,) = doc["blobs"]
    assert blob["acknowledged"] == acked
    assert blob["prefix_digest"] == sha(data[:acked])
    assert upload_state(blob["location"])["Offset"] == acked  # the newest Location
    for secret in (password, base64.b64encode(f"{user}:{password}".encode()).decode()):
        assert secret not in text
    assert "authorization" not in text.lower()
    status = httpx.get(blob["location"], auth=(user, password))
    assert status.status_code == 204 and status.headers["Range"] == f"0-{acked - 1}"

    recorder.reset()
    events: list[Event] = []
    resumed = Push.from_json(journal.load(transfer.id))
    digest = await run_transfer(resumed, journal=journal, credentials=credentials, events=events)

    assert digest.startswith("sha256:")
    assert recorder.patch_starts()[0] == acked
    assert recorder.patch_bytes() == SIZE - acked
    assert recorder.blob_bytes_up() == SIZE - acked + EMPTY_CONFIG_SIZE
    assert [s.content_length for s in recorder.requests("POST")] == [0]  # only the config's
    (record,) = resumed.blobs
    assert record.digest == sha(data) and record.restarts == 0
    assert layer_digest(auth_registry.url, repo, "v1", (user, password)) == sha(data)
    assert get_blob(auth_registry.url, repo, sha(data), (user, password)) == data
    _, done = journal_file(journal, transfer.id)
    assert done["state"] == "done" and done["blobs"][0]["location"] is None
    assert not any(RESTARTED in m for m in messages(events))


@pytest.mark.parametrize("change", ["grown", "prefix rewritten", "tail rewritten"])
async def test_file_changed_while_paused(
    registry: RegistryProcess,
    fault_proxy: ProxyFactory,
    state_dir: Path,
    tmp_path: Path,
    change: str,
) -> None:
    """A change Hoist can see (size, or the acknowledged prefix even with mtime put back) stops
    the resume with FileChanged and a sentence, and nothing is committed. A change it can't see
    (the unsent tail, mtime put back) is pushed as the file now is: the digest still names
    exactly the bytes the registry holds."""
    proxy = fault_proxy(registry)
    path = make_file(tmp_path / "changing.bin", SIZE, seed=21)
    old = path.read_bytes()
    repo = f"resume/changed-{change.split()[0]}"
    transfer = plan(proxy.host, f"{repo}:v1", path)
    journal = TransferJournal()
    pause = asyncio.Event()
    with pytest.raises(TransferPaused):
        await run_transfer(
            transfer, pause=pause, journal=journal,
            on_event=acknowledged_at_least(4 * CHUNK, pause.set),
        )  # fmt: skip

    before = path.stat()
    if change == "grown":
        with open(path, "ab") as f:
            f.write(b"more")
    else:
        at = 1000 if change == "prefix rewritten" else 8 * CHUNK
        with open(path, "r+b") as f:
            f.seek(at)
            f.write(bytes(b ^ 0xFF for b in old[at : at + 100]))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    new = path.read_bytes()
    resumed = Push.from_json(journal.load(transfer.id))

    if change == "tail rewritten":
        await run_transfer(resumed, journal=journal)
        assert resumed.blobs[0].digest == sha(new)
        assert get_blob(registry.url, repo, sha(new)) == new
        assert layer_digest(registry.url, repo, "v1") == sha(new)
        return

    with pytest.raises(FileChanged) as info:
        await run_transfer(resumed, journal=journal)
    sentence = info.value.sentence()
    assert str(path) in sentence and "restart this transfer" in sentence
    assert ("changed size" if change == "grown" else "was modified") in sentence
    _, doc = journal_file(journal, transfer.id)
    assert doc["state"] == "failed" and doc["error"] == sentence
    for digest in (sha(old), sha(new)):
        assert blob_status(registry.url, repo, digest) == 404
    assert httpx.head(f"{registry.url}/v2/{repo}/manifests/v1").status_code == 404

    # Pushing the file anew works and gives the new content.
    fresh = plan(proxy.host, f"{repo}:v2", path)
    await run_transfer(fresh)
    assert get_blob(registry.url, repo, sha(new)) == new


async def test_session_purged_while_paused_restarts_the_blob(
    fresh_registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """The registry restarted without `http.secret` while paused: the saved session is gone
    (BLOB_UPLOAD_INVALID/UNKNOWN), so the blob starts again in a new session, and says so."""
    registry = fresh_registry
    proxy = fault_proxy(registry)
    recorder = Recorder(proxy)
    data = make_file(tmp_path / "purged.bin", SIZE, seed=31).read_bytes()
    transfer = plan(proxy.host, "resume/purged:v1", tmp_path / "purged.bin")
    journal = TransferJournal()
    pause = asyncio.Event()
    with pytest.raises(TransferPaused):
        await run_transfer(
            transfer, pause=pause, journal=journal,
            on_event=acknowledged_at_least(3 * CHUNK, pause.set),
        )  # fmt: skip
    registry.restart()

    recorder.reset()
    events: list[Event] = []
    resumed = Push.from_json(journal.load(transfer.id))
    await run_transfer(resumed, journal=journal, events=events)

    said = messages(events)
    assert any("no longer has the upload session" in m and RESTARTED in m for m in said), said
    assert recorder.patch_starts()[0] == 0
    assert recorder.patch_bytes() == SIZE
    (record,) = resumed.blobs
    assert record.restarts == 1 and record.digest == sha(data)
    assert get_blob(registry.url, "resume/purged", sha(data)) == data
    _, doc = journal_file(journal, transfer.id)
    assert doc["state"] == "done" and doc["blobs"][0]["restarts"] == 1


# -- `hoist push` killed with SIGKILL, `hoist resume --all` in a new process ------------------


def spawn_push(ref: str, path: Path, chunk: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "hoist.core", "push", ref, str(path), "--chunk-size", chunk,
             "--plain-http", "--progress", "json"],
            cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


def read_journal(state_dir: Path) -> dict[str, Any] | None:
    files = list((state_dir / "transfers").glob("*.json"))
    if not files:
        return None
    (path,) = files
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def check_after_kill(state_dir: Path) -> dict[str, Any]:
    """The journal after a SIGKILL: one file, 0600, valid JSON, no temp file mistaken for one."""
    (path,) = (state_dir / "transfers").glob("*.json")
    assert path.stat().st_mode & 0o777 == 0o600
    doc: dict[str, Any] = json.loads(path.read_text())
    assert TransferJournal(state_dir / "transfers").ids() == [doc["id"]]
    return doc


def test_cli_sigkill_mid_upload_then_resume_all(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """`hoist push` is SIGKILLed after 12 acknowledged chunks while it waits out 503s on the
    13th (so no partial chunk reaches distribution 2.8, which would drop the session); `hoist
    resume --all` in a new process sends exactly what the registry lacks."""
    proxy = fault_proxy(registry)
    size, held = 4 * MiB + 777, 12
    path = make_file(tmp_path / "killed.bin", size, seed=41)
    count = 0

    def after_held(req: RequestHead) -> bool:
        nonlocal count
        if req.method != "PATCH":
            return False
        count += 1
        return count > held

    proxy.respond_instead(
        after_held, 503, {"Content-Type": "text/html"}, html_error_page(503), times=None
    )
    proc = spawn_push(f"{proxy.host}/resume/sigkill:v1", path, "64KiB", tmp_path / "push.log")
    try:
        wait_until(
            lambda: any(r.status == 503 for r in proxy.requests) or proc.poll() is not None,
            60, "the 13th PATCH",
        )  # fmt: skip
        doc = read_journal(state_dir)
        assert doc is not None and doc["blobs"][0]["acknowledged"] == held * CHUNK
        assert proc.poll() is None, (tmp_path / "push.log").read_text()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    doc = check_after_kill(state_dir)
    (blob,) = doc["blobs"]
    acked = blob["acknowledged"]
    assert acked == held * CHUNK and doc["state"] == "running"
    assert upload_state(blob["location"])["Offset"] == acked
    assert blob["prefix_digest"] == sha(path.read_bytes()[:acked])
    listing = hoist_cli("transfers", "--json")
    assert listing.returncode == 0, listing.stderr
    assert [(t["done"], t["total"], t["state"]) for t in json.loads(listing.stdout)] == [
        (acked, size, "interrupted")  # its Hoist was killed: nobody owns it (issue 15)
    ]

    proxy.clear_faults()
    recorder = Recorder(proxy)
    recorder.reset()
    result = hoist_cli("resume", "--all", "--progress", "json")
    assert result.returncode == 0, result.stderr
    digest = manifest_digest(registry, "resume/sigkill")
    assert result.stdout.strip() == f"{proxy.host}/resume/sigkill@{digest}"
    assert recorder.patch_starts()[0] == acked
    assert recorder.patch_bytes() == size - acked
    assert size - acked <= recorder.blob_bytes_up() - EMPTY_CONFIG_SIZE <= size - acked + CHUNK
    assert layer_digest(registry.url, "resume/sigkill", "v1") == sha(path.read_bytes())
    assert get_blob(registry.url, "resume/sigkill", sha(path.read_bytes())) == path.read_bytes()
    assert RESTARTED not in result.stderr
    assert read_journal(state_dir) is None  # done: the CLI forgets it


def test_cli_sigkill_at_a_random_moment(
    registry: RegistryProcess, fault_proxy: ProxyFactory, state_dir: Path, tmp_path: Path
) -> None:
    """SIGKILL while bytes flow. On distribution 2.8 the outcome depends on the instant: between
    chunks the session resumes (only the rest is sent); inside a PATCH, or between a 202 and
    its journal write, the registry holds more than the journal says and drops the session,
    so the blob restarts (and says so). Either way the blob ends up right."""
    proxy = fault_proxy(registry)
    size = 16 * MiB
    path = make_file(tmp_path / "random.bin", size, seed=51)
    proc = spawn_push(f"{proxy.host}/resume/random:v1", path, "256KiB", tmp_path / "push.log")
    try:
        wait_until(
            lambda: (
                (doc := read_journal(state_dir)) is not None
                and doc["blobs"][0]["acknowledged"] > 0
            )
            or proc.poll() is not None,
            60, "a first acknowledged chunk",
        )  # fmt: skip
        time.sleep(random.uniform(0, 0.05))
        assert proc.poll() is None, "the push finished before it could be killed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    doc = check_after_kill(state_dir)
    acked = doc["blobs"][0]["acknowledged"]
    assert 0 < acked < size and acked % (256 * KiB) == 0
    recorder = Recorder(proxy)
    recorder.reset()
    result = hoist_cli("resume", "--all", "--progress", "json")
    assert result.returncode == 0, result.stderr
    if RESTARTED in result.stderr:
        assert recorder.patch_bytes() == size
    else:
        assert recorder.patch_starts()[0] == acked
        assert recorder.patch_bytes() == size - acked
    assert get_blob(registry.url, "resume/random", sha(path.read_bytes())) == path.read_bytes()


# -- the journal under SIGKILL --------------------------------------------------------------

WRITER = """
import sys
sys.path.insert(0, "tests")
from pathlib import Path
from hoist.core.transfer.journal import TransferJournal
from faults_helpers import journal_doc

journal = TransferJournal(Path(sys.argv[1]))
seq = int(sys.argv[2])
journal.save("t", journal_doc(seq))
print("writing", flush=True)
while True:
    seq += 1
    journal.save("t", journal_doc(seq))
"""


def test_journal_is_whole_after_sigkill_at_random_moments(tmp_path: Path) -> None:
    """A process saving the journal in a tight loop, killed ~20 times at random instants: the
    file is always valid JSON of exactly one version, never older than the last one seen."""
    root = tmp_path / "transfers"
    journal = TransferJournal(root)
    seen = 0
    rng = random.Random(7)
    for _ in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(seen + 1)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"writing\n", proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
        doc = journal.load("t")  # raises JournalError on a torn file
        seq = doc["seq"]
        assert doc == {"version": JOURNAL_VERSION, **journal_doc(seq)}
        assert seq > seen
        seen = seq
        assert journal.path("t").stat().st_mode & 0o777 == 0o600
        assert journal.ids() == ["t"]


# -- scripted registries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "keep"),
    [
        (2, 10_000),  # the 3rd chunk was cut after 10,000 bytes the registry kept
        (2, CHUNK),  # the 3rd chunk arrived whole, its 202 was lost
        (5, 999),  # the last (short) chunk arrived whole: nothing left but the commit
        (0, 1),  # one byte of the first chunk: `Range: 0-0` can't tell it from none
    ],
)
async def test_registry_keeping_partial_chunks(
    state_dir: Path, tmp_path: Path, cut: int, keep: int
) -> None:
    """A registry that keeps what it received of a broken PATCH (distribution 3.x, GitLab)
    reports it at GET with a fresh Location: Hoist continues from there, and the digest that
    the registry verifies at PUT is right."""
    size = 5 * CHUNK + 999
    data = make_file(tmp_path / "partial.bin", size, seed=cut + keep).read_bytes()
    fake = FakeRegistry(cut_patch={cut: keep})
    events: list[Event] = []

    transfer = await push_fake(fake, tmp_path / "partial.bin", events=events)

    assert fake.blobs[sha(data)] == data
    assert transfer.blobs[0].digest == sha(data)
    held = cut * CHUNK + keep
    starts = fake.patch_starts()
    sent = sum(e.body for e in fake.log if e.method == "PATCH")
    assert starts[: cut + 1] == [i * CHUNK for i in range(cut + 1)]
    if held == 1:
        # The registry holds one byte and says `0-0`, as it does for none: only a new session
        # can settle it. At most one more copy of the blob is sent.
        assert sent <= 2 * size
        return
    assert starts[cut + 1 :] == list(range(held, size, CHUNK))  # on from what it kept
    refused = [e for e in fake.log if "/uploads/" in e.url.path and (e.status or 0) >= 400]
    assert refused == []  # no 416, no stale Location, no DIGEST_INVALID
    assert sent == size + (min(CHUNK, size - cut * CHUNK) - keep)
    assert transfer.blobs[0].restarts == 0
    assert not any(RESTARTED in m for m in messages(events))


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "ftp://registry.test/upload", "data:,hello"],
)
async def test_unusable_upload_location_is_refused(
    state_dir: Path, tmp_path: Path, location: str
) -> None:
    make_file(tmp_path / "x.bin", 3 * CHUNK, seed=61)
    fake = FakeRegistry(upload_location=location)
    with pytest.raises(RegistryError) as info:
        await push_fake(fake, tmp_path / "x.bin")
    assert "unusable upload location" in info.value.sentence()
    assert {e.url.host for e in fake.log} == {"registry.test"}
    assert not [e for e in fake.log if e.method in ("PATCH", "PUT")]


async def test_upload_location_on_another_host_gets_no_credentials(
    state_dir: Path, tmp_path: Path
) -> None:
    """Uploads served by another host (object storage): the bytes go there, the registry's
    credentials never do."""
    data = make_file(tmp_path / "x.bin", 3 * CHUNK + 5, seed=62).read_bytes()
    fake = FakeRegistry(basic=("hoist", "pw-secret"), upload_host="uploads.elsewhere.test")
    await push_fake(fake, tmp_path / "x.bin", credentials=Credentials("hoist", "pw-secret"))
    assert fake.blobs[sha(data)] == data
    elsewhere = [e for e in fake.log if e.url.host == "uploads.elsewhere.test"]
    assert {e.method for e in elsewhere} == {"PATCH", "PUT"}
    assert not [e for e in elsewhere if "Authorization" in e.headers]
    home = [e for e in fake.log if e.url.host == "registry.test" and e.status != 401]
    assert home and all("Authorization" in e.headers for e in home)


@pytest.mark.parametrize(
    "junk", ["garbage", "bytes 0-100", "5-10", "0-", "-1", "0-12abc", "0-99999999"]
)
async def test_junk_range_after_a_cut(state_dir: Path, tmp_path: Path, junk: str) -> None:
    """After a cut, GET answers a `Range` that means nothing (or more than was ever sent):
    Hoist must not fail the push over it nor commit a wrong blob."""
    size = 5 * CHUNK + 999
    data = make_file(tmp_path / "junk.bin", size, seed=71).read_bytes()
    fake = FakeRegistry(cut_patch={2: 0}, status_range=lambda held: junk)
    events: list[Event] = []
    try:
        await push_fake(fake, tmp_path / "junk.bin", events=events)
    except HoistError as exc:
        pytest.fail(f"the push failed: {exc.sentence()} (after {messages(events)})")
    assert fake.blobs[sha(data)] == data
