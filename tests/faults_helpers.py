"""Helpers shared by the fault and resume tests.

- `Recorder` watches every request head that crosses a FaultProxy and arms one-shot cuts at a
  precise place in a chosen request ("after 20,000 bytes of the 4th PATCH's body"), so bytes
  re-sent can be measured exactly.
- `push_through` runs the real engine (TransferRun) through the proxy.
- `FakeRegistry` is a scripted registry on `httpx.MockTransport`, for answers the real one can't
  be made to give (a registry that keeps partial chunks, hostile Locations, junk `Range`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from support.proxy import FaultProxy, RequestHead

from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, Event
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient
from hoist.core.retry import RetryPolicy
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import Transfer
from hoist.core.transfer.push import TransferRun, plan_file_push
from hoist.core.transfer.upload import UploadSettings

KiB = 1024
MiB = 1024 * KiB
CHUNK = 64 * KiB
EMPTY_CONFIG_SIZE = 2  # `{}`: the artifact's config blob
RESTARTED = "starting this blob again from the beginning"


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    """Deterministic incompressible bytes."""
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fast_settings(chunk: int = CHUNK) -> UploadSettings:
    """Short waits, so a test that retries runs in a second, not a minute."""
    return UploadSettings(
        chunk_size=chunk, retry=RetryPolicy(first=0.05, cap=0.2, give_up_after=30)
    )


def upload_state(location: str) -> dict[str, Any]:
    """distribution's `_state` query parameter: base64url(HMAC-SHA256 (32 bytes) + JSON)."""
    value = httpx.URL(location).params["_state"]
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    doc: dict[str, Any] = json.loads(raw[32:])
    return doc


def journal_doc(seq: int) -> dict[str, Any]:
    """Version `seq` of a transfer document that grows and shrinks (journal kill tests)."""
    return {
        "id": "t",
        "seq": seq,
        "blobs": [
            {"name": f"part{n}", "acknowledged": seq * CHUNK + n, "location": "L" * (seq % 997)}
            for n in range(1 + seq % 40)
        ],
    }


def messages(events: list[Event]) -> list[str]:
    return [e.message for e in events if isinstance(e, BlobEvent) and e.message]


def acknowledged_at_least(n: int, then: Callable[[], None]) -> Callable[[Event], None]:
    """An on_event callback calling `then()` once, when a blob's acknowledged bytes reach n."""
    fired = False

    def on_event(event: Event) -> None:
        nonlocal fired
        if not fired and isinstance(event, BlobEvent) and event.acknowledged >= n:
            fired = True
            then()

    return on_event


# -- watching what crosses the proxy ---------------------------------------------------------


@dataclass
class Seen:
    """One request head the proxy parsed."""

    method: str
    target: str
    content_length: int | None
    head: int
    content_range: str | None = None
    sent: int | None = None  # bytes of it (head and body) forwarded, when a cut stopped it
    at: float = field(default_factory=time.monotonic)
    request: RequestHead | None = None  # counts a streamed (chunked) body as it is forwarded

    @property
    def streamed(self) -> bool:
        return self.request is not None and self.request.chunked


