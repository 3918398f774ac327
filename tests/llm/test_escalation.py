"""The LLM tier in a running node: router -> escalator pool -> sink, against the fake server.

asyncio only (the tier drives the real ``openai`` client).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from sentiflow.config.tree import ROUTER, escalator_path
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import Node
from sentiflow.runtime import ActorSnapshot, Priority
from sentiflow.stores.records import ClassificationResult
from tests.llm.fake_openai import FakeLLM, label_of, running_fake
from tests.llm.nodes import CLEAR, UNCLEAR, classify, llm_node, node_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def metric(node: Node, path: str, name: str) -> int:
    snap = node.snapshot().find(path)
    assert isinstance(snap, ActorSnapshot)
    value = snap.metrics.get(name, 0)
    return value if isinstance(value, int) else 0


@pytest.mark.parametrize(("threshold", "escalated"), [("0.75", UNCLEAR), ("0.85", CLEAR + UNCLEAR),
                                                      ("0.3", ())])
async def test_escalation_happens_exactly_for_posts_under_the_threshold(
        tmp_path: Path, detector: LanguageDetector, threshold: str,
        escalated: tuple[str, ...]) -> None:
    async with running_fake() as fake, llm_node(
            node_settings(tmp_path, fake.base_url, ROUTER__THRESHOLD=threshold),
            detector) as node:
        texts = [t for pair in zip(CLEAR, UNCLEAR, strict=True) for t in pair]
        results = await classify(node, texts)
        assert sorted(fake.posts) == sorted(escalated)
        for text, result in zip(texts, results, strict=True):
            stored = await node.store.get_result(result.request_id)
            assert stored is not None
            assert stored.result.tier == result.tier
            if text in escalated:
                assert result.tier == "llm"
                assert result.model_used == "gpt-4o-mini"
                assert result.sentiment == label_of(text)
                assert result.confidence == 0.9
                assert result.fast_confidence is not None
                assert result.fast_confidence < float(
                    threshold)
                assert result.fast_sentiment is not None
                assert result.llm_confidence == 0.9
                assert not result.needs_review
                assert result.review_reason is None
            else:
                assert result.tier == "fast"
                assert result.model_used == "lexicon:t1"
                assert not result.needs_review
        assert metric(node, escalator_path(0), "escalated") + metric(
            node, escalator_path(1), "escalated") == len(escalated)
        usage = await node.store.llm_usage(datetime.now(UTC).date())
        assert usage.posts == len(escalated)
        assert (usage.cost_usd > 0) == bool(escalated)


async def test_realtime_deadline_returns_the_fast_result_and_the_llm_answer_lands_later(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake(FakeLLM(latency_s=0.8)) as fake, llm_node(
            node_settings(tmp_path, fake.base_url, LLM__REALTIME_DEADLINE_MS="150"),
            detector) as node:
        started = time.perf_counter()
        (result,) = await classify(node, ["it is a chair"], lane=Priority.REALTIME)
        assert time.perf_counter() - started < 0.5
        assert result.tier == "fast"
        assert result.needs_review
        assert result.review_reason == "llm_deadline"
        open_ids = [i.record.request_id for i in await node.store.review_items("open")]
        assert result.request_id in open_ids
        stored = None
        for _ in range(100):
            stored = await node.store.get_result(result.request_id)
            if stored is not None and stored.result.tier == "llm":
                break
            await anyio.sleep(0.05)
        assert stored is not None
        assert stored.result.tier == "llm"
        assert not stored.result.needs_review
        assert stored.result.fast_confidence == pytest.approx(0.4)
        open_ids = [i.record.request_id for i in await node.store.review_items("open")]
        assert result.request_id not in open_ids  # the review item closed
        assert fake.answered == 1


async def test_a_429_storm_slows_the_tier_without_losing_posts(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake(FakeLLM(retry_after_s=0.15)) as fake, llm_node(
            node_settings(tmp_path, fake.base_url, LLM__MAX_ATTEMPTS="12"), detector) as node:
        fake.script.extend(["429"] * 8)
        out: list[ClassificationResult] = []

        async def one(i: int) -> None:
            out.extend(await classify(node, [f"{UNCLEAR[i % 4]} #{i}", CLEAR[i % 4]],
                                      lane=Priority.BATCH))

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
        assert len(out) == 40  # nothing lost
        assert time.perf_counter() - started >= 0.15  # slowed by Retry-After
        llm = [r for r in out if r.tier == "llm"]
        assert len(llm) == 20
        assert fake.rate_limited == 8
        assert len({r.request_id for r in out}) == 40


async def test_saturated_tier_keeps_fast_results_flagged_for_realtime_and_standard(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake(FakeLLM(latency_s=1.0)) as fake, llm_node(
            node_settings(tmp_path, fake.base_url, LLM__POOL_SIZE="1", LLM__MAILBOX_SIZE="1",
                          LLM__MAX_PENDING_POSTS="1", LLM__CONCURRENCY="1",
                          LLM__STANDARD_DEADLINE_S="3"), detector) as node:
        out: list[ClassificationResult] = []

        async def one(i: int) -> None:
            out.extend(await classify(node, [f"{UNCLEAR[i % 4]} #{i}"]))

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(one, i)
                await anyio.sleep(0.01)
        assert len(out) == 12
        saturated = [r for r in out if r.review_reason == "llm_saturated"]
        assert saturated
        assert all(r.tier == "fast" and r.needs_review for r in saturated)
        assert metric(node, ROUTER, "llm_saturated") == len(saturated)
        assert time.perf_counter() - started < 5.0
        assert fake.requests >= 1


async def test_spent_budget_sends_posts_to_review_and_survives_a_restart(
        tmp_path: Path, detector: LanguageDetector) -> None:
    home = tmp_path / "home"
    async with running_fake() as fake:
        async with llm_node(node_settings(home, fake.base_url), detector) as node:
            await classify(node, list(UNCLEAR))
            spent = (await node.store.llm_usage(datetime.now(UTC).date())).cost_usd
        assert spent > 0
        assert fake.requests >= 1
        before = fake.requests
        # Same home, a cap equal to what was already spent today: nothing more is spent.
        async with llm_node(node_settings(home, fake.base_url,
                                          LLM__DAILY_BUDGET_USD=repr(spent)), detector) as node:
            results = await classify(node, list(UNCLEAR) + list(CLEAR))
            low = results[:4]
            assert all(r.tier == "fast" and r.review_reason == "llm_budget" for r in low)
            assert all(r.needs_review for r in low)
            assert fake.requests == before
            open_ids = {i.record.request_id for i in await node.store.review_items("open")}
            assert {r.request_id for r in low} <= open_ids


async def test_breaker_opens_in_the_pipeline_then_posts_skip_the_llm(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake() as fake, llm_node(
            node_settings(tmp_path, fake.base_url, LLM__BREAKER_FAILURES="2",
                          LLM__MAX_ATTEMPTS="1", LLM__POOL_SIZE="1",
                          LLM__MAX_POSTS_PER_REQUEST="1"), detector) as node:
        fake.script.extend(["500"] * 2)
        first = await classify(node, ["it is a chair"])
        second = await classify(node, ["a blue door"])
        assert first[0].review_reason == second[0].review_reason == "llm_failed"
        third = await classify(node, ["the bus came at noon"])
        assert third[0].review_reason == "llm_unavailable"
        assert fake.requests == 2
        await anyio.sleep(0.55)  # half-open: one trial, which succeeds
        fourth = await classify(node, ["we met on tuesday"])
        assert fourth[0].tier == "llm"
        assert fake.requests == 3


async def test_stopping_the_node_sends_held_posts_on_with_their_fast_result(
        tmp_path: Path, detector: LanguageDetector) -> None:
    out: list[ClassificationResult] = []
    async with running_fake(FakeLLM(latency_s=5.0)) as fake:

        async def go(node: Node) -> None:
            out.extend(await classify(node, [UNCLEAR[0], CLEAR[0]], lane=Priority.BATCH))

        async with anyio.create_task_group() as tg, llm_node(
                node_settings(tmp_path, fake.base_url), detector) as node:
            tg.start_soon(go, node)
            with anyio.fail_after(5):
                while True:  # polled: the fake server has no event for it
                    if fake.requests:
                        break
                    await anyio.sleep(0.02)
            # leaving stops the node while the LLM is still thinking; go() then finishes
    assert [r.review_reason for r in out] == ["llm_stopping", None]
    assert out[0].needs_review
    assert out[0].tier == "fast"


@pytest.mark.parametrize(("llm_confidence", "to_review"), [(0.45, True), (0.5, False)])
async def test_a_post_the_llm_is_unsure_of_goes_to_review_with_both_opinions(
        tmp_path: Path, detector: LanguageDetector, llm_confidence: float,
        to_review: bool) -> None:
    """``llm.min_llm_confidence`` (0.5): under it the LLM's answer stands but the whole post
    goes to review (``llm_low_confidence``); at it, the LLM decides alone."""
    async with running_fake(FakeLLM(confidence=llm_confidence)) as fake, llm_node(
            node_settings(tmp_path, fake.base_url), detector) as node:
        texts = [UNCLEAR[0], CLEAR[0], UNCLEAR[2]]
        results = await classify(node, texts)
        assert sorted(fake.posts) == sorted([UNCLEAR[0], UNCLEAR[2]])
        low = [results[0], results[2]]
        for text, r in zip([UNCLEAR[0], UNCLEAR[2]], low, strict=True):
            assert (r.tier, r.model_used, r.sentiment, r.confidence) == (
                "llm", "gpt-4o-mini", label_of(text), llm_confidence)
            assert r.fast_sentiment == "neutral"
            assert r.fast_confidence == pytest.approx(0.4)
            assert r.llm_confidence == llm_confidence
            assert r.needs_review is to_review
            assert r.review_reason == ("llm_low_confidence" if to_review else None)
            stored = await node.store.get_result(r.request_id)
            assert stored is not None
            assert stored.result == r
        assert (results[1].tier, results[1].needs_review) == ("fast", False)
        queue = await node.store.review_items("open")
        assert [i.record.request_id for i in queue] == (
            [r.request_id for r in low] if to_review else [])


async def test_ratelimit_headers_pace_the_tier_to_the_server_without_429s(
        tmp_path: Path, detector: LanguageDetector) -> None:
    """The server allows 1200 requests/min (20/s, 40 of burst) and says so in its
    ``x-ratelimit-*`` headers; the node is configured for 6000/min. The tier follows the
    headers: 60 one-post requests take the server's pace, none is refused, no post falls
    back (ignoring the headers, ~20 of them got 429s and some posts fell back)."""
    async with running_fake(FakeLLM(rpm_limit=1200)) as fake, llm_node(
            node_settings(tmp_path, fake.base_url, LLM__MAX_POSTS_PER_REQUEST="1",
                          LLM__TPM_LIMIT="100000000"), detector) as node:
        out: list[ClassificationResult] = []

        async def one(i: int) -> None:
            out.extend(await classify(node, [f"{UNCLEAR[i % 4]} #{i}"], lane=Priority.BATCH))

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(one, i)
        elapsed = time.perf_counter() - started
        assert len(out) == 60
        assert [r.review_reason for r in out if r.tier != "llm"] == []  # none lost, none fell
        assert fake.rate_limited == 0
        assert fake.requests == 60  # one request per post, no retry
        assert elapsed >= 0.8  # (60 - 40 burst) / 20 per s = 1 s at the server's pace
        assert node.llm is not None
        assert node.llm.limiter.requests.per_second == pytest.approx(20.0)


async def test_concurrency_limit_holds_across_the_escalator_pool(
        tmp_path: Path, detector: LanguageDetector) -> None:
    """``llm.concurrency`` bounds the completions in flight for all escalators together: the
    fake server never sees more at once, and under load it sees exactly that many. Each
    escalator holds at most 2 posts (so the router spreads the posts over both, which could
    send 4 at once)."""
    async with running_fake(FakeLLM(latency_s=0.1)) as fake, llm_node(
            node_settings(tmp_path, fake.base_url, LLM__POOL_SIZE="2", LLM__CONCURRENCY="3",
                          LLM__MAX_POSTS_PER_REQUEST="1", LLM__MAX_PENDING_POSTS="2"),
            detector) as node:
        out: list[ClassificationResult] = []

        async def one(i: int) -> None:
            out.extend(await classify(node, [f"{UNCLEAR[i % 4]} #{i}"], lane=Priority.BATCH))

        async with anyio.create_task_group() as tg:
            for i in range(24):
                tg.start_soon(one, i)
                await anyio.sleep(0.005)  # separate classifier batches, so both get posts
        assert len(out) == 24
        assert all(r.tier == "llm" for r in out)
        assert fake.requests == 24
        assert fake.max_in_flight == 3
        assert metric(node, escalator_path(0), "llm_requests") > 0  # both members sent
        assert metric(node, escalator_path(1), "llm_requests") > 0
