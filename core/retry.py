"""When to try again, and how long to wait: capped exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


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
