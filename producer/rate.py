"""A token bucket holding a records-per-second rate, with an injectable clock for tests."""

from __future__ import annotations

import time
from collections.abc import Callable

# How much unused rate may be saved up: enough to absorb the pause of one PutRecords round trip
# without falling behind, small enough that the rate over any second stays close to the target.
BURST_SECONDS = 0.2


class RateLimiter:
    """`wait_time()` says how long until the next record may go; `take()` spends one token.

    The caller does the sleeping (so it can flush a batch first, or stop on Ctrl-C); `rate=None`
    means no limit.
    """

    def __init__(
        self, *, rate: float | None, clock: Callable[[], float] = time.monotonic, burst_seconds=BURST_SECONDS
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self._clock = clock
        self._capacity = max(1.0, (rate or 0) * burst_seconds)
        self._tokens = 1.0  # the first record goes at once; no burst at start
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        if self.rate is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def wait_time(self) -> float:
        if self.rate is None:
            return 0.0
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def take(self) -> None:
        """Spend a token; call only after `wait_time()` returned 0 (or after sleeping that long)."""
        if self.rate is None:
            return
        self._refill()
        self._tokens -= 1.0
