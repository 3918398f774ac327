"""Client-side rate limits: token buckets for requests/min and tokens/min, plus what the server
says (429 ``Retry-After``, ``x-ratelimit-*`` headers).

Hand-written rather than aiolimiter: that one is asyncio-only (the escalators also run on
trio), has no notion of a server-imposed pause, and hides the "how long until" question the
escalator needs to batch posts while it waits. Pure arithmetic with an injectable clock; the
waiting itself is done by the caller (:mod:`sentiflow.llm.client`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str) -> float | None:
    """Seconds in an OpenAI reset header (``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``, or
    a bare number of seconds); None if it does not parse."""
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class TokenBucket:
    """``capacity`` tokens, refilled at ``per_second``; amounts above capacity are clamped (a
    single request larger than the bucket still goes, alone)."""

    def __init__(self, capacity: float, per_second: float, now: float) -> None:
        if capacity <= 0 or per_second <= 0:
            raise ValueError("capacity and per_second must be > 0")
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = capacity
        self._updated = now

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.per_second)
            self._updated = now

    def delay(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` tokens are available (0 = now)."""
        self._refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.tokens >= need else (need - self.tokens) / self.per_second

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.tokens -= min(amount, self.capacity)

    def limit_to(self, remaining: float, now: float) -> None:
        """The server says only ``remaining`` are left: never believe we have more."""
        self._refill(now)
        self.tokens = min(self.tokens, max(0.0, remaining))


class RateLimiter:
    """Requests/min and tokens/min buckets plus a server-imposed pause (429, exhausted
    ``x-ratelimit-remaining-*``). Bursts are capped at ``burst_s`` seconds of the rate."""

    def __init__(self, requests_per_minute: float, tokens_per_minute: float, *,
                 burst_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        rps, tps = requests_per_minute / 60, tokens_per_minute / 60
        self.requests = TokenBucket(max(1.0, rps * burst_s), rps, now)
        # Token bursts: a few seconds' worth, at least one large request.
        self.tokens = TokenBucket(max(tps * max(burst_s, 5.0), 1.0), tps, now)
        self.paused_until = 0.0

    def delay(self, tokens: int) -> float:
        """Seconds until one request of ``tokens`` tokens may start (0 = now)."""
        now = self._clock()
        return max(self.paused_until - now, self.requests.delay(1, now),
                   self.tokens.delay(tokens, now), 0.0)

    def take(self, tokens: int) -> None:
        now = self._clock()
        self.requests.take(1, now)
        self.tokens.take(tokens, now)

    def pause(self, seconds: float) -> None:
        """No request until ``seconds`` from now (e.g. a 429's Retry-After)."""
        if math.isfinite(seconds) and seconds > 0:
            self.paused_until = max(self.paused_until, self._clock() + seconds)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Follow the server's ``x-ratelimit-remaining-*`` / ``x-ratelimit-reset-*``."""
        lowered = {k.lower(): v for k, v in headers.items()}
        now = self._clock()
        for kind, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            raw = lowered.get(f"x-ratelimit-remaining-{kind}")
            if raw is None:
                continue
            try:
                remaining = float(raw)
            except ValueError:
                continue
            bucket.limit_to(remaining, now)
            if remaining <= 0:
                reset = parse_duration(lowered.get(f"x-ratelimit-reset-{kind}", ""))
                self.pause(reset if reset is not None else 1.0)
