"""Uncertain aspects through the LLM tier (issue 8), in a running node against the fake
OpenAI-compatible server of tests/llm (real ``openai`` client, no mocks): asyncio only.

The test backend (PolarityWordsBackend) gives a clause with a polarity word 0.9 and one
without 0.6, so with ``aspects.review_below = 0.7`` the aspect in a clause with no polarity
word is the uncertain one. The fake LLM labels every aspect with its own lexicon's label of
the whole text (tests.node.backends: "hate" and "bad" are negative there, "super" unknown).
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path

import anyio
import pytest

from sentiflow.actors.aspect_escalation import (
    aspect_keys,
    match_verdicts,
    settle,
    with_llm_opinion,
)
from sentiflow.config.settings import Settings
from sentiflow.config.tree import aspect_path
from sentiflow.models.aspects.types import AspectMention, AspectPrediction
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.llm.parsing import AspectVerdict, LLMVerdict
from sentiflow.node import Node, open_node
from sentiflow.runtime import ActorSnapshot, Priority
from sentiflow.stores.records import ClassificationRequest, ClassificationResult
from tests.aspects.sanity import PolarityWordsBackend
from tests.llm.fake_openai import FakeLLM, running_fake
from tests.llm.nodes import node_settings

pytestmark = pytest.mark.anyio

#: product: "super" -> positive 0.9 locally; shipping: no polarity word -> neutral 0.6 (low).
#: Overall: positive 0.9 (not escalated as a post). Fake LLM: "hate", "bad" -> negative.
UNSURE = "The product is super but I hate the shipping, bad bad."
#: Both aspects 0.9 locally, overall positive 0.9: nothing to escalate.
SURE = "The product is great, amazing, but shipping took forever."
LANES = {Priority.REALTIME: "realtime", Priority.NORMAL: "standard", Priority.BATCH: "batch"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def settings(home: Path, base_url: str, **env: str) -> Settings:
    return node_settings(home, base_url, ASPECTS__REVIEW_BELOW="0.7",
                         ASPECTS__POOL_SIZE="1", **env)


async def classify(node: Node, texts: list[str], lane: Priority = Priority.NORMAL,
                   ) -> tuple[ClassificationResult, ...]:
    reqs = [ClassificationRequest(request_id=f"r{k}-{time.monotonic_ns()}", text=t,
                                  language="en", aspects=True,
                                  priority=LANES[lane])  # type: ignore[arg-type]
            for k, t in enumerate(texts)]
    return await node.entry.classify(reqs, lane=lane, timeout=20)


def aspects_of(result: ClassificationResult) -> list[tuple[str, str, float]]:
    return [(a.aspect_name, a.sentiment, round(a.confidence, 3)) for a in result.aspects]


def metric(node: Node, name: str) -> int:
    snap = node.snapshot().find(aspect_path(0))
    assert isinstance(snap, ActorSnapshot)
    value = snap.metrics.get(name, 0)
    return value if isinstance(value, int) else 0


def asked_aspects(fake: FakeLLM) -> list[list[str]]:
    return [p.get("aspects", []) for body in fake.bodies
            for p in json.loads(body["messages"][-1]["content"])["posts"]]


async def test_uncertain_aspect_is_replaced_by_the_llm_and_mixed_re_evaluated(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake() as fake, open_node(
            settings(tmp_path, fake.base_url), backends=[PolarityWordsBackend()],
            detector=detector) as node:
        unsure, sure = await classify(node, [UNSURE, SURE])
        # Only the uncertain aspect of the uncertain post went to the LLM.
        assert fake.posts == [UNSURE]
        assert asked_aspects(fake) == [["shipping"]]
        assert aspects_of(unsure) == [("product quality", "positive", 0.9),
                                      ("shipping", "negative", 0.9)]
        assert unsure.sentiment == "mixed"  # re-evaluated: locally shipping was neutral
        assert unsure.fast_confidence == pytest.approx(0.9)
        assert not unsure.needs_review
        assert unsure.review_reason is None
        assert unsure.tier == "fast"  # the overall label is still the fast tier's
        assert (unsure.llm_sentiment, unsure.llm_confidence) == ("negative", 0.9)
        assert aspects_of(sure) == [("product quality", "positive", 0.9),
                                    ("shipping", "negative", 0.9)]
        assert sure.llm_sentiment is None
        stored = await node.store.get_result(unsure.request_id)
        assert stored is not None
        assert stored.result.aspects == unsure.aspects
        assert stored.result.sentiment == "mixed"
        assert metric(node, "aspect_llm_escalated") == 1
        assert metric(node, "aspect_llm_decided") == 1
        assert metric(node, "aspect_llm_requests") == 1


async def test_confident_aspects_never_reach_the_llm(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake() as fake, open_node(
            settings(tmp_path, fake.base_url), backends=[PolarityWordsBackend()],
            detector=detector) as node:
        (result,) = await classify(node, [SURE])
        assert fake.requests == 0
        assert result.sentiment == "mixed"
        assert not result.needs_review


async def test_llm_failure_keeps_the_local_aspects_flagged(
        tmp_path: Path, detector: LanguageDetector) -> None:
    fake = FakeLLM(script=deque(["500", "500", "500"]))
    async with running_fake(fake), open_node(
            settings(tmp_path, fake.base_url), backends=[PolarityWordsBackend()],
            detector=detector) as node:
        (result,) = await classify(node, [UNSURE])
        assert fake.requests == 3  # llm.max_attempts
        assert aspects_of(result) == [("product quality", "positive", 0.9),
                                      ("shipping", "neutral", 0.6)]
        assert result.sentiment == "positive"
        assert result.needs_review
        assert result.review_reason == "aspect_llm_failed"
        assert metric(node, "fallback_aspect_llm_failed") == 1


@pytest.mark.parametrize(("lane", "env"), [
    (Priority.REALTIME, {"LLM__REALTIME_DEADLINE_MS": "300"}),
    (Priority.NORMAL, {"LLM__STANDARD_DEADLINE_S": "0.5"})])
async def test_slow_llm_the_post_is_answered_at_its_deadline(
        tmp_path: Path, detector: LanguageDetector, lane: Priority,
        env: dict[str, str]) -> None:
    async with running_fake(FakeLLM(latency_s=3.0)) as fake, open_node(
            settings(tmp_path, fake.base_url, **env), backends=[PolarityWordsBackend()],
            detector=detector) as node:
        started = time.perf_counter()
        (result,) = await classify(node, [UNSURE], lane)
        elapsed = time.perf_counter() - started
        assert elapsed < 1.5  # the deadline (0.3 / 0.5 s), not the LLM's 3 s
        assert fake.requests <= 1  # 0 when the deadline passed before the aspect step
        assert aspects_of(result)[1] == ("shipping", "neutral", 0.6)
        assert result.needs_review
        assert result.review_reason == "aspect_llm_deadline"
        stored = await node.store.get_result(result.request_id)
        assert stored is not None
        assert stored.result.review_reason == "aspect_llm_deadline"


async def test_a_late_answer_updates_the_stored_aspects_unless_a_person_decided(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake(FakeLLM(latency_s=1.5)) as fake, open_node(
            settings(tmp_path, fake.base_url, LLM__REALTIME_DEADLINE_MS="300"),
            backends=[PolarityWordsBackend()], detector=detector) as node:
        started = time.perf_counter()
        labelled, updated = await classify(node, [UNSURE, UNSURE], Priority.REALTIME)
        assert time.perf_counter() - started < 1.2  # the deadline, not the LLM's 1.5 s
        for result in (labelled, updated):  # answered with the local aspects, flagged
            assert aspects_of(result) == [("product quality", "positive", 0.9),
                                          ("shipping", "neutral", 0.6)]
            assert (result.sentiment, result.review_reason) == ("positive",
                                                                "aspect_llm_deadline")
        # A person labels the first post before the LLM answers: the answer must not undo it.
        await node.store.resolve_review(labelled.request_id, "positive", "ann")
        stored = None
        for _ in range(200):  # both posts are in one request, so in one late write
            stored = await node.store.get_result(updated.request_id)
            assert stored is not None
            if stored.result.sentiment == "mixed":
                break
            await anyio.sleep(0.05)
        assert stored is not None
        assert fake.requests == 1
        late = stored.result
        assert aspects_of(late) == [("product quality", "positive", 0.9),
                                    ("shipping", "negative", 0.9)]
        assert late.sentiment == "mixed"  # the LLM's shipping verdict makes the post mixed
        assert late.fast_confidence == pytest.approx(0.9)
        assert (late.llm_sentiment, late.llm_confidence) == ("negative", 0.9)
        assert (late.needs_review, late.review_reason) == (False, None)  # review item closed
        assert (late.tier, late.latency_ms) == ("fast", updated.latency_ms)
        assert [a.aspect_id for a in late.aspects] == [a.aspect_id for a in updated.aspects]
        open_ids = {i.record.request_id for i in await node.store.review_items("open")}
        assert updated.request_id not in open_ids
        kept = await node.store.get_result(labelled.request_id)
        assert kept is not None
        assert (kept.result.tier, kept.result.sentiment) == ("review", "positive")
        assert kept.result.aspects == labelled.aspects
        assert metric(node, "aspect_llm_late") == 2
        assert metric(node, "aspect_llm_late_written") == 1
        assert metric(node, "aspect_llm_late_relabelled") == 2  # positive -> mixed, both
        assert metric(node, "mixed") == 0  # what was answered was not mixed


async def test_batch_priority_waits_for_the_answer(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake(FakeLLM(latency_s=0.6)) as fake, open_node(
            settings(tmp_path, fake.base_url, LLM__STANDARD_DEADLINE_S="0.1"),
            backends=[PolarityWordsBackend()], detector=detector) as node:
        (result,) = await classify(node, [UNSURE], Priority.BATCH)
        assert aspects_of(result)[1] == ("shipping", "negative", 0.9)
        assert result.sentiment == "mixed"


async def test_spent_budget_makes_no_calls(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake() as fake, open_node(
            settings(tmp_path, fake.base_url, LLM__DAILY_BUDGET_USD="0"),
            backends=[PolarityWordsBackend()], detector=detector) as node:
        first = await classify(node, [UNSURE])
        second = await classify(node, [UNSURE, UNSURE])
        assert fake.requests == 0
        for result in (*first, *second):
            assert aspects_of(result)[1] == ("shipping", "neutral", 0.6)
            assert result.review_reason == "aspect_llm_budget"
        assert node.llm is not None
        assert node.llm.budget.exhausted


async def test_without_the_tier_uncertain_aspects_go_to_review(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with open_node(node_settings(tmp_path, None, ASPECTS__REVIEW_BELOW="0.7"),
                         backends=[PolarityWordsBackend()], detector=detector) as node:
        assert node.llm is None
        (result,) = await classify(node, [UNSURE])
        assert result.review_reason == "aspect_low_confidence"


# -- pure helpers ------------------------------------------------------------------------------


def pred(name: str, term: str, sentiment: str, confidence: float) -> AspectPrediction:
    return AspectPrediction(AspectMention(0, len(term), term, name), sentiment,  # type: ignore[arg-type]
                            confidence, (0.2, 0.6, 0.2), term)


def test_keys_disambiguate_shared_names_and_verdicts_match_by_name_or_position() -> None:
    preds = [pred("shipping", "delivery", "neutral", 0.6), pred("price", "price", "neutral", 0.6),
             pred("shipping", "courier", "neutral", 0.6)]
    keys = aspect_keys(preds, [0, 1, 2])
    assert keys == ["shipping (delivery)", "price", "shipping (courier)"]
    v = [AspectVerdict("Price ", "negative", 0.8), AspectVerdict("shipping (courier)",
                                                                 "positive", 0.7)]
    assert match_verdicts(keys, v) == [None, v[0], v[1]]
    renamed = [AspectVerdict("a", "negative", 0.8), AspectVerdict("b", "positive", 0.7)]
    assert match_verdicts(["x", "y"], renamed) == renamed


def test_settle_replaces_flags_missing_and_unsure_answers() -> None:
    preds = [pred("price", "price", "positive", 0.9), pred("shipping", "shipping", "neutral",
                                                          0.4)]
    answer = LLMVerdict("negative", 0.8, (AspectVerdict("shipping", "negative", 0.85),))
    done = settle(preds, [1], answer, 0.5)
    assert done.reason is None
    assert done.decided == 1
    assert (done.predictions[1].sentiment, done.predictions[1].confidence) == ("negative", 0.85)
    assert done.predictions[1].probabilities == pytest.approx((0.85, 0.075, 0.075))
    assert done.predictions[0] is preds[0]
    unsure = settle(preds, [1], LLMVerdict("neutral", 0.5, (
        AspectVerdict("shipping", "negative", 0.3),)), 0.5)
    assert unsure.reason == "aspect_llm_low_confidence"
    missing = settle(preds, [1], LLMVerdict("neutral", 0.5, ()), 0.5)
    assert missing.reason == "aspect_llm_invalid_response"
    assert missing.predictions[1] is preds[1]


def test_llm_opinion_does_not_overwrite_an_earlier_one() -> None:
    base = ClassificationResult(request_id="x", sentiment="positive", confidence=0.9,
                                model_used="m", language_detected="en", latency_ms=1.0)
    first = with_llm_opinion(base, LLMVerdict("negative", 0.7))
    assert (first.llm_sentiment, first.llm_confidence) == ("negative", 0.7)
    assert with_llm_opinion(first, LLMVerdict("positive", 0.9)) is first
