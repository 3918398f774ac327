"""The LLM tier's pure parts (no event loop, no I/O): prompt and JSON schema, response parsing,
prices and cost, the daily budget, token buckets and rate-limit headers, the circuit breaker.

Everything here takes the time as an argument or an injectable clock, so it is tested
deterministically; the async wrapper around the ``openai`` client that uses these pieces lives
in :mod:`sentiflow.llm` (it needs an event loop, which ``models/`` must not).
"""

from sentiflow.models.llm.breaker import BreakerState, CircuitBreaker
from sentiflow.models.llm.budget import BudgetRefusal, DailyBudget, Reservation
from sentiflow.models.llm.errors import InvalidLLMResponseError, LLMError
from sentiflow.models.llm.parsing import AspectVerdict, LLMVerdict, parse_verdicts
from sentiflow.models.llm.pricing import ModelPricing, cost_usd
from sentiflow.models.llm.prompt import (
    LLM_LABELS,
    LLMPost,
    build_messages,
    estimate_prompt_tokens,
    max_completion_tokens,
    response_format,
)
from sentiflow.models.llm.ratelimit import RateLimiter, TokenBucket, parse_duration, retry_after_s

__all__ = [
    "LLM_LABELS", "AspectVerdict", "BreakerState", "BudgetRefusal", "CircuitBreaker",
    "DailyBudget", "InvalidLLMResponseError", "LLMError", "LLMPost", "LLMVerdict",
    "ModelPricing", "RateLimiter", "Reservation", "TokenBucket", "build_messages", "cost_usd",
    "estimate_prompt_tokens", "max_completion_tokens", "parse_duration", "parse_verdicts",
    "response_format", "retry_after_s",
]