class Recorder:
    """Sees every request head crossing `proxy`, in the proxy's thread.

    It hooks in as the matcher of a rule that never fires (FaultProxy calls matchers for each
    request head, before forwarding it). `proxy.clear_faults()` removes it.
    """

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.seen: list[Seen] = []
        self._arms: list[tuple[Callable[[RequestHead], bool], Callable[[RequestHead], None]]] = []
        proxy.respond_instead(self._matcher, 599, times=None)

    def _matcher(self, req: RequestHead) -> bool:
        range_ = req.header("Content-Range")
        self.seen.append(
            Seen(req.method, req.target, req.content_length, len(req.raw), range_, request=req)
        )
        for arm in list(self._arms):
            predicate, action = arm
            if predicate(req):
                self._arms.remove(arm)
                action(req)
        return False

    def when(
        self, method: str, nth: int, action: Callable[[RequestHead], None], path: str = ""
    ) -> None:
        """Run `action(head)` when the nth request with this method (and path part) arrives."""
        count = 0

        def predicate(req: RequestHead) -> bool:
            nonlocal count
            if req.method != method or path not in req.target:
                return False
            count += 1
            return count == nth

        self._arms.append((predicate, action))

    def cut_in(self, method: str, nth: int, body: int, path: str = "") -> None:
        """Reset both sides after `body` bytes of the nth such request's body reached the
        upstream (negative: inside its head, that many bytes before the body)."""

        def cut(req: RequestHead) -> None:
            if req.chunked and body >= 0:
                req.cut_at_payload = body  # counted in bytes of the blob (proxy.py)
                return
            keep = len(req.raw) + body
            self.seen[-1].sent = keep  # the matcher recorded this request just before
            self.proxy.cut_after_upstream_bytes(keep)

        self.when(method, nth, cut, path)

    def reset(self) -> None:
        """Zero the proxy's counters and forget what was seen (armed faults stay)."""
        self.proxy.reset_counters()
        self.seen.clear()

    @staticmethod
    def body_sent(seen: Seen) -> int:
        if seen.streamed:
            assert seen.request is not None
            return seen.request.payload  # what went, however it ended (or was cut)
        if seen.sent is None:
            return seen.content_length or 0
        return max(0, seen.sent - seen.head)

    def patch_bytes(self) -> int:
        """PATCH body bytes forwarded upstream."""
        return sum(self.body_sent(s) for s in self.requests("PATCH"))

    def patch_starts(self) -> list[int]:
        """Where each PATCH began: its Content-Range, or (a streamed one) its `_state`."""
        return [
            int(upload_state(s.target)["Offset"])
            if s.streamed
            else int((s.content_range or "-").partition("-")[0])
            for s in self.requests("PATCH")
        ]

    def timeline(self) -> str:
        """What crossed the proxy, for assertion messages."""
        if not self.seen:
            return "(nothing)"
        t0 = self.seen[0].at
        lines = [
            f"{s.at - t0:8.3f}s {s.method} {s.target[:70]} len={s.content_length} "
            f"range={s.content_range}"
            for s in self.seen
        ]
        lines += [f"{r.method} {r.path[:70]} -> {r.status}" for r in self.proxy.requests]
        return "\n".join(lines + self.proxy.events)

    def requests(self, method: str, path: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == method and path in s.target]

    def payload_up(self) -> int:
        """Body bytes (not heads) the proxy forwarded upstream."""
        heads = sum(s.head if s.sent is None else min(s.head, s.sent) for s in self.seen)
        framing = sum(s.request.framing for s in self.seen if s.request is not None)
        return self.proxy.bytes_up - heads - framing

    def blob_bytes_up(self) -> int:
        """Body bytes forwarded for blob uploads (PATCH/PUT bodies; manifests left out)."""
        manifests = sum(
            self.body_sent(s) for s in self.seen if s.method == "PUT" and "/manifests/" in s.target
        )
        return self.payload_up() - manifests


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (in a test without an event loop) until `predicate()`, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


# -- running the engine --------------------------------------------------------------------


def plan(host: str, repo_tag: str, path: Path, chunk: int = CHUNK) -> Transfer:
    return plan_file_push(parse_reference(f"{host}/{repo_tag}"), [path], chunk_size=chunk)


async def run_transfer(
    transfer: Transfer,
    *,
    events: list[Event] | None = None,
    on_event: Callable[[Event], None] | None = None,
    pause: asyncio.Event | None = None,
    journal: TransferJournal | None = None,
    credentials: Credentials | None = None,
    settings: UploadSettings | None = None,
) -> str:
    """Run (or resume) a transfer with a new client, over plain HTTP."""
    sink = events if events is not None else []

    def listen(event: Event) -> None:
        sink.append(event)
        if on_event is not None:
            on_event(event)

    async with RegistryClient(
        transfer.target.api_host, credentials=credentials, plain_http=True
    ) as client:
        run = TransferRun(
            transfer, client, journal=journal, pause=pause, on_event=listen,
            settings=settings or fast_settings(transfer.chunk_size or CHUNK),
        )  # fmt: skip
        return await run.run()


