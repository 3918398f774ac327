"""The LLM tier: the async ``openai`` client wrapped in rate limits, budget, breaker, retries.

This is the one place that calls the LLM; the escalator actors (and the aspect step, the nightly
audit) go through :meth:`LLMTier.judge` so that every caller shares the same buckets, budget,
breaker and concurrency bound. It lives outside ``models/`` because it needs an event loop; the
pieces it composes (prompt, parsing, prices, budget, buckets, breaker) are pure and live in
:mod:`sentiflow.models.llm`.

One call of :meth:`judge` = one chat completion over several posts:

1. concurrency slot (``llm.concurrency`` completions in flight, all callers together);
2. per attempt: breaker (open -> :class:`CircuitOpenError` at once), rate limiter (waits for
   requests/min and tokens/min, and for any server-imposed pause), budget reservation (high
   estimate; refused -> :class:`BudgetExhaustedError`), the call itself under ``timeout_s``;
3. retries (tenacity, full-jitter exponential backoff) on 429 (after the server's Retry-After,
   which pauses every caller), 5xx, timeouts and connection errors; an unparseable or
   out-of-label answer is retried once; other 4xx are not retried;
4. the budget is settled with the response's token usage (also for a body that is not a chat
   completion when it says what was billed; with nothing billed the reservation is freed);
   spend is queued for the store.

Backend-neutral code (anyio), but the ``openai`` client needs asyncio in practice (its httpx
transport runs on anyio; it is tested under asyncio only, as the node runs).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import anyio
import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from sentiflow.config.settings import LLMSettings
from sentiflow.models.llm.breaker import BreakerState, CircuitBreaker
from sentiflow.models.llm.budget import BudgetRefusal, DailyBudget
from sentiflow.models.llm.errors import (
    BudgetExhaustedError,
    CircuitOpenError,
    InvalidLLMResponseError,
    LLMError,
    LLMRateLimitedError,
    LLMRequestError,
    LLMServerError,
    NotACompletionError,
    ShareCapError,
)
from sentiflow.models.llm.parsing import AspectVerdict, LLMVerdict, parse_verdicts, read_completion
from sentiflow.models.llm.pricing import ModelPricing, TokenUsage
from sentiflow.models.llm.prompt import (
    LLMPost,
    build_messages,
    estimate_prompt_tokens,
    max_completion_tokens,
    response_format,
    wants_aspects,
)
from sentiflow.models.llm.ratelimit import RateLimiter, retry_after_s
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import LLMUsage

log = logging.getLogger("sentiflow.llm")

UsageWriter = Callable[[LLMUsage], Awaitable[None]]
#: Retry-After used when a 429 carries none.
DEFAULT_RETRY_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class LLMAnswer:
    """One successful completion: a verdict per post id, and what it cost."""

    verdicts: dict[str, LLMVerdict]
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    attempts: int
    latency_s: float


@dataclass(slots=True)
class TierStats:
    """Totals since start (the escalators publish their own per-actor counters)."""

    #: HTTP requests sent (every attempt).
    requests: int = 0
    #: Attempts that failed and counted against the breaker (5xx, timeouts, connection
    #: errors, other 4xx, unusable answers); 429s are ``rate_limited``, not failures.
    failures: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    invalid: int = 0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Times the day's budget ran out (each fires the alert once).
    budget_alerts: int = 0
    unsaved: list[LLMUsage] = field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LLMTier:
    """Shared by every caller of the LLM in a node. Create it on the event loop that uses it."""

    def __init__(self, settings: LLMSettings, *, client: openai.AsyncOpenAI | None = None,
                 usage_writer: UsageWriter | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 utc_clock: Callable[[], datetime] = _utcnow) -> None:
        self.settings = settings
        self.model = settings.model
        price = settings.prices[settings.model]
        self.price = ModelPricing(price.input_per_million, price.output_per_million)
        self.client = client or openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key.get_secret_value() if settings.api_key else "unused",
            timeout=settings.timeout_s, max_retries=0)  # retries are ours (limiter-aware)
        self._owns_client = client is None
        self.limiter = RateLimiter(settings.requests_per_minute, settings.tpm_limit, clock=clock)
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s,
                                      clock=clock)
        self.budget = DailyBudget(settings.daily_budget_usd,
                                  max_share=settings.max_escalation_share,
                                  share_min_posts=settings.share_min_posts, clock=utc_clock,
                                  on_exhausted=self._alert_exhausted)
        self.stats = TierStats()
        self._slots = anyio.Semaphore(settings.concurrency)
        self._usage_writer = usage_writer
        self._saving = False
        #: Set (and replaced) whenever a call settles or releases its reservation.
        self._settled = anyio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def restore(self, usage: Callable[[date], Awaitable[LLMUsage]]) -> None:
        """Take today's recorded spend (``store.llm_usage``) so a restart keeps the cap."""
        today = self.budget.day
        recorded = await usage(today)
        self.budget.restore(today, recorded.cost_usd)
        if recorded.cost_usd:
            log.info("LLM spend already recorded for %s: $%.4f of $%.2f", today,
                     recorded.cost_usd, self.budget.cap)

    async def __aenter__(self) -> LLMTier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.save_usage()
        if self._owns_client:
            await self.client.close()

    def _alert_exhausted(self, day: date, spent: float) -> None:
        self.stats.budget_alerts += 1
        log.error("ALERT llm budget exhausted for %s: spent $%.4f of the $%.2f daily cap; "
                  "escalation stops until 00:00 UTC and low-confidence posts go to review",
                  day, spent, self.budget.cap)

    # -- admission (cheap, synchronous) ------------------------------------------------------

    def observe_routed(self, posts: int) -> None:
        """The router saw ``posts`` more posts (the escalation share's denominator)."""
        self.budget.observe_routed(posts)

    def admit(self, posts: int) -> LLMError | None:
        """Whether ``posts`` low-confidence posts may be escalated now: None, or the error
        saying why not (budget spent, share cap, breaker open). Counts them when admitted."""
        if self.breaker.state is BreakerState.OPEN:
            return CircuitOpenError("the LLM endpoint failed repeatedly; breaker open")
        refusal = self.budget.admit(posts)
        if refusal is BudgetRefusal.EXHAUSTED:
            return BudgetExhaustedError("the LLM budget for today is spent")
        if refusal is BudgetRefusal.SHARE_CAP:
            return ShareCapError("the escalation share cap for today is reached")
        return None

    async def wait_turn(self) -> None:
        """Wait until a request could start now (a free slot, the limiter's go). Nothing is
        taken: the caller gathers what queued meanwhile into that request (natural batching)."""
        while True:
            delay = self.limiter.delay(1)
            if delay > 0:
                await anyio.sleep(delay)
                continue
            if self._slots.value == 0:
                async with self._slots:
                    pass
                continue
            return

    # -- the call ----------------------------------------------------------------------------

    async def judge(self, posts: Sequence[LLMPost], *,
                    on_sent: Callable[[], object] | None = None) -> LLMAnswer:
        """The LLM's verdict on each post (one completion, retried as described above).

        ``on_sent`` is called once the first attempt has its slot and rate tokens, right
        before the request goes out (a dispatcher waits for it before gathering the next
        batch, so posts that arrive meanwhile share a request).

        Raises an :class:`~sentiflow.models.llm.errors.LLMError`: its ``reason`` is what the
        posts' results record when they keep their fast-tier label.
        """
        messages = build_messages(posts)
        with_aspects = wants_aspects(posts)
        prompt_estimate = estimate_prompt_tokens(messages, with_aspects=with_aspects)
        max_tokens = max_completion_tokens(posts, self.settings.completion_per_post)
        ids = [p.id for p in posts]
        invalid_seen = 0

        def retryable(exc: BaseException) -> bool:
            nonlocal invalid_seen
            if isinstance(exc, InvalidLLMResponseError):
                invalid_seen += 1
                return invalid_seen <= 1  # an unusable answer is retried once
            return isinstance(exc, LLMServerError | LLMRateLimitedError)

        s = self.settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.max_attempts),
            wait=wait_random_exponential(multiplier=s.backoff_initial_s, max=s.backoff_max_s),
            retry=retry_if_exception(retryable), sleep=anyio.sleep, reraise=True)
        started = time.perf_counter()
        attempts = 0
        async with self._slots:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    verdicts, prompt_tokens, completion_tokens, cost = await self._attempt(
                        messages, with_aspects, ids, prompt_estimate, max_tokens, len(posts),
                        on_sent)
        return LLMAnswer(verdicts=verdicts, model=self.model, prompt_tokens=prompt_tokens,
                         completion_tokens=completion_tokens, cost_usd=cost, attempts=attempts,
                         latency_s=time.perf_counter() - started)
        raise AssertionError("unreachable")  # pragma: no cover (tenacity reraises)

    async def judge_aspects(self, text: str, aspects: Sequence[str], *,
                            language: str = "und") -> tuple[AspectVerdict, ...]:
        """Sentiment of each of ``aspects`` in ``text`` (empty: the LLM finds them), for the
        aspect step's low-confidence aspects. Same limits, budget and errors as :meth:`judge`."""
        answer = await self.judge([LLMPost(id="0", text=text, language=language,
                                           aspects=tuple(aspects))])
        return answer.verdicts["0"].aspects

    async def _attempt(self, messages: list[dict[str, str]], with_aspects: bool,
                       ids: list[str], prompt_estimate: int, max_tokens: int, posts: int,
                       on_sent: Callable[[], object] | None,
                       ) -> tuple[dict[str, LLMVerdict], int, int, float]:
        if not self.breaker.allow():
            raise CircuitOpenError("the LLM endpoint failed repeatedly; breaker open")
        tokens = prompt_estimate + max_tokens
        while True:  # the limiter's clock decides; nothing to wait on but time
            delay = self.limiter.delay(tokens)
            if delay <= 0:
                break
            await anyio.sleep(delay)
        estimate = self.price.cost(prompt_estimate, max_tokens)
        while (reservation := self.budget.reserve(estimate)) is None:
            if self.budget.exhausted:
                self.breaker.record_neutral()
                raise BudgetExhaustedError("the LLM budget for today is spent")
            await self._settled.wait()  # fits once a call in flight settles below its estimate
        sent = self.limiter.take(tokens)
        self.stats.requests += 1
        if on_sent is not None:
            on_sent()
        billed: TokenUsage | None = None
        verdicts: dict[str, LLMVerdict] | None = None
        try:
            raw = await self._create(messages, with_aspects, max_tokens)
            self.limiter.observe_headers(raw.headers, sent)
            try:
                completion = read_completion(raw.content)
            except NotACompletionError as exc:
                billed = exc.usage  # the server may bill a body we cannot use: count it
                raise
            content = completion.content
            # No usage in the answer: the (high) prompt estimate, the content at 2 bytes/token.
            billed = completion.usage or TokenUsage(
                prompt_estimate, math.ceil(len((content or "").encode()) / 2))
            verdicts = parse_verdicts(content, ids)
        except InvalidLLMResponseError:
            self.stats.invalid += 1
            self.stats.failures += 1
            self.breaker.record_failure()
            raise
        except LLMRateLimitedError:
            self.breaker.record_neutral()
            raise
        except LLMError:
            self.stats.failures += 1
            self.breaker.record_failure()
            raise
        finally:
            # Settled with what the server billed (posts count only when they were judged);
            # nothing billed (an HTTP error, a body without usage): the reservation is freed.
            cost = 0.0
            if billed is None:
                self.budget.release(reservation)
            else:
                cost = self.price.cost(billed.prompt_tokens, billed.completion_tokens)
                self.budget.settle(reservation, cost)
                self._count_usage(cost, billed.prompt_tokens, billed.completion_tokens,
                                  posts if verdicts is not None else 0)
            self._settled.set()
            self._settled = anyio.Event()
        assert billed is not None  # set on the way to verdicts
        self.breaker.record_success()
        return verdicts, billed.prompt_tokens, billed.completion_tokens, cost

    async def _create(self, messages: list[dict[str, str]], with_aspects: bool,
                      max_tokens: int) -> Any:
        """One HTTP call; openai's errors become ours (typed by what the tier does next)."""
        try:
            with anyio.fail_after(self.settings.timeout_s):
                params: dict[str, Any] = {
                    "model": self.model, "messages": messages, "max_tokens": max_tokens,
                    "response_format": response_format(with_aspects),
                    "temperature": self.settings.temperature}
                return await self.client.chat.completions.with_raw_response.create(**params)
        except TimeoutError:
            self.stats.server_errors += 1
            raise LLMServerError(f"no answer within {self.settings.timeout_s:g} s") from None
        except openai.RateLimitError as exc:
            self.stats.rate_limited += 1
            wait = retry_after_s(exc.response.headers)
            if wait is None:  # no Retry-After: the x-ratelimit-* headers, else a default
                self.limiter.observe_headers(exc.response.headers)
            self.limiter.pause(DEFAULT_RETRY_AFTER_S if wait is None else wait)
            raise LLMRateLimitedError(f"429 from the LLM endpoint (retry after {wait} s)") \
                from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                self.stats.server_errors += 1
                raise LLMServerError(f"LLM endpoint answered {exc.status_code}") from None
            raise LLMRequestError(f"LLM endpoint refused the request: {exc.status_code} "
                                  f"{exc.message}") from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            self.stats.server_errors += 1
            raise LLMServerError(f"LLM endpoint unreachable: {exc}") from None
        except openai.APIResponseValidationError as exc:
            raise InvalidLLMResponseError(f"not a chat completion: {exc}") from None

    # -- spend bookkeeping -------------------------------------------------------------------

    def _count_usage(self, cost: float, prompt_tokens: int, completion_tokens: int,
                     posts: int) -> None:
        st = self.stats
        st.cost_usd += cost
        st.prompt_tokens += prompt_tokens
        st.completion_tokens += completion_tokens
        st.unsaved.append(LLMUsage(day=self.budget.day, cost_usd=cost, requests=1,
                                   prompt_tokens=prompt_tokens,
                                   completion_tokens=completion_tokens, posts=posts))

    async def save_usage(self) -> None:
        """Write the spend not yet recorded (one row per day, summed). Called by the
        escalators after they have passed a request's results on, so the store write is off
        the posts' path; a failure is logged and retried at the next call."""
        if self._usage_writer is None or self._saving or not self.stats.unsaved:
            return
        self._saving = True
        pending, self.stats.unsaved = self.stats.unsaved, []
        by_day: dict[date, LLMUsage] = {}
        for u in pending:
            t = by_day.get(u.day)
            by_day[u.day] = u if t is None else LLMUsage(
                day=u.day, cost_usd=t.cost_usd + u.cost_usd, requests=t.requests + u.requests,
                prompt_tokens=t.prompt_tokens + u.prompt_tokens,
                completion_tokens=t.completion_tokens + u.completion_tokens,
                posts=t.posts + u.posts)
        try:
            for usage in list(by_day.values()):
                await self._usage_writer(usage)
                del by_day[usage.day]
        except Exception as exc:  # storage trouble must not fail the tier
            log.warning("recording LLM spend failed (kept for the next try): %s", exc)
            self.stats.unsaved[:0] = list(by_day.values())
        finally:
            self._saving = False


