"""A circuit breaker for the LLM endpoint, as a plain state machine with an injectable clock.

Hand-written (~50 lines) rather than pybreaker / aiobreaker: those wrap the call themselves and
are bound to threads or to asyncio, while the escalators run on anyio (asyncio and trio), need
the state without making a call (to route posts to review at once while open) and decide per
error whether it counts (a 429 is the rate limiter's business, not an outage).

CLOSED --(``failure_threshold`` consecutive failures)--> OPEN --(``reset_after_s``)-->
HALF_OPEN: one trial call; success -> CLOSED, failure -> OPEN again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failure_threshold: int, reset_after_s: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failure_threshold < 1 or reset_after_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_after_s > 0")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_out = False
        #: Times the breaker opened (a metric).
        self.opened = 0

    @property
    def state(self) -> BreakerState:
        if (self._state is BreakerState.OPEN
                and self._clock() - self._opened_at >= self.reset_after_s):
            self._state = BreakerState.HALF_OPEN
            self._trial_out = False
        return self._state

    def allow(self) -> bool:
        """May a call start now? In HALF_OPEN only one trial is let through at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._trial_out = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            if self._state is not BreakerState.OPEN:
                self.opened += 1
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._trial_out = False

    def record_neutral(self) -> None:
        """A call ended without telling whether the server is healthy (rate-limited): a
        half-open trial slot is given back."""
        self._trial_out = False
