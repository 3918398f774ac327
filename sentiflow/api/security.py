"""Who may call the API and how often: API keys and a per-key token-bucket rate limit.

Also re-exports the webhook SSRF guard (:mod:`sentiflow.delivery.ssrf`) so the API can refuse a
bad ``webhook_url`` at submission time, before a batch is queued.

* Keys come from ``api.api_keys``; with none configured the API is open. A request presents its
  key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The comparison is constant-time
  and always runs against every configured key, so timing reveals neither a key nor which one
  matched.
* Each key gets a token bucket (``api.rate_limit_per_second`` refill, ``api.rate_limit_burst``
  capacity). The limiter never waits: an empty bucket answers "no, retry in N s" so the API
  replies 429 with ``Retry-After`` at once. Written here rather than taken from a library because
  ``aiolimiter`` waits instead of refusing and ``limits``' async storage is asyncio-only, while
  this is a dozen lines of pure, backend-neutral arithmetic.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from sentiflow.config.settings import ApiSettings
from sentiflow.delivery.ssrf import SsrfPolicy, WebhookURLRefusedError, check_webhook_url

ANONYMOUS = "anonymous"


def key_id(key: str) -> str:
    """A stable, non-secret name for a key (for rate-limit buckets, logs and metrics)."""
    return "key-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def extract_api_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents (``Authorization: Bearer`` first, then ``X-API-Key``).

    ``headers`` must be case-insensitive (Quart's and httpx's header objects are).
    """
    auth = headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = headers.get("X-API-Key")
    return api_key.strip() if api_key and api_key.strip() else None


class InvalidAPIKeyError(PermissionError):
    """Keys are configured and the request has none, or a wrong one (-> 401)."""

    code = "unauthorized"


class ApiKeyChecker:
    def __init__(self, keys: Sequence[SecretStr | str]) -> None:
        raw = [k.get_secret_value() if isinstance(k, SecretStr) else k for k in keys]
        self._keys = [(k.encode("utf-8"), key_id(k)) for k in raw]

    @classmethod
    def from_settings(cls, api: ApiSettings) -> ApiKeyChecker:
        return cls(api.api_keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def authenticate(self, presented: str | None) -> str:
        """The caller's identity: the matching key's :func:`key_id`, or ``"anonymous"`` when
        no keys are configured. Raises :class:`InvalidAPIKeyError` otherwise."""
        if not self._keys:
            return ANONYMOUS
        if presented is None:
            raise InvalidAPIKeyError("missing API key (send 'Authorization: Bearer <key>')")
        candidate = presented.encode("utf-8", "surrogatepass")
        match: str | None = None
        for key, ident in self._keys:  # no early exit: constant time in the number of keys
            if hmac.compare_digest(candidate, key):
                match = ident
        if match is None:
            raise InvalidAPIKeyError("invalid API key")
        return match


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    #: Seconds until one token is available (0 when allowed).
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


class TokenBucketLimiter:
    """Per-key token buckets: ``rate`` tokens/s refill up to ``burst``; one request = one token.

    Not thread-safe and not meant to be: it lives on the event loop (no awaits inside). Keys are
    authenticated before they reach the limiter, so there are few; still, past ``max_keys``
    the least recently used bucket is dropped (that key starts full again) to bound memory.
    """

    def __init__(self, rate: float, burst: int, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, t)

    @classmethod
    def from_settings(cls, api: ApiSettings) -> TokenBucketLimiter:
        return cls(api.rate_limit_per_second, api.rate_limit_burst)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str, cost: float = 1.0) -> RateDecision:
        if not self.enabled:
            return RateDecision(True)
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= cost:
            decision = RateDecision(True)
            tokens -= cost
        else:
            decision = RateDecision(False, (cost - tokens) / self.rate)
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return decision


__all__ = [
    "ANONYMOUS",
    "ApiKeyChecker",
    "InvalidAPIKeyError",
    "RateDecision",
    "SsrfPolicy",
    "TokenBucketLimiter",
    "WebhookURLRefusedError",
    "check_webhook_url",
    "extract_api_key",
    "key_id",
]
