"""A process-wide upload rate cap, shared by every transfer, changeable while they run.

A token bucket that may go into debt: a reader takes a whole block (1 MiB) and waits until the
debt is paid. The average rate is exact over time whatever the block size, and a
new rate applies to the very next block (well within a second at any rate above 1 MiB/s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

#: Something a sender awaits before each block of `n` bytes (a rate cap's `take`).
Throttle = Callable[[int], Awaitable[None]]


class BandwidthLimiter:
    """Caps the bytes per second of everything that awaits `take()`.

    Args:
        rate: bytes per second; 0 means no limit.
        burst: seconds of credit that idle time may build up (kept small so a cap is a cap).
    """

    def __init__(
        self, rate: int = 0, *, burst: float = 0.25, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self.burst = burst
        self.clock = clock
        self._credit = 0.0
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()

    @property
    def rate(self) -> int:
        return self._rate

    @rate.setter
    def rate(self, value: int) -> None:
        self._refill()
        self._rate = max(0, int(value))
        self._credit = min(self._credit, self._rate * self.burst)
        self._changed.set()

    def _refill(self) -> None:
        now = self.clock()
        if self._rate:
            self._credit = min(
                self._credit + (now - self._stamp) * self._rate, self._rate * self.burst
            )
        self._stamp = now

    async def take(self, n: int) -> None:
        """Wait until `n` more bytes may be sent.

        The block is paid for first and sent when the debt is cleared, so even a short capped
        run (a dozen 1 MiB blocks at 1 MiB/s) keeps to the cap instead of getting one block free.
        """
        if not self._rate:
            return
        async with self._lock:
            self._refill()
            self._credit -= n
            while self._rate and self._credit < 0:
                wait = -self._credit / self._rate
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout=min(wait, 1.0))
                except TimeoutError:
                    pass
                self._refill()


def all_limits(*throttles: Throttle | None) -> Throttle | None:
    """One throttle that keeps to every given cap (the window's, a transfer's own, a host's):
    a block goes once each of them lets it, so the lowest cap wins."""
    chosen = [t for t in throttles if t is not None]
    if len(chosen) <= 1:
        return chosen[0] if chosen else None

    async def take(n: int) -> None:
        for throttle in chosen:
            await throttle(n)

    return take
