"""When to try again, and how long to wait: capped exponential backoff with full jitter."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from hoist.core.errors import HoistError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How an upload waits out temporary trouble.

    Args:
        first: the first wait, in seconds.
        cap: no wait is longer than this.
        give_up_after: seconds without any progress after which the error is raised; None
            retries for as long as the user lets it run (the window's default: a laptop that
            loses Wi-Fi overnight resumes in the morning).
    """

    first: float = 0.5
    cap: float = 30.0
    give_up_after: float | None = 600.0

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """The wait before retry number `attempt` (1-based); `Retry-After` wins when given."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), max(self.cap, 300.0))
        ceiling = min(self.cap, self.first * (2 ** (attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)


async def retry_temporary(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    wait: Callable[[float, HoistError], Awaitable[None]] | None = None,
    first_error: HoistError | None = None,
    progress: Callable[[], int] | None = None,
) -> T:
    """Call until it works, waiting out temporary errors (network, 408, 429, 5xx).

    The one place that decides what is retried: only errors whose `temporary` is true; others
    are raised at once, and so is the last error once the policy's `give_up_after` would be
    passed. `wait(seconds, error)` does the waiting (a countdown shown to the user), plain sleep
    by default; `first_error` starts with a wait, for a call made after something failed.
    `progress()`, when given, counts what the calls achieved (bytes received): a failed call
    that still made progress starts the backoff and the give-up clock afresh.
    """
    started = time.monotonic()
    attempt = 0
    error = first_error
    done = progress() if progress is not None else 0
    while True:
        if error is not None:
            if progress is not None and progress() > done:
                done, attempt, started = progress(), 0, time.monotonic()
            attempt += 1
            delay = policy.delay(attempt, getattr(error, "retry_after", None))
            waited = time.monotonic() - started + delay
            if policy.give_up_after is not None and waited > policy.give_up_after:
                raise error
            await (wait(delay, error) if wait is not None else asyncio.sleep(delay))
        try:
            return await call()
        except HoistError as exc:
            if not exc.temporary:
                raise
            error = exc
