"""The LLM tier seen through the node's real HTTP API (Hypercorn on loopback) and a fake
OpenAI-compatible server: the realtime deadline of ``POST /api/classify`` and the tier's
``/metrics``. asyncio only (the tier drives the real ``openai`` client; Quart)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentiflow.config.tree import escalator_path
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.llm import (
    LLMPost,
    ModelPricing,
    build_messages,
    estimate_prompt_tokens,
    max_completion_tokens,
)
from tests.llm.fake_openai import FakeLLM, label_of, running_fake
from tests.llm.nodes import CLEAR, UNCLEAR, api_port, llm_node, node_settings
from tests.net import serving

pytestmark = pytest.mark.anyio

MINI = ModelPricing(0.15, 0.60)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_realtime_classify_over_http_answers_by_the_deadline_then_stores_the_llm_answer(
        tmp_path: Path, detector: LanguageDetector) -> None:
    async with running_fake(FakeLLM(latency_s=0.8)) as fake, llm_node(
            node_settings(tmp_path, fake.base_url, API__PORT=api_port(),
                          LLM__REALTIME_DEADLINE_MS="150"), detector) as node, \
            serving(node) as client:
        warm = await client.post("/api/classify", json={"text": CLEAR[0]})  # no LLM call
        assert warm.status_code == 200, warm.text
        text = UNCLEAR[0]
        started = time.perf_counter()
        r = await client.post("/api/classify", json={"text": text, "language": "en",
                                                     "priority": "realtime",
                                                     "request_id": "rt-1"})
        elapsed = time.perf_counter() - started
        assert r.status_code == 200, r.text
        assert 0.15 <= elapsed < 0.4  # held for the LLM until the deadline, not a moment more
        body = r.json()
        assert body["model_used"] == "lexicon:t1"  # the fast result
        assert body["confidence"] == pytest.approx(0.4)
        assert body["sentiment"] == "neutral"
        assert body["latency_ms"] < 400
        assert fake.requests == 1
        assert fake.answered == 0  # the LLM is still thinking
        # flagged: the post is in the review queue for the deadline, with no LLM opinion yet
        queue = (await client.get("/api/review")).json()["items"]
        assert [(i["request_id"], i["reason"], i["llm"]) for i in queue] == [
            ("rt-1", "llm_deadline", None)]
        assert queue[0]["fast"]["confidence"] == pytest.approx(0.4)
        stored = None
        with anyio.fail_after(5):
            while True:  # the late answer lands when the fake server replies (~0.8 s)
                stored = (await client.get("/api/results/rt-1")).json()
                if stored["model_used"] != "lexicon:t1":
                    break
                await anyio.sleep(0.05)
        assert fake.answered == 1
        assert stored["model_used"] == "gpt-4o-mini"
        assert stored["confidence"] == pytest.approx(0.9)
        assert stored["sentiment"] == label_of(text)
        assert (await client.get("/api/review")).json()["items"] == []  # the item closed


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    r = await client.get("/metrics")
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def node_metric(samples: Samples, name: str) -> float:
    return samples[(f"sentiflow_node_{name}", ())]


def actor_metric(samples: Samples, name: str) -> float:
    """An escalator counter (the pool has one member here); absent = never incremented."""
    return samples.get((f"sentiflow_actor_{name}_total", (("path", escalator_path(0)),)), 0.0)


async def test_llm_tier_metrics_on_the_metrics_endpoint(
        tmp_path: Path, detector: LanguageDetector) -> None:
    text = UNCLEAR[0]
    post = [LLMPost("0", text, "en")]
    estimate = MINI.cost(estimate_prompt_tokens(build_messages(post), with_aspects=False),
                         max_completion_tokens(post, 40))
    cap = estimate * 1.2  # room for one request's reservation, not for a second after it
    async with running_fake() as fake, llm_node(
            node_settings(tmp_path, fake.base_url, API__PORT=api_port(), LLM__POOL_SIZE="1",
                          LLM__MAX_POSTS_PER_REQUEST="1", LLM__MAX_ATTEMPTS="1",
                          LLM__BREAKER_FAILURES="2", LLM__DAILY_BUDGET_USD=repr(cap)),
            detector) as node, serving(node) as client:

        async def classify(rid: str) -> str | None:
            r = await client.post("/api/classify", json={"text": text, "language": "en",
                                                         "request_id": rid})
            assert r.status_code == 200, r.text
            stored = await node.store.get_result(rid)
            assert stored is not None
            return stored.result.review_reason

        fake.script.extend(["500", "500"])
        assert [await classify(f"u{i}") for i in (1, 2, 3)] == [
            "llm_failed", "llm_failed", "llm_unavailable"]  # two failures open the breaker
        m = await scrape(client)
        assert node_metric(m, "llm_requests_total") == 2 == fake.requests
        assert node_metric(m, "llm_failures_total") == 2
        assert node_metric(m, "llm_breaker_open") == 1
        assert node_metric(m, "llm_spent_today_usd") == 0  # a 500 bills nothing
        assert node_metric(m, "llm_budget_exhausted") == 0
        assert node_metric(m, "llm_budget_exhausted_total") == 0
        assert node_metric(m, "llm_rate_limited_total") == 0
        assert actor_metric(m, "fallback_llm_failed") == 2
        assert actor_metric(m, "fallback_llm_unavailable") == 1
        assert actor_metric(m, "llm_requests") == 0

        await anyio.sleep(0.55)  # breaker_reset_s 0.5: half-open, the next post is its trial
        assert await classify("u4") is None  # decided by the LLM; the breaker closes
        billed = (fake.prompt_tokens * 0.15 + fake.completion_tokens * 0.60) / 1e6
        assert billed > cap - estimate  # so the next reservation cannot fit: the day ends
        assert [await classify("u5"), await classify("u6")] == ["llm_budget", "llm_budget"]
        m = await scrape(client)
        assert node_metric(m, "llm_requests_total") == 3 == fake.requests
        assert node_metric(m, "llm_failures_total") == 2
        assert node_metric(m, "llm_breaker_open") == 0
        assert node_metric(m, "llm_spent_today_usd") == pytest.approx(billed)
        assert node_metric(m, "llm_daily_budget_usd") == pytest.approx(cap)
        assert node_metric(m, "llm_budget_exhausted") == 1
        assert node_metric(m, "llm_budget_exhausted_total") == 1  # one alert, two refusals
        assert node_metric(m, "llm_escalation_share") == pytest.approx(4 / 6)  # u3, u6 refused
        assert actor_metric(m, "escalated") == 4
        assert actor_metric(m, "llm_requests") == 1
        assert actor_metric(m, "llm_decided") == 1
        assert actor_metric(m, "llm_cost_microusd") == round(billed * 1e6)
        assert actor_metric(m, "llm_prompt_tokens") == fake.prompt_tokens
        assert actor_metric(m, "fallback_llm_budget") == 2
