"""API keys (constant-time check, open when none configured) and the per-key token bucket."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from sentiflow.api.security import (
    ANONYMOUS,
    ApiKeyChecker,
    InvalidAPIKeyError,
    TokenBucketLimiter,
    extract_api_key,
    key_id,
)
from sentiflow.config.settings import load_settings


def test_no_keys_configured_means_open() -> None:
    checker = ApiKeyChecker.from_settings(load_settings(None, {}).api)
    assert not checker.enabled
    assert checker.authenticate(None) == ANONYMOUS
    assert checker.authenticate("anything") == ANONYMOUS


def test_configured_keys_are_required_and_identified() -> None:
    checker = ApiKeyChecker([SecretStr("alpha-key-1"), "beta-key-22"])
    assert checker.authenticate("alpha-key-1") == key_id("alpha-key-1")
    assert checker.authenticate("beta-key-22") == key_id("beta-key-22")
    assert key_id("alpha-key-1") != key_id("beta-key-22")
    assert "alpha" not in key_id("alpha-key-1")
    for wrong in (None, "", "alpha-key-", "alpha-key-12", "ALPHA-KEY-1", "\ud800"):
        with pytest.raises(InvalidAPIKeyError):
            checker.authenticate(wrong)


def test_keys_are_read_from_either_header() -> None:
    assert extract_api_key(httpx.Headers({"authorization": "Bearer  k1 "})) == "k1"
    assert extract_api_key(httpx.Headers({"X-Api-Key": "k2"})) == "k2"
    assert extract_api_key(httpx.Headers({"Authorization": "Basic abc", "x-api-key": "k3"})) \
        == "k3"
    assert extract_api_key(httpx.Headers({"Authorization": "Bearer "})) is None
    assert extract_api_key(httpx.Headers({})) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refuses_with_retry_after() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.acquire("a")
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.5)
    assert refused.retry_after_header == "1"
    assert limiter.acquire("b").allowed  # buckets are per key
    clock.now += 0.5
    assert limiter.acquire("a").allowed  # refilled one token
    assert not limiter.acquire("a").allowed
    clock.now += 100
    assert [limiter.acquire("a").allowed for _ in range(4)] == [True, True, True, False]


def test_sustained_rate_matches_configuration() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=10.0, burst=5, clock=clock)
    allowed = 0
    for _ in range(1000):  # 10 s of requests every 10 ms
        allowed += limiter.acquire("k").allowed
        clock.now += 0.01
    assert 100 <= allowed <= 106  # 10/s for 10 s, plus the initial burst


def test_rate_zero_disables_limiting_and_memory_is_bounded() -> None:
    off = TokenBucketLimiter(rate=0, burst=1)
    assert not off.enabled
    assert all(off.acquire("k").allowed for _ in range(1000))
    bounded = TokenBucketLimiter(rate=1, burst=1, max_keys=10)
    for i in range(100):
        bounded.acquire(f"k{i}")
    assert len(bounded._buckets) == 10
    with pytest.raises(ValueError, match="burst"):
        TokenBucketLimiter(rate=1, burst=0)
