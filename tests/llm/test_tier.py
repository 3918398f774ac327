"""LLMTier against the fake OpenAI-compatible server with the real ``openai`` client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from sentiflow.config.settings import LLMSettings
from sentiflow.llm.tier import LLMTier
from sentiflow.models.llm import (
    BreakerState,
    LLMPost,
    build_messages,
    estimate_prompt_tokens,
    max_completion_tokens,
)
from sentiflow.models.llm.errors import (
    BudgetExhaustedError,
    CircuitOpenError,
    InvalidLLMResponseError,
    LLMRateLimitedError,
    LLMRequestError,
    LLMServerError,
)
from sentiflow.stores.records import LLMUsage
from tests.llm.fake_openai import FakeLLM, running_fake

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tiers() -> AsyncIterator[Callable[..., LLMTier]]:
    """Build tiers that are closed (their HTTP clients too) at the end of the test."""
    made: list[LLMTier] = []

    def make(settings: LLMSettings, **kwargs: Any) -> LLMTier:
        made.append(LLMTier(settings, **kwargs))
        return made[-1]

    yield make
    for tier in made:
        await tier.aclose()


def state(tier: LLMTier) -> BreakerState:
    """Read through a call: the state changes between asserts (mypy would narrow it)."""
    return tier.breaker.state


Make = Callable[..., LLMSettings]
Tiers = Callable[..., LLMTier]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


POSTS = [LLMPost("0", "I love it, great", "en"), LLMPost("1", "awful and bad", "en"),
         LLMPost("2", "it is a chair", "en")]


async def test_judges_several_posts_in_one_completion_and_counts_cost(
        tiers: Tiers, llm_settings: Make) -> None:
    async with running_fake() as fake:
        saved: list[LLMUsage] = []

        async def save(u: LLMUsage) -> None:
            saved.append(u)

        tier = tiers(llm_settings(fake.base_url), usage_writer=save)
        answer = await tier.judge(POSTS)
        assert {k: v.sentiment for k, v in answer.verdicts.items()} == {
            "0": "positive", "1": "negative", "2": "neutral"}
        assert fake.requests == 1
        assert answer.attempts == 1
        body = fake.bodies[0]
        assert body["model"] == "gpt-4o-mini"
        assert body["response_format"]["type"] == "json_schema"
        assert answer.prompt_tokens == fake.prompt_tokens
        assert answer.cost_usd == pytest.approx(
            (fake.prompt_tokens * 0.15 + fake.completion_tokens * 0.60) / 1e6)
        assert tier.budget.spent == pytest.approx(answer.cost_usd)
        await tier.save_usage()
        assert saved[0].cost_usd == pytest.approx(answer.cost_usd)
        assert saved[0].posts == 3
        aspects = await tier.judge_aspects("great food, awful service", ["food"])
        assert aspects[0].aspect == "food"


async def test_429_pauses_every_caller_for_retry_after_then_succeeds(
        tiers: Tiers, llm_settings: Make) -> None:
    async with running_fake(FakeLLM(retry_after_s=0.4)) as fake:
        fake.script.extend(["429"])
        tier = tiers(llm_settings(fake.base_url))
        started = time.perf_counter()
        answer = await tier.judge(POSTS)
        assert time.perf_counter() - started >= 0.38
        assert answer.attempts == 2
        assert tier.stats.rate_limited == 1
        assert state(tier) is BreakerState.CLOSED  # a 429 is not an outage


async def test_429_on_every_attempt_is_rate_limited_not_failed(
        tiers: Tiers, llm_settings: Make) -> None:
    async with running_fake(FakeLLM(retry_after_s=0.05)) as fake:
        fake.script.extend(["429"] * 3)
        tier = tiers(llm_settings(fake.base_url, max_attempts=3))
        with pytest.raises(LLMRateLimitedError):
            await tier.judge(POSTS)
        assert fake.requests == 3
        assert tier.budget.spent == 0
        assert tier.budget.reserved == 0


async def test_server_errors_are_retried(
        tiers: Tiers, llm_settings: Make) -> None:
    async with running_fake() as fake:
        fake.script.extend(["500", "500"])
        tier = tiers(llm_settings(fake.base_url, max_attempts=3))
        answer = await tier.judge(POSTS)
        assert answer.attempts == 3
        assert fake.requests == 3


@pytest.mark.parametrize("bad", ["malformed", "bad_label", "missing", "not_json"])
async def test_an_unusable_answer_is_retried_once_then_fails(
        tiers: Tiers, llm_settings: Make,
                                                             bad: str) -> None:
    async with running_fake() as fake:
        fake.script.extend([bad])
        tier = tiers(llm_settings(fake.base_url, max_attempts=5))
        assert (await tier.judge(POSTS)).attempts == 2
        fake.script.extend([bad, bad, "ok"])
        with pytest.raises(InvalidLLMResponseError):
            await tier.judge(POSTS)
        assert fake.requests == 4  # retried once, not max_attempts times


async def test_timeouts_and_4xx(
        tiers: Tiers, llm_settings: Make) -> None:
    async with running_fake(FakeLLM(slow_s=5.0)) as fake:
        fake.script.extend(["slow"])
        tier = tiers(llm_settings(fake.base_url, timeout_s=0.3, max_attempts=1))
        started = time.perf_counter()
        with pytest.raises(LLMServerError):
            await tier.judge(POSTS)
        assert time.perf_counter() - started < 2.0
        wrong = tiers(llm_settings(fake.base_url.replace("/v1", "/nope"), max_attempts=3))
        with pytest.raises(LLMRequestError):
            await wrong.judge(POSTS)


async def test_breaker_opens_on_repeated_failures_and_closes_after_a_good_trial(
        tiers: Tiers, llm_settings: Make) -> None:
    async with running_fake() as fake:
        tier = tiers(llm_settings(fake.base_url, breaker_failures=3, max_attempts=1,
                                    breaker_reset_s=0.3))
        fake.script.extend(["500"] * 3)
        for _ in range(3):
            with pytest.raises(LLMServerError):
                await tier.judge(POSTS)
        assert state(tier) is BreakerState.OPEN
        assert isinstance(tier.admit(1), CircuitOpenError)
        before = fake.requests
        with pytest.raises(CircuitOpenError):
            await tier.judge(POSTS)
        assert fake.requests == before  # open: nothing sent
        await anyio.sleep(0.35)
        assert state(tier) is BreakerState.HALF_OPEN
        fake.script.extend(["500"])  # failed trial: open again
        with pytest.raises(LLMServerError):
            await tier.judge(POSTS)
        assert state(tier) is BreakerState.OPEN
        await anyio.sleep(0.35)
        await tier.judge(POSTS)  # good trial closes it
        assert state(tier) is BreakerState.CLOSED
        assert tier.admit(1) is None


async def test_budget_cap_stops_spending_at_the_cap_within_one_request(
        tiers: Tiers, llm_settings: Make) -> None:
    async with running_fake() as fake:
        probe = tiers(llm_settings(fake.base_url))
        one = (await probe.judge(POSTS)).cost_usd
        cap = one * 10.5
        tier = tiers(llm_settings(fake.base_url, daily_budget_usd=cap, concurrency=4))
        spent_before = fake.prompt_tokens * 0.15 + fake.completion_tokens * 0.60
        refused = 0

        async def call() -> None:
            nonlocal refused
            try:
                await tier.judge(POSTS)
            except BudgetExhaustedError:
                refused += 1

        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(call)
        billed = (fake.prompt_tokens * 0.15 + fake.completion_tokens * 0.60
                  - spent_before) / 1e6
        estimate = tier.price.cost(
            estimate_prompt_tokens(build_messages(POSTS), with_aspects=False),
            max_completion_tokens(POSTS, tier.settings.completion_per_post))
        assert refused > 0
        assert tier.budget.exhausted
        assert billed <= cap  # the reservation bounds every call: never above the cap
        assert billed > cap - estimate  # and it stops within one (reserved) request of it
        assert tier.budget.spent == pytest.approx(billed)
        assert tier.admit(1) is not None
        assert tier.stats.budget_alerts == 1


async def test_share_cap_and_restore_from_recorded_spend(
        tiers: Tiers, llm_settings: Make) -> None:
    tier = tiers(llm_settings("http://127.0.0.1:9/v1", daily_budget_usd=1.0,
                                max_escalation_share=0.5, share_min_posts=10))

    async def recorded(day: object) -> LLMUsage:
        return LLMUsage(day=tier.budget.day, cost_usd=1.0)

    tier.observe_routed(10)
    assert tier.admit(5) is None
    assert tier.admit(1) is not None
    await tier.restore(recorded)
    assert isinstance(tier.admit(1), BudgetExhaustedError)


async def test_a_body_that_is_not_a_completion_counts_what_the_server_billed(
        tiers: Tiers, llm_settings: Make) -> None:
    """A 200 whose body is no usable completion but carries a ``usage`` was billed: its cost
    is settled (the day's cap sees it), not released; a body with no usage (an HTML page
    from a proxy) bills nothing known and its reservation is freed."""
    async with running_fake() as fake:
        saved: list[LLMUsage] = []

        async def save(u: LLMUsage) -> None:
            saved.append(u)

        def billed() -> float:
            return (fake.prompt_tokens * 0.15 + fake.completion_tokens * 0.60) / 1e6

        tier = tiers(llm_settings(fake.base_url, max_attempts=3), usage_writer=save)
        fake.script.extend(["billed_no_message"])
        answer = await tier.judge(POSTS)
        assert answer.attempts == 2
        assert fake.requests == 2
        assert 0 < answer.cost_usd < billed()  # the answer's own cost; the day's has both
        assert tier.budget.spent == pytest.approx(billed())
        assert tier.budget.reserved == 0
        assert (tier.stats.invalid, tier.stats.failures) == (1, 1)
        await tier.save_usage()
        assert [(u.requests, u.posts, u.prompt_tokens, u.completion_tokens) for u in saved] == [
            (2, 3, fake.prompt_tokens, fake.completion_tokens)]  # posts judged once
        assert saved[0].cost_usd == pytest.approx(billed())

        fake.script.extend(["billed_no_message"] * 2)  # retried once, then a failure
        with pytest.raises(InvalidLLMResponseError):
            await tier.judge(POSTS)
        assert tier.budget.spent == pytest.approx(billed())
        assert tier.budget.reserved == 0

        before = tier.budget.spent
        fake.script.extend(["not_json"])
        answer = await tier.judge(POSTS)
        assert answer.attempts == 2
        assert tier.budget.spent == pytest.approx(before + answer.cost_usd)  # HTML: not billed
        assert tier.budget.spent == pytest.approx(billed())
        assert tier.budget.reserved == 0
