"""Client-side rate limits: token buckets for requests/min and tokens/min, plus what the server
says (429 ``Retry-After``, ``x-ratelimit-*`` headers).

What a response's ``x-ratelimit-*`` headers do (:meth:`RateLimiter.observe_headers`):

* ``limit-*``: the bucket's rate never exceeds the advertised limit (per minute) nor the
  configured one, so when the server allows less than ``llm.requests_per_minute`` the tier paces
  itself to the server instead of learning it from 429s;
* ``remaining-*``: the bucket never believes it holds more than the server says, minus what was
  taken after that request was sent (requests still in flight, which the server may not have
  counted yet; conservative: some may be counted twice);
* ``reset-*`` at ``remaining == 0``: with no ``limit-*`` header the bucket cannot know how fast
  the server refills, so every caller pauses until the reset; with one, the (server-paced)
  bucket already waits for the next request's worth, and OpenAI's reset (the time until the
  whole window is back) would be far too long a pause.

Hand-written rather than aiolimiter: that one is asyncio-only (the escalators also run on
trio), has no notion of a server-imposed pause, and hides the "how long until" question the
escalator needs to batch posts while it waits. Pure arithmetic with an injectable clock; the
waiting itself is done by the caller (:mod:`sentiflow.llm.tier`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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

    def set_rate(self, per_second: float, capacity: float, now: float) -> None:
        """Refill at ``per_second`` from now on, holding at most ``capacity``."""
        if capacity <= 0 or per_second <= 0:
            raise ValueError("capacity and per_second must be > 0")
        self._refill(now)
        self.per_second = per_second
        self.capacity = capacity
        self.tokens = min(self.tokens, capacity)


@dataclass(frozen=True, slots=True)
class Sent:
    """What the limiter had handed out, in all, right after one request was taken: a later
    response's ``remaining`` is corrected by what was taken since."""

    requests: float
    tokens: float


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class RateLimiter:
    """Requests/min and tokens/min buckets plus a server-imposed pause (429, exhausted
    ``x-ratelimit-remaining-*``). Bursts are capped at ``burst_s`` seconds of the rate."""

    def __init__(self, requests_per_minute: float, tokens_per_minute: float, *,
                 burst_s: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._burst_s = burst_s
        now = clock()
        self._configured = {"requests": requests_per_minute / 60,
                            "tokens": tokens_per_minute / 60}
        self.requests = TokenBucket(*self._shape("requests", self._configured["requests"]), now)
        self.tokens = TokenBucket(*self._shape("tokens", self._configured["tokens"]), now)
        self.paused_until = 0.0
        self._taken = {"requests": 0.0, "tokens": 0.0}

    def _shape(self, kind: str, per_second: float) -> tuple[float, float]:
        """(capacity, per_second) of a bucket at this rate: ``burst_s`` of requests; a few
        seconds' worth of tokens, at least one large request."""
        if kind == "requests":
            return max(1.0, per_second * self._burst_s), per_second
        return max(per_second * max(self._burst_s, 5.0), 1.0), per_second

    def delay(self, tokens: int) -> float:
        """Seconds until one request of ``tokens`` tokens may start (0 = now)."""
        now = self._clock()
        return max(self.paused_until - now, self.requests.delay(1, now),
                   self.tokens.delay(tokens, now), 0.0)

    def take(self, tokens: int) -> Sent:
        """Take one request of ``tokens``; the mark to pass with its response's headers."""
        now = self._clock()
        self.requests.take(1, now)
        self.tokens.take(tokens, now)
        self._taken["requests"] += 1
        self._taken["tokens"] += tokens
        return Sent(self._taken["requests"], self._taken["tokens"])

    def pause(self, seconds: float) -> None:
        """No request until ``seconds`` from now (e.g. a 429's Retry-After)."""
        if math.isfinite(seconds) and seconds > 0:
            self.paused_until = max(self.paused_until, self._clock() + seconds)

    def observe_headers(self, headers: Mapping[str, str], sent: Sent | None = None) -> None:
        """Follow the server's ``x-ratelimit-limit-*`` / ``-remaining-*`` / ``-reset-*`` (see
        the module docstring); ``sent``: the mark :meth:`take` gave the request answered."""
        lowered = {k.lower(): v for k, v in headers.items()}
        now = self._clock()
        for kind, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            limit = _number(lowered.get(f"x-ratelimit-limit-{kind}"))
            if limit is not None and limit > 0:
                capacity, rate = self._shape(kind, min(self._configured[kind], limit / 60))
                if rate != bucket.per_second:
                    bucket.set_rate(rate, capacity, now)
            remaining = _number(lowered.get(f"x-ratelimit-remaining-{kind}"))
            if remaining is None:
                continue
            mark = self._taken[kind] if sent is None else (
                sent.requests if kind == "requests" else sent.tokens)
            bucket.limit_to(remaining - (self._taken[kind] - mark), now)
            if remaining <= 0 and (limit is None or limit <= 0):
                reset = parse_duration(lowered.get(f"x-ratelimit-reset-{kind}", ""))
                self.pause(reset if reset is not None else 1.0)
