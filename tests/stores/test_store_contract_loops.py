"""The ``ResultStore`` methods of the LLM tier (issue 7; late aspect verdicts, issue 8) and the
drift loop (issue 9), run against every backend (SQLite and PostgreSQL) so both give the same
answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sentiflow.stores import (
    AspectSentiment,
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
)
from sentiflow.stores.errors import ReviewConflictError, ReviewNotFoundError
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import (
    AuditItem,
    AuditLanguage,
    AuditRun,
    DriftSnapshot,
    DriftStats,
    LLMUsage,
    ModelVersionRecord,
    TrainingLabel,
)
from tests.stores.samples import T0, record

pytestmark = pytest.mark.anyio


def at(rid: str, when: datetime, **result: object) -> ResultRecord:
    fields: dict[str, object] = {"sentiment": "positive", "confidence": 0.9, **result}
    return ResultRecord(
        request=ClassificationRequest(request_id=rid, text=f"text {rid}"),
        result=ClassificationResult(request_id=rid, model_used="m:v", language_detected="en",
                                    latency_ms=1.0, created_at=when,
                                    **fields))  # type: ignore[arg-type]


# -- drift loop -------------------------------------------------------------------------------


async def test_drift_snapshots_upsert_filter_and_round_trip(result_store: ResultStore) -> None:
    d1, d2, d3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
    stats = DriftStats(confidence_counts=(1, 2, 3), label_counts=(1, 2, 3), low_confidence=1,
                       confidence_sum=0.1 + 0.2)
    full = DriftSnapshot(snapshot_id="a", day=d1, model_version="v", final=True, count=7,
                         stats=stats, per_language={"en": stats, "日本": stats},
                         bin_edges=(0.5, 0.75, 1.0), drift_score=1e-300,
                         reference_days=(d2, d3), accuracy_estimate=None,
                         timestamp=T0)
    await result_store.write_drift_snapshot(DriftSnapshot(snapshot_id="a", day=d1,
                                                          model_version="v", count=6))
    await result_store.write_drift_snapshot(DriftSnapshot(snapshot_id="c", day=d3,
                                                          model_version="v"))
    await result_store.write_drift_snapshot(DriftSnapshot(snapshot_id="b", day=d2,
                                                          model_version="v"))
    await result_store.write_drift_snapshot(full)
    every = await result_store.drift_snapshots()
    assert [s.snapshot_id for s in every] == ["a", "b", "c"]
    assert every[0] == full
    assert [s.snapshot_id for s in await result_store.drift_snapshots(since=d2)] == ["b", "c"]
    assert [s.snapshot_id for s in await result_store.drift_snapshots(until=d2)] == ["a", "b"]
    assert [s.snapshot_id for s in await result_store.drift_snapshots(since=d2, until=d2)] \
        == ["b"]


async def test_model_versions_upsert_in_creation_order(result_store: ResultStore) -> None:
    later = ModelVersionRecord(version_id="v2", model_type="t", f1_score=0.7,
                               created_at=T0 + timedelta(hours=1))
    v1 = ModelVersionRecord(version_id="v1", model_type="t", f1_score=0.5, created_at=T0)
    await result_store.record_model_version(later)
    await result_store.record_model_version(v1)
    promoted = ModelVersionRecord(version_id="v1", model_type="t", f1_score=0.5,
                                  status="active", created_at=T0, promoted_at=T0,
                                  baseline_version="v0", baseline_f1=0.4, reason="better")
    await result_store.record_model_version(promoted)
    assert await result_store.model_versions() == [promoted, later]


async def test_audit_runs_and_items(result_store: ResultStore) -> None:
    run = AuditRun(run_id="2026-01-01", day=date(2026, 1, 1), share=0.05, started_at=T0,
                   per_language={"en": AuditLanguage(audited=2, agreed=1)})
    await result_store.save_audit_run(run)
    assert await result_store.get_audit_run("2026-01-01") == run
    done = AuditRun(run_id=run.run_id, day=run.day, share=0.05, status="completed",
                    audited=2, agreed=1, started_at=T0, finished_at=T0)
    await result_store.save_audit_run(done)
    assert await result_store.get_audit_run("2026-01-01") == done
    assert await result_store.get_audit_run("nope") is None
    items = [AuditItem(run_id=run.run_id, request_id=f"r{i}", language="en",
                       fast_label="positive", llm_label="negative", agreed=i == 0, at=T0)
             for i in (2, 0, 1)]
    assert await result_store.add_audit_items(items) == 3
    assert await result_store.add_audit_items([*items[1:], items[1]]) == 0  # idempotent
    assert await result_store.add_audit_items([]) == 0
    assert await result_store.audit_items(run.run_id) == sorted(items,
                                                                 key=lambda i: i.request_id)
    assert await result_store.audit_items("other") == []


async def test_iter_results_pages_through_one_day_exactly(result_store: ResultStore) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC)
    inside = [at(f"in-{i:03d}", day + timedelta(seconds=i % 7)) for i in range(23)]
    outside = [at("before", day - timedelta(microseconds=1)), at("after", day + timedelta(days=1))]
    await result_store.write_results(inside + outside)
    pages = [page async for page in result_store.iter_results(day, day + timedelta(days=1),
                                                              page_size=5)]
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    got = [r for p in pages for r in p]
    assert got == sorted(inside, key=lambda r: (r.result.created_at, r.request_id))


# -- LLM tier and review queue ----------------------------------------------------------------


async def test_late_results_never_overwrite_a_persons_label(result_store: ResultStore) -> None:
    await result_store.write_results([at("a", T0, needs_review=True),
                                      at("b", T0, needs_review=True)])
    await result_store.resolve_review("a", "negative", "ann")
    llm = [at("a", T0, tier="llm", llm_sentiment="neutral", llm_confidence=0.8),
           at("b", T0, tier="llm", llm_sentiment="neutral", llm_confidence=0.8),
           at("c", T0, tier="llm")]
    assert await result_store.write_late_results(llm) == 2  # b updated, c inserted
    assert await result_store.write_late_results([]) == 0
    a, b, c = [await result_store.get_result(x) for x in "abc"]
    assert a is not None
    assert (a.result.tier, a.result.sentiment) == ("review", "negative")
    assert b == llm[1]
    assert c == llm[2]


def aspects(rid: str, *labels: tuple[str, str, float]) -> tuple[AspectSentiment, ...]:
    return tuple(AspectSentiment(aspect_id=f"{rid}#{k}", result_id=rid, aspect_name=name,
                                 sentiment=label,  # type: ignore[arg-type]
                                 confidence=conf, text_span=(k, k + 2) if k else None)
                 for k, (name, label, conf) in enumerate(labels))


async def test_late_aspects_replace_the_aspect_rows_but_never_a_persons_label(
        result_store: ResultStore) -> None:
    local = (("price", "positive", 0.9), ("shipping", "neutral", 0.4), ("screen", "neutral", 0.3))
    await result_store.write_results([
        at(rid, T0, needs_review=True, review_reason="aspect_llm_deadline",
           aspects=aspects(rid, *local)) for rid in ("a", "b", "c")])
    await result_store.resolve_review("c", "positive", "ann")
    # a: the LLM makes shipping negative (mixed now) and the screen row goes (fewer aspects);
    # b: listed twice, the last record wins; c: a person's label, kept whole; d: not stored yet.
    late_a = at("a", T0, sentiment="mixed", confidence=0.85, fast_confidence=0.9,
                llm_sentiment="negative", llm_confidence=0.8,
                aspects=aspects("a", ("price", "positive", 0.9), ("shipping", "negative", 0.85)))
    stale_b = at("b", T0, aspects=aspects("b", ("price", "negative", 0.6)))
    late_b = at("b", T0, needs_review=True, review_reason="aspect_llm_low_confidence",
                aspects=aspects("b", ("price", "positive", 0.9), ("shipping", "neutral", 0.3),
                                ("screen", "positive", 0.7)))
    late_c = at("c", T0, sentiment="mixed", aspects=aspects("c", ("price", "negative", 0.99)))
    late_d = at("d", T0, aspects=aspects("d", ("food", "positive", 0.7)))
    assert await result_store.write_late_aspects(
        [late_a, stale_b, late_c, late_d, late_b]) == 3
    assert await result_store.write_late_aspects([]) == 0
    a, b, c, d = [await result_store.get_result(x) for x in "abcd"]
    assert a == late_a  # every field, the aspect rows included (2, not 3)
    assert b == late_b
    assert d == late_d
    assert c is not None
    assert (c.result.tier, c.result.sentiment, c.result.needs_review) == ("review", "positive",
                                                                        False)
    assert [(x.aspect_name, x.sentiment, x.confidence) for x in c.result.aspects] == list(local)
    # The post escalator's late write (no aspects in its records) leaves aspect rows alone.
    assert await result_store.write_late_results([at("a", T0, tier="llm")]) == 1
    again = await result_store.get_result("a")
    assert again is not None
    assert (again.result.tier, again.result.aspects) == ("llm", late_a.result.aspects)
    # Invalid input: nothing of the batch is written.
    bad = ResultRecord(request=ClassificationRequest(request_id="x", text="t"),
                       result=late_d.result)
    with pytest.raises(ValueError, match="mismatch"):
        await result_store.write_late_aspects([at("d", T0), bad])
    assert await result_store.get_result("d") == late_d


async def test_review_queue_resolution_and_labels(result_store: ResultStore) -> None:
    await result_store.write_results([
        at("old", T0, needs_review=True, review_reason="low_confidence"),
        at("new", T0 + timedelta(seconds=1), needs_review=True),
        at("sure", T0),
        at("llm", T0 + timedelta(seconds=2), tier="llm", sentiment="negative",
           confidence=0.7, needs_review=True, fast_sentiment="positive", fast_confidence=0.5),
    ])
    opened = await result_store.review_items("open")
    assert [i.record.request_id for i in opened] == ["old", "new", "llm"]
    assert opened[0].record.result.review_reason == "low_confidence"
    assert [i.record.request_id for i in await result_store.review_items("open", limit=1)] \
        == ["old"]
    with pytest.raises(ValueError, match="limit"):
        await result_store.review_items("open", limit=0)

    item = await result_store.resolve_review("llm", "neutral", "bob")
    r = item.record.result
    assert (item.status, item.label, item.reviewer) == ("resolved", "neutral", "bob")
    assert (r.tier, r.sentiment, r.confidence, r.needs_review) == ("review", "neutral", 1.0,
                                                                   False)
    assert (r.fast_sentiment, r.fast_confidence) == ("positive", 0.5)  # kept
    assert (r.llm_sentiment, r.llm_confidence) == ("negative", 0.7)  # the replaced tier
    assert r.model_used == "review:bob"
    again = await result_store.resolve_review("llm", "neutral", "carol")  # idempotent
    assert (again.reviewer, again.resolved_at) == ("bob", item.resolved_at)
    with pytest.raises(ReviewConflictError):
        await result_store.resolve_review("llm", "positive", "carol")
    with pytest.raises(ReviewNotFoundError):
        await result_store.resolve_review("missing", "positive", "carol")

    await result_store.resolve_review("old", "positive", "ann")
    resolved = await result_store.review_items("resolved")
    assert [i.record.request_id for i in resolved] == ["old", "llm"]  # latest label first
    assert [i.record.request_id for i in await result_store.review_items("open")] == ["new"]
    labels = await result_store.training_labels()
    assert [(lb.request_id, lb.source, lb.label, lb.labeller) for lb in labels] == [
        ("llm", "review", "neutral", "bob"), ("old", "review", "positive", "ann")]


async def test_training_labels_upsert_and_since(result_store: ResultStore) -> None:
    def label(rid: str, source: str, value: str, minutes: int) -> TrainingLabel:
        return TrainingLabel(request_id=rid, text=f"t {rid}", language="en",
                             label=value, source=source,  # type: ignore[arg-type]
                             labeller="gpt", created_at=T0 + timedelta(minutes=minutes))

    await result_store.add_training_labels([label("a", "audit", "positive", 0),
                                            label("b", "audit", "negative", 5),
                                            label("a", "review", "neutral", 10)])
    await result_store.add_training_labels([label("a", "audit", "negative", 1),
                                            label("a", "audit", "neutral", 2)])  # last wins
    await result_store.add_training_labels([])
    every = await result_store.training_labels()
    assert [(lb.request_id, lb.source, lb.label) for lb in every] == [
        ("a", "audit", "neutral"), ("b", "audit", "negative"), ("a", "review", "neutral")]
    assert every[0] == label("a", "audit", "neutral", 2)
    since = await result_store.training_labels(T0 + timedelta(minutes=5))
    assert [lb.request_id for lb in since] == ["b", "a"]


async def test_llm_usage_adds_up_per_day(result_store: ResultStore) -> None:
    day = date(2026, 2, 1)
    assert await result_store.llm_usage(day) == LLMUsage(day=day)
    await result_store.add_llm_usage(LLMUsage(day=day, cost_usd=0.25, requests=1,
                                              prompt_tokens=100, completion_tokens=10, posts=4))
    await result_store.add_llm_usage(LLMUsage(day=day, cost_usd=0.5, requests=2,
                                              prompt_tokens=50, completion_tokens=5, posts=1))
    await result_store.add_llm_usage(LLMUsage(day=date(2026, 2, 2), cost_usd=9.0))
    assert await result_store.llm_usage(day) == LLMUsage(
        day=day, cost_usd=0.75, requests=3, prompt_tokens=150, completion_tokens=15, posts=5)


async def test_plain_records_round_trip_with_new_fields_unset(result_store: ResultStore) -> None:
    await result_store.write_results([record(1)])
    assert await result_store.get_result("req-1") == record(1)