@asynccontextmanager
async def opened_llm_tier(settings: LLMSettings, store: ResultStore | None
                          ) -> AsyncIterator[LLMTier | None]:
    """The node's LLM tier while the node runs (None when ``llm`` is not configured): today's
    spend restored from ``store`` at start, recorded there as it grows, flushed at exit."""
    if not settings.active:
        yield None
        return
    tier = LLMTier(settings, usage_writer=store.add_llm_usage if store is not None else None)
    try:
        if store is not None:
            await tier.restore(store.llm_usage)
        log.info("LLM tier on: model %s at %s, $%.2f/day, %d req/min", settings.model,
                 settings.base_url or "api.openai.com", settings.daily_budget_usd,
                 settings.requests_per_minute)
        yield tier
    finally:
        await tier.aclose()


def llm_gauges(tier: LLMTier) -> dict[str, Callable[[], float]]:
    """Node gauges (``/metrics`` as ``sentiflow_node_<name>``, the console) of the tier."""
    return {
        "llm_spent_today_usd": lambda: tier.budget.spent,
        "llm_daily_budget_usd": lambda: tier.budget.cap,
        "llm_budget_exhausted": lambda: float(tier.budget.exhausted),
        "llm_escalation_share": lambda: (tier.budget.escalated / tier.budget.routed
                                         if tier.budget.routed else 0.0),
        "llm_breaker_open": lambda: float(tier.breaker.state is not BreakerState.CLOSED),
        "llm_requests_total": lambda: float(tier.stats.requests),
        "llm_failures_total": lambda: float(tier.stats.failures),
        "llm_rate_limited_total": lambda: float(tier.stats.rate_limited),
        "llm_budget_exhausted_total": lambda: float(tier.stats.budget_alerts),
    }
