"""The review queue: the store's methods (SQLite, both anyio backends) and the HTTP round trip,
with the LLM tier off and on (asyncio: Quart on Hypercorn, the fake OpenAI server)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sentiflow.models.langid import LanguageDetector
from sentiflow.stores.errors import ReviewConflictError, ReviewNotFoundError
from sentiflow.stores.records import (
    ClassificationRequest,
    ClassificationResult,
    LLMUsage,
    ResultRecord,
    TrainingLabel,
)
from sentiflow.stores.sqlite import SQLiteResultStore
from tests.llm.fake_openai import FakeLLM, label_of, running_fake
from tests.llm.nodes import CLEAR, UNCLEAR, api_port, llm_node, node_settings
from tests.net import serving

pytestmark = pytest.mark.anyio


def record(rid: str, *, tier: str = "fast", needs_review: bool = True,
           sentiment: str = "neutral", confidence: float = 0.5) -> ResultRecord:
    return ResultRecord(
        request=ClassificationRequest(request_id=rid, text=f"text of {rid}"),
        result=ClassificationResult(
            request_id=rid, sentiment=sentiment, confidence=confidence,  # type: ignore[arg-type]
            model_used="m:1", language_detected="en", latency_ms=1.0, model_version="1",
            tier=tier, needs_review=needs_review,  # type: ignore[arg-type]
            review_reason="low_confidence" if needs_review else None))


async def test_review_store_round_trip(tmp_path: Path) -> None:
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store:
        await store.write_results([record("a"), record("b", needs_review=False),
                                   record("c", tier="llm", sentiment="positive")])
        assert [i.record.request_id for i in await store.review_items("open")] == ["a", "c"]
        item = await store.resolve_review("a", "negative", "alice")
        assert item.status == "resolved"
        assert item.label == "negative"
        assert item.reviewer == "alice"
        r = item.record.result
        assert r.tier == "review"
        assert r.sentiment == "negative"
        assert not r.needs_review
        assert r.fast_sentiment == "neutral"
        assert r.fast_confidence == 0.5
        again = await store.resolve_review("a", "negative", "bob")  # idempotent
        assert again.reviewer == "alice"
        assert again.resolved_at == item.resolved_at
        with pytest.raises(ReviewConflictError):
            await store.resolve_review("a", "positive", "bob")
        with pytest.raises(ReviewNotFoundError):
            await store.resolve_review("nope", "positive", "bob")
        llm = await store.resolve_review("c", "neutral", "bob")
        assert llm.record.result.llm_sentiment == "positive"
        assert [i.record.request_id for i in await store.review_items("open")] == []
        assert {i.record.request_id for i in await store.review_items("resolved")} == {"a", "c"}
        labels = await store.training_labels()
        assert [(x.request_id, x.label, x.source) for x in labels] == [
            ("a", "negative", "review"), ("c", "neutral", "review")]
        # audit labels (drift helper) go beside review labels, keyed on (id, source)
        await store.add_training_labels([TrainingLabel(
            request_id="a", text="text of a", language="en", label="positive", source="audit",
            labeller="gpt-4o-mini")])
        assert len(await store.training_labels()) == 3
        future = datetime.now(UTC) + timedelta(days=1)
        assert await store.training_labels(since=future) == []
        # a late LLM answer never overrides a person's label
        written = await store.write_late_results([record("a", tier="llm", needs_review=False,
                                                         sentiment="positive")])
        assert written == 0
        stored = await store.get_result("a")
        assert stored is not None
        assert stored.result.sentiment == "negative"
        assert await store.write_late_results([record("b", tier="llm", needs_review=False)]) == 1


async def test_llm_usage_adds_up_per_day(tmp_path: Path) -> None:
    async with await SQLiteResultStore.open(tmp_path / "u.db") as store:
        day = date(2026, 3, 1)
        assert (await store.llm_usage(day)).cost_usd == 0
        await store.add_llm_usage(LLMUsage(day=day, cost_usd=0.5, requests=1, posts=3))
        await store.add_llm_usage(LLMUsage(day=day, cost_usd=0.25, requests=2, posts=1,
                                           prompt_tokens=10, completion_tokens=5))
        usage = await store.llm_usage(day)
        assert usage.cost_usd == pytest.approx(0.75)
        assert usage.requests == 3
        assert usage.posts == 4
        assert usage.prompt_tokens == 10
        assert (await store.llm_usage(date(2026, 3, 2))).requests == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_review_round_trip_through_the_http_api(
        tmp_path: Path, detector: LanguageDetector, anyio_backend: str) -> None:
    settings = node_settings(tmp_path, None, API__PORT=api_port())  # LLM tier off
    async with llm_node(settings, detector) as node, serving(node) as client:
        low = await client.post("/api/classify", json={"text": UNCLEAR[0],
                                                       "request_id": "low-1"})
        high = await client.post("/api/classify", json={"text": CLEAR[0],
                                                        "request_id": "high-1"})
        assert low.status_code == high.status_code == 200
        r = await client.get("/api/review", params={"status": "open", "limit": "10"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [i["request_id"] for i in body["items"]] == ["low-1"]
        assert body["count"] == 1
        item = body["items"][0]
        assert item["reason"] == "low_confidence"
        assert item["fast"]["confidence"] == pytest.approx(0.4)
        assert item["text"] == UNCLEAR[0]
        assert item["llm"] is None
        assert item["status"] == "open"
        r = await client.post("/api/review/low-1", json={"label": "neutral",
                                                         "reviewer": "alice"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "resolved"
        assert r.json()["label"] == "neutral"
        assert (await client.post("/api/review/low-1", json={
            "label": "neutral", "reviewer": "alice"})).status_code == 200
        conflict = await client.post("/api/review/low-1", json={"label": "positive",
                                                                "reviewer": "bob"})
        assert conflict.status_code == 409
        assert conflict.json()["error"] == "conflict"
        missing = await client.post("/api/review/nope", json={"label": "neutral",
                                                              "reviewer": "alice"})
        assert missing.status_code == 404
        assert set(missing.json()) == {"error", "detail"}
        for bad in ({"label": "great", "reviewer": "a"}, {"label": "neutral"},
                    {"label": "neutral", "reviewer": " "}, {"label": "neutral", "reviewer": "a",
                                                            "x": 1}):
            r = await client.post("/api/review/low-1", json=bad)
            assert r.status_code == 422, (bad, r.text)
        r = await client.post("/api/review/low-1", content=b"{nope",
                              headers={"content-type": "application/json"})
        assert r.status_code == 400
        surrogate = await client.post(  # valid JSON syntax, not valid Unicode: the schema's 422
            "/api/review/low-1", content=b'{"label": "neutral", "reviewer": "a\\ud800"}',
            headers={"content-type": "application/json"})
        assert surrogate.status_code == 422, surrogate.text
        for params in ({"status": "closed"}, {"limit": "0"}, {"limit": "x"}, {"foo": "1"}):
            r = await client.get("/api/review", params=params)
            assert r.status_code == 422
            assert set(r.json()) == {"error", "detail"}
        assert (await client.get("/api/review")).json()["items"] == []
        resolved = (await client.get("/api/review", params={"status": "resolved"})).json()
        assert resolved["items"][0]["reviewer"] == "alice"
        assert resolved["items"][0]["fast"]["sentiment"] == "neutral"
        result = (await client.get("/api/results/low-1")).json()
        assert result["model_used"] == "review:alice"
        assert result["sentiment"] == "neutral"
        labels = await node.store.training_labels()
        assert [(x.request_id, x.label, x.labeller) for x in labels] == [
            ("low-1", "neutral", "alice")]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_review_round_trip_with_the_llm_tier_on_keeps_both_opinions(
        tmp_path: Path, detector: LanguageDetector, anyio_backend: str) -> None:
    """The LLM answers but is itself unsure (0.3 < ``llm.min_llm_confidence`` 0.5): the item
    carries the fast and the LLM opinion over HTTP, and a person's label settles it."""
    async with running_fake(FakeLLM(confidence=0.3)) as fake, llm_node(
            node_settings(tmp_path, fake.base_url, API__PORT=api_port()), detector) as node, \
            serving(node) as client:
        r = await client.post("/api/classify", json={"text": UNCLEAR[1], "language": "en",
                                                     "request_id": "both-1"})
        assert r.status_code == 200, r.text
        assert (r.json()["model_used"], r.json()["confidence"]) == ("gpt-4o-mini", 0.3)
        assert fake.posts == [UNCLEAR[1]]
        body = (await client.get("/api/review", params={"status": "open"})).json()
        assert [i["request_id"] for i in body["items"]] == ["both-1"]
        item = body["items"][0]
        assert (item["reason"], item["tier"], item["model_used"]) == (
            "llm_low_confidence", "llm", "gpt-4o-mini")
        assert item["fast"] == {"sentiment": "neutral", "confidence": pytest.approx(0.4),
                                "model": "t1"}
        assert item["llm"] == {"sentiment": label_of(UNCLEAR[1]), "confidence": 0.3,
                               "model": "gpt-4o-mini"}
        r = await client.post("/api/review/both-1", json={"label": "negative",
                                                          "reviewer": "alice"})
        assert r.status_code == 200, r.text
        resolved = r.json()
        assert (resolved["status"], resolved["label"], resolved["reviewer"]) == (
            "resolved", "negative", "alice")
        assert resolved["fast"]["confidence"] == pytest.approx(0.4)  # both opinions kept
        assert (resolved["llm"]["sentiment"], resolved["llm"]["confidence"]) == (
            label_of(UNCLEAR[1]), 0.3)
        assert (await client.get("/api/review")).json()["items"] == []
        result = (await client.get("/api/results/both-1")).json()
        assert (result["sentiment"], result["confidence"], result["model_used"]) == (
            "negative", 1.0, "review:alice")
        labels = await node.store.training_labels()
        assert [(x.request_id, x.text, x.label, x.source, x.labeller) for x in labels] == [
            ("both-1", UNCLEAR[1], "negative", "review", "alice")]
