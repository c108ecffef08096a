"""Progress on stderr: a bar on a terminal, a plain line every few seconds on a pipe, or JSON
lines with `--progress json` (the manifest reference alone goes to stdout)."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from hoist.core.progress import BlobEvent, BlobState, Event, TransferEvent
from hoist.core.transfer.model import Download, Transfer
from hoist.core.units import format_duration, format_rate, format_size

_WHOLE = (BlobState.DONE, BlobState.EXISTS, BlobState.MOUNTED)


class ProgressPrinter:
    """Renders engine events on stderr, in one of three styles.

    `bar` redraws one line (a terminal); `plain` prints a line every `interval` seconds (a pipe,
    CI logs); `json` prints each event as one JSON object per line (scripts; schema in README).
    """

    def __init__(self, style: str, stream: TextIO = sys.stderr, interval: float = 5.0) -> None:
        self.style = style
        self.stream = stream
        self.interval = interval
        self.blobs: dict[str, BlobEvent] = {}
        self._last = 0.0
        self._drawn = False

    def expect(self, transfer: Transfer) -> None:
        """Count every blob of `transfer` from the start: with several blobs at once, those not
        begun yet would otherwise be missing from the total, and the percentage would lie.
        What an earlier run left acknowledged counts as acknowledged."""
        if isinstance(transfer, Download):
            known = [(p.name, p.state, p.received, p.size) for p in transfer.parts]
        else:
            known = [(b.name, b.state, b.acknowledged, b.size) for b in transfer.blobs]
        for name, state, acknowledged, size in known:
            self.blobs.setdefault(
                name, BlobEvent(transfer.id, name, state, acknowledged, acknowledged, size)
            )

    def __call__(self, event: Event) -> None:
        if self.style == "json":
            print(json.dumps(event.to_json()), file=self.stream, flush=True)
            return
        if isinstance(event, TransferEvent):
            if event.message and event.state != "paused":  # the CLI says how to resume
                self._line(f"{event.state}: {event.message}")
            return
        previous = self.blobs.get(event.blob)
        self.blobs[event.blob] = event
        new_message = event.message and (previous is None or previous.message != event.message)
        countdown = previous is not None and BlobState.WAITING == event.state == previous.state
        if new_message and not countdown:
            self._line(f"{event.blob}: {event.message}")
        now = time.monotonic()
        if self.style == "bar" and now - self._last >= 0.1:
            self._last = now
            self._draw()
        elif self.style == "plain" and now - self._last >= self.interval:
            self._last = now
            self._line(self._summary())

    def _summary(self) -> str:
        total = sum(e.total for e in self.blobs.values())
        # A blob the registry already had (or mounted) counts as whole, not as 0 B.
        acked = sum(e.total if e.state in _WHOLE else e.acknowledged for e in self.blobs.values())
        moving = (BlobState.UPLOADING, BlobState.DOWNLOADING)
        rate = sum(e.rate or 0 for e in self.blobs.values() if e.state in moving)
        pct = 100.0 * acked / total if total else 100.0
        eta = (total - acked) / rate if rate > 0 else None
        states = {e.state for e in self.blobs.values()}
        state = next(
            (s.value for s in (BlobState.WAITING, BlobState.FINALIZING, BlobState.HASHING,
                               BlobState.UPLOADING, BlobState.DOWNLOADING) if s in states),
            "done",
        )  # fmt: skip
        resent = sum(e.resent for e in self.blobs.values())
        again = f" (re-sent {format_size(resent)})" if resent else ""
        speed = f" {format_rate(rate)} ETA {format_duration(eta)}" if rate > 0 else ""
        return f"{state} {format_size(acked)} / {format_size(total)} ({pct:.1f}%){speed}{again}"

    def _draw(self) -> None:
        total = sum(e.total for e in self.blobs.values()) or 1
        acked = sum(e.acknowledged for e in self.blobs.values())
        width = 30
        filled = int(width * acked / total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {self._summary()}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def note(self, text: str) -> None:
        """A line for the user in any style (JSON lines stay JSON)."""
        if self.style == "json":
            print(json.dumps({"event": "note", "message": text}), file=self.stream, flush=True)
        else:
            self._line(text)

    def _line(self, text: str) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        print(text, file=self.stream, flush=True)

    def finish(self) -> None:
        """The last word: a final bar, or a final plain line (CI logs end with the totals)."""
        if self.style == "bar" and self._drawn:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
        elif self.style == "plain" and self.blobs:
            self._line(self._summary())


def progress_style(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bar" if sys.stderr.isatty() else "plain"
