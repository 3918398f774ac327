"""Store methods of the drift loop on the embedded SQLite store (both anyio backends)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sentiflow.stores.records import (
    AuditItem,
    AuditLanguage,
    AuditRun,
    ClassificationRequest,
    ClassificationResult,
    DriftSnapshot,
    DriftStats,
    ModelVersionRecord,
    ResultRecord,
)
from sentiflow.stores.sqlite import SQLiteResultStore

pytestmark = pytest.mark.anyio


def record(rid: str, at: datetime) -> ResultRecord:
    return ResultRecord(
        request=ClassificationRequest(request_id=rid, text=f"text {rid}"),
        result=ClassificationResult(request_id=rid, sentiment="positive", confidence=0.9,
                                    model_used="m:v", language_detected="en", latency_ms=1.0,
                                    created_at=at))


async def test_snapshots_upsert_and_filter_by_day(tmp_path: Path) -> None:
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store:
        d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
        stats = DriftStats(confidence_counts=(1, 2, 3), label_counts=(1, 2, 3))
        await store.write_drift_snapshot(DriftSnapshot(
            snapshot_id="a", day=d1, model_version="v", count=6, stats=stats,
            per_language={"en": stats}))
        await store.write_drift_snapshot(DriftSnapshot(snapshot_id="b", day=d2,
                                                       model_version="v"))
        await store.write_drift_snapshot(DriftSnapshot(snapshot_id="a", day=d1,
                                                       model_version="v", final=True,
                                                       count=7, stats=stats))
        every = await store.drift_snapshots()
        assert [(s.snapshot_id, s.final, s.count) for s in every] == [("a", True, 7),
                                                                       ("b", False, 0)]
        assert [s.snapshot_id for s in await store.drift_snapshots(since=d2)] == ["b"]
        assert [s.snapshot_id for s in await store.drift_snapshots(until=d1)] == ["a"]
        assert every[0].stats == stats


async def test_model_versions_and_audit_runs(tmp_path: Path) -> None:
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store:
        v1 = ModelVersionRecord(version_id="v1", model_type="t", f1_score=0.5)
        await store.record_model_version(v1)
        await store.record_model_version(ModelVersionRecord(version_id="v1", model_type="t",
                                                            f1_score=0.5, status="active",
                                                            created_at=v1.created_at))
        assert [(v.version_id, v.status) for v in await store.model_versions()] == [
            ("v1", "active")]
        run = AuditRun(run_id="2026-01-01", day=date(2026, 1, 1), share=0.05,
                       per_language={"en": AuditLanguage(audited=2, agreed=1)})
        await store.save_audit_run(run)
        assert await store.get_audit_run("2026-01-01") == run
        assert await store.get_audit_run("nope") is None
        items = [AuditItem(run_id=run.run_id, request_id=f"r{i}", language="en",
                           fast_label="positive", llm_label="negative", agreed=False)
                 for i in range(3)]
        assert await store.add_audit_items(items) == 3
        assert await store.add_audit_items(items[1:]) == 0  # idempotent
        assert [i.request_id for i in await store.audit_items(run.run_id)] == ["r0", "r1", "r2"]


async def test_iter_results_pages_through_one_day_exactly(tmp_path: Path) -> None:
    day = datetime(2026, 3, 1, tzinfo=UTC)
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store:
        inside = [record(f"in-{i:03d}", day + timedelta(seconds=i % 7)) for i in range(23)]
        outside = [record("before", day - timedelta(microseconds=1)),
                   record("after", day + timedelta(days=1))]
        await store.write_results(inside + outside)
        pages = [page async for page in store.iter_results(day, day + timedelta(days=1),
                                                           page_size=5)]
        assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
        ids = [r.request_id for p in pages for r in p]
        assert sorted(ids) == sorted(r.request_id for r in inside)
        assert len(set(ids)) == len(ids)