def layer_digest(
    registry_url: str, repo: str, tag: str, auth: tuple[str, str] | None = None
) -> str:
    response = httpx.get(
        f"{registry_url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        auth=auth,
    )
    response.raise_for_status()
    (layer,) = response.json()["layers"]
    return str(layer["digest"])


# -- a scripted registry ---------------------------------------------------------------------


@dataclass
class Logged:
    method: str
    url: httpx.URL
    headers: httpx.Headers
    body: int
    status: int | None  # None: the fake broke the connection
    start: int | None = None  # a PATCH: where the session stood when it came


def _error(status: int, code: str, message: str = "") -> httpx.Response:
    doc = {"errors": [{"code": code, "message": message or code.lower(), "detail": None}]}
    return httpx.Response(status, json=doc)


@dataclass
class FakeRegistry:
    """A registry in memory, strict like distribution where it matters.

    It stores what each PATCH brings, answers `416` to a chunk that doesn't start where the
    session stands, issues a new Location on every answer and refuses a stale one (as 2.8's
    `_state` check does), and verifies the digest at PUT. Knobs (set before the push):

    - `cut_patch[n] = keep`: the nth PATCH (0-based) is read whole but only its first `keep`
      bytes are stored, then the connection "breaks" (a registry that keeps partial chunks).
    - `status_range`: the `Range` GET answers with, given what the session holds.
    - `upload_location`: replaces the Location given by POST (hostile registries).
    - `upload_host`: Locations name this host (uploads served elsewhere, as object storage).
    - `basic`: (user, password) the registry's own host requires.
    - `refuse_streamed`: the status answered to a streamed PATCH (no Content-Range), as a
      proxy or registry that takes only sized chunks; `streamed_range`: the `Range` a
      streamed PATCH's answer gives, from (bytes held, bytes of the request) (zot, ECR);
      `one_streamed_patch`: a second streamed PATCH on a session loses it (404
      BLOB_UPLOAD_UNKNOWN), as a registry that takes only one.
    A streamed PATCH is otherwise an append, as in distribution.
    """

    host: str = "registry.test"
    cut_patch: dict[int, int] = field(default_factory=dict)
    status_range: Callable[[int], str] | None = None
    upload_location: str | None = None
    upload_host: str | None = None
    basic: tuple[str, str] | None = None
    refuse_streamed: int | None = None
    streamed_range: Callable[[int, int], str] | None = None
    one_streamed_patch: bool = False
    streamed_seen: set[str] = field(default_factory=set)
    sessions: dict[str, bytearray] = field(default_factory=dict)
    current: dict[str, str] = field(default_factory=dict)  # session → its newest token
    blobs: dict[str, bytes] = field(default_factory=dict)
    log: list[Logged] = field(default_factory=list)
    patches: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, credentials: Credentials | None = None) -> RegistryClient:
        return RegistryClient(self.host, credentials=credentials, transport=self.transport())

    def _location(self, repo: str, session: str) -> str:
        token = uuid.uuid4().hex[:8]
        self.current[session] = token
        host = self.upload_host or self.host
        return f"https://{host}/v2/{repo}/blobs/uploads/{session}?_state={token}"

    @staticmethod
    def _range(held: int) -> str:
        return f"0-{max(held - 1, 0)}"

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        entry = Logged(request.method, request.url, request.headers, len(body), None)
        self.log.append(entry)
        response = self._answer(request, body)
        entry.status = response.status_code
        return response

    def _answer(self, request: httpx.Request, body: bytes) -> httpx.Response:
        url = request.url
        if self.basic and url.host == self.host:
            expected = Credentials(*self.basic).basic_header()
            if request.headers.get("Authorization") != expected:
                return httpx.Response(
                    401, headers={"WWW-Authenticate": 'Basic realm="fake"'}, json={"errors": []}
                )
        path = url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        if m := re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", path):
            if m.group(2) in self.blobs:
                size = str(len(self.blobs[m.group(2)]))
                return httpx.Response(200, headers={"Content-Length": size})
            return _error(404, "BLOB_UNKNOWN")
        if m := re.fullmatch(r"/v2/(.+)/blobs/uploads/", path):
            if request.method != "POST":
                return _error(405, "UNSUPPORTED")
            session = uuid.uuid4().hex
            self.sessions[session] = bytearray()
            location = self.upload_location or self._location(m.group(1), session)
            return httpx.Response(202, headers={"Location": location, "Range": "0-0"})
        if m := re.fullmatch(r"/v2/(.+)/blobs/uploads/([0-9a-f]+)", path):
            return self._session(request, m.group(1), m.group(2), body)
        if re.fullmatch(r"/v2/(.+)/manifests/(.+)", path) and request.method == "PUT":
            return httpx.Response(201, headers={"Docker-Content-Digest": sha(body)})
        return _error(404, "NAME_UNKNOWN")

    def _session(
        self, request: httpx.Request, repo: str, session: str, body: bytes
    ) -> httpx.Response:
        held = self.sessions.get(session)
        if held is None:
            return _error(404, "BLOB_UPLOAD_UNKNOWN")
        if request.url.params.get("_state") != self.current.get(session):
            del self.sessions[session]  # distribution 2.8 cancels the upload
            return _error(404, "BLOB_UPLOAD_INVALID", "stale upload state")
        if request.method == "GET":
            rng = self.status_range(len(held)) if self.status_range else self._range(len(held))
            return httpx.Response(
                204, headers={"Location": self._location(repo, session), "Range": rng}
            )
        if request.method == "PATCH":
            index, self.patches = self.patches, self.patches + 1
            self.log[-1].start = len(held)
            sized = request.headers.get("Content-Range")
            if sized is None and self.refuse_streamed:
                return _error(self.refuse_streamed, "SIZE_INVALID", "streamed bodies refused")
            if sized is None and self.one_streamed_patch:
                if session in self.streamed_seen:
                    del self.sessions[session]
                    return _error(404, "BLOB_UPLOAD_UNKNOWN", "one streamed PATCH only")
                self.streamed_seen.add(session)
            start = len(held) if sized is None else int(sized.partition("-")[0])
            if start != len(held):
                return httpx.Response(416)
            if index in self.cut_patch:
                held += body[: self.cut_patch[index]]
                raise httpx.ReadError("connection reset by peer (scripted)", request=request)
            held += body
            rng = self._range(len(held))
            if sized is None and self.streamed_range is not None:
                rng = self.streamed_range(len(held), len(body))
            return httpx.Response(
                202, headers={"Location": self._location(repo, session), "Range": rng}
            )
        if request.method == "PUT":
            held += body
            digest = request.url.params.get("digest", "")
            if sha(bytes(held)) != digest:
                return _error(400, "DIGEST_INVALID", f"holds {len(held)} bytes")
            self.blobs[digest] = bytes(held)
            del self.sessions[session]
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        return _error(405, "UNSUPPORTED")

    def patch_starts(self) -> list[int]:
        """Where each PATCH began: its Content-Range, or where the session stood (streamed)."""
        return [
            int(e.headers["Content-Range"].partition("-")[0])
            if "Content-Range" in e.headers
            else (e.start or 0)
            for e in self.log
            if e.method == "PATCH"
        ]


async def push_fake(
    fake: FakeRegistry,
    path: Path,
    *,
    chunk: int = CHUNK,
    repo_tag: str = "fake/repo:v1",
    events: list[Event] | None = None,
    credentials: Credentials | None = None,
) -> Transfer:
    transfer = plan_file_push(parse_reference(f"{fake.host}/{repo_tag}"), [path], chunk_size=chunk)
    async with fake.client(credentials) as client:
        run = TransferRun(
            transfer, client, settings=fast_settings(chunk),
            on_event=events.append if events is not None else None,
        )  # fmt: skip
        await run.run()
    return transfer
