"""Progress as plain events, and an honest rate estimator.

The engine never talks to a UI: it emits `BlobEvent` values (as go-containerregistry's
`v1.Update`) to whoever listens, the CLI's bar, the JSON stream, or the GUI's model.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class BlobState(StrEnum):
    PENDING = "pending"
    HASHING = "hashing"  # re-hashing the prefix before a resume
    UPLOADING = "uploading"
    DOWNLOADING = "downloading"
    WAITING = "waiting"  # for the network, or a rate limit: see `retry_in`
    FINALIZING = "finalizing"  # the registry is committing the blob
    DONE = "done"
    EXISTS = "exists"  # already in the registry
    MOUNTED = "mounted"  # mounted from another repository
    PAUSED = "paused"
    FAILED = "failed"


@dataclass(frozen=True)
class BlobEvent:
    """One observation of one blob's upload.

    `sent` counts bytes handed to the network (including re-sent ones); `acknowledged` counts
    bytes the registry confirmed holding: bars show the latter, so they never lie.
    """

    transfer: str
    blob: str  # the blob's name in its transfer (a file title, a layer's digest, a part)
    state: BlobState
    sent: int
    acknowledged: int
    total: int
    rate: float | None = None
    eta: float | None = None
    message: str = ""
    retry_in: float | None = None
    resent: int = 0
    elapsed: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "event": "blob",
            "transfer": self.transfer,
            "blob": self.blob,
            "state": self.state.value,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "total": self.total,
            "rate": None if self.rate is None else round(self.rate, 1),
            "eta": None if self.eta is None else round(self.eta, 1),
            "message": self.message,
            "retry_in": self.retry_in,
            "resent": self.resent,
        }


@dataclass(frozen=True)
class TransferEvent:
    """A transfer changed state (started, paused, done with `result`, failed with `message`)."""

    transfer: str
    state: str
    message: str = ""
    result: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "event": "transfer",
            "transfer": self.transfer,
            "state": self.state,
            "message": self.message,
            "result": self.result,
        }


Event = BlobEvent | TransferEvent
ProgressCallback = Callable[[Event], None]


@dataclass
class RateEstimator:
    """Bytes per second over a rolling window of `window` seconds.

    Feed it a count of bytes SENT in this run (not an offset that includes what a resumed
    upload had before: that would count the resumed part as if just sent), and `reset` it
    when a run starts.

    A rolling window (not an instant rate, not an average since the start) keeps the ETA from
    jumping with every chunk and still follows a real change of speed within the window. A
    stall shows as a falling rate, not a frozen one.
    """

    window: float = 20.0
    clock: Callable[[], float] = time.monotonic
    _samples: deque[tuple[float, int]] = field(default_factory=deque)

    def reset(self) -> None:
        """Forget every sample (a new run: what was sent before a pause says nothing now)."""
        self._samples.clear()

    def add(self, total_bytes: int, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if self._samples and total_bytes < self._samples[-1][1]:
            # The count went backwards (a blob restarted): history says nothing about now.
            self._samples.clear()
        self._samples.append((now, total_bytes))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self, now: float | None = None) -> float | None:
        now = self.clock() if now is None else now
        if len(self._samples) < 2:
            return None
        t0, b0 = self._samples[0]
        _, b1 = self._samples[-1]
        span = now - t0
        if span <= 0.2:
            return None
        return (b1 - b0) / span

    def eta(self, remaining: int, now: float | None = None) -> float | None:
        r = self.rate(now)
        if r is None or r <= 0:
            return None
        return remaining / r
