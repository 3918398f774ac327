"""Error types of the LLM tier's pure layer."""

from __future__ import annotations

from sentiflow.models.llm.pricing import TokenUsage


class LLMError(RuntimeError):
    """Base of the LLM tier's errors. ``reason`` is the short code recorded on a result that
    kept its fast-tier label because of this error (``review_reason``)."""

    reason = "llm_failed"


class InvalidLLMResponseError(LLMError):
    """The completion did not parse, missed a post, or used a label outside the label set."""

    reason = "llm_invalid_response"


class NotACompletionError(InvalidLLMResponseError):
    """The body is not a chat completion at all (not JSON, no usable ``choices``). ``usage``:
    what the body says the server billed anyway, when it says so (the tier counts it)."""

    def __init__(self, message: str, *, usage: TokenUsage | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class BudgetExhaustedError(LLMError):
    """The day's budget is spent (or the next call would pass it): no LLM until 00:00 UTC.
    (The alert fires once per day, where the budget runs out, not per refusal.)"""

    reason = "llm_budget"


class ShareCapError(LLMError):
    """Escalating more would pass the day's escalation share cap."""

    reason = "llm_share_cap"


class CircuitOpenError(LLMError):
    """The circuit breaker is open: the endpoint failed repeatedly; no call is tried."""

    reason = "llm_unavailable"


class LLMServerError(LLMError):
    """5xx, timeout or connection failure (retried; a failure for the breaker)."""

    reason = "llm_failed"


class LLMRateLimitedError(LLMError):
    """429 on every attempt (the tier is saturated; the breaker does not count it)."""

    reason = "llm_rate_limited"


class LLMRequestError(LLMError):
    """The server refused the request itself (4xx other than 429: bad key, unknown model):
    not retried, a failure for the breaker."""

    reason = "llm_failed"
