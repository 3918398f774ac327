"""The embedded SQLite result store: round trips, durability, idempotency, batches, failures."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from sentiflow.stores import (
    AspectSentiment,
    BatchJob,
    BatchNotFoundError,
    ClassificationRequest,
    ClassificationResult,
    DuplicateBatchError,
    ResultRecord,
    ResultStore,
    SQLiteResultStore,
    StorageClosedError,
    StorageFullError,
    UnsupportedStoreURLError,
    WebhookAttempt,
    open_result_store,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, 12, 0, 0, 123457, tzinfo=UTC)


def record(i: int, *, sentiment: str = "positive", aspects: int = 0,
           text: str | None = None) -> ResultRecord:
    rid = f"req-{i}"
    return ResultRecord(
        request=ClassificationRequest(request_id=rid, text=text or f"post number {i} é ✓",
                                      language="auto", source="twitter", topic="phones",
                                      priority="standard", aspects=aspects > 0,
                                      received_at=T0 + timedelta(microseconds=i)),
        result=ClassificationResult(
            request_id=rid, sentiment=sentiment,  # type: ignore[arg-type]
            confidence=0.5 + (i % 50) / 100, model_used="sentiflow-linear", model_version="v1",
            language_detected="en", latency_ms=1.25, created_at=T0 + timedelta(seconds=i),
            needs_review=i % 2 == 0, fast_confidence=0.4 if i % 3 == 0 else None,
            tier="fast",
            aspects=tuple(AspectSentiment(aspect_id=f"{rid}#{k}", result_id=rid,
                                          aspect_name=f"aspect{k}", sentiment="negative",
                                          confidence=0.9, text_span=(k, k + 3) if k else None)
                          for k in range(aspects)),
        ),
    )


async def open_store(path: Path, **kw: object) -> SQLiteResultStore:
    return await SQLiteResultStore.open(path, **kw)  # type: ignore[arg-type]


def row_count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "r.db") as store:
        recs = [record(i, aspects=i % 3) for i in range(10)]
        await store.write_results(recs)
        for rec in recs:
            assert await store.get_result(rec.request_id) == rec
        assert await store.get_result("missing") is None


async def test_results_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "r.db"
    store: ResultStore = await open_store(path)
    await store.write_results([record(1, aspects=2), record(2)])
    await store.close()
    reopened = await open_store(path)
    try:
        assert await reopened.get_result("req-1") == record(1, aspects=2)
        assert await reopened.get_result("req-2") == record(2)
    finally:
        await reopened.close()


async def test_writing_the_same_request_id_twice_keeps_one_row(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    async with await open_store(path) as store:
        await store.write_results([record(7, aspects=3)])
        await store.write_results([record(7, aspects=3)])
        await store.write_results([record(7, sentiment="negative", aspects=1)])
        stored = await store.get_result("req-7")
    assert row_count(path, "results") == 1
    assert row_count(path, "aspects") == 1  # the rewrite replaced the aspects, not appended
    assert stored == record(7, sentiment="negative", aspects=1)


async def test_duplicate_ids_inside_one_batch_collapse(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    async with await open_store(path) as store:
        await store.write_results([record(1), record(1, sentiment="neutral")])
        stored = await store.get_result("req-1")
    assert row_count(path, "results") == 1
    assert stored is not None
    assert stored.result.sentiment == "neutral"


async def test_concurrent_writers_all_land(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = await open_store(path, synchronous="NORMAL")
    async with store, anyio.create_task_group() as tg:
        for start in range(0, 400, 50):
            tg.start_soon(store.write_results, [record(i) for i in range(start, start + 50)])
        tg.start_soon(store.get_result, "req-3")
    assert row_count(path, "results") == 400


async def test_mismatched_request_and_result_is_rejected(tmp_path: Path) -> None:
    bad = ResultRecord(request=record(1).request, result=record(2).result)
    async with await open_store(tmp_path / "r.db") as store:
        with pytest.raises(ValueError, match="mismatch"):
            await store.write_results([record(3), bad])
        assert await store.get_result("req-3") is None


async def test_full_store_raises_storage_full_and_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    async with await open_store(path, max_pages=40) as store:
        await store.write_results([record(i) for i in range(5)])
        big = "x" * 3000
        with pytest.raises(StorageFullError):
            await store.write_results([record(i, text=big) for i in range(100, 400)])
        # Nothing of the failed batch is visible; earlier data is intact; file is sound.
        assert await store.get_result("req-100") is None
        assert await store.get_result("req-4") == record(4)
        assert await store.integrity_check() == "ok"
        await store.write_results([record(5)])  # a small write still fits and succeeds
        assert await store.get_result("req-5") == record(5)
    assert row_count(path, "results") == 6


async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "r.db")
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StorageClosedError):
        await store.write_results([record(1)])
    with pytest.raises(StorageClosedError):
        await store.get_result("req-1")


def batch_requests(n: int, batch: str = "b1") -> list[ClassificationRequest]:
    return [ClassificationRequest(request_id=f"{batch}-{i}", text=f"t{i}", priority="batch",
                                  received_at=T0) for i in range(n)]


def result_for(q: ClassificationRequest) -> ResultRecord:
    return ResultRecord(request=q, result=ClassificationResult(
        request_id=q.request_id, sentiment="neutral", confidence=0.8, model_used="m",
        language_detected="en", latency_ms=2.0, created_at=T0))


async def test_batch_lifecycle(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    requests = batch_requests(5)
    job = BatchJob(batch_id="b1", count=5, webhook_url="https://example.com/hook",
                   created_at=T0, updated_at=T0)
    async with await open_store(path) as store:
        await store.create_batch(job, requests)
        with pytest.raises(DuplicateBatchError):
            await store.create_batch(job, requests)
        view = await store.get_batch("b1")
        assert view is not None
        assert view.job == job
        assert view.results == ()
        assert view.webhook.state == "pending"
        assert [b.batch_id for b in await store.unfinished_batches()] == ["b1"]

        # Results arrive out of order; get_batch returns them in submission order.
        await store.write_results([result_for(requests[3]), result_for(requests[0])])
        await store.update_batch_progress("b1", done=2, status="running")
        assert [q.request_id for q in await store.pending_requests("b1")] == \
            ["b1-1", "b1-2", "b1-4"]
        view = await store.get_batch("b1")
        assert view is not None
        assert [r.request_id for r in view.results] == ["b1-0", "b1-3"]
        assert (view.job.status, view.job.done) == ("running", 2)

        await store.update_batch_progress("b1", done=1)  # progress never goes backwards
        await store.write_results([result_for(q) for q in requests])
        await store.update_batch_progress("b1", done=99, status="completed")
    async with await open_store(path) as store:  # and all of it survives a restart
        view = await store.get_batch("b1")
        assert view is not None
        assert (view.job.status, view.job.done, len(view.results)) == ("completed", 5, 5)
        assert await store.unfinished_batches() == []
        assert await store.pending_requests("b1") == []
        with pytest.raises(BatchNotFoundError):
            await store.update_batch_progress("nope", done=1)
        assert await store.get_batch("nope") is None


async def test_batch_count_must_match_requests(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "r.db") as store:
        with pytest.raises(ValueError, match="count=3"):
            await store.create_batch(BatchJob(batch_id="b", count=3), batch_requests(2))


async def test_webhook_attempts_drive_delivery_state(tmp_path: Path) -> None:
    async with await open_store(tmp_path / "r.db") as store:
        await store.create_batch(BatchJob(batch_id="b1", count=2, webhook_url="https://x.org/h"),
                                 batch_requests(2))
        await store.create_batch(BatchJob(batch_id="b2", count=1), batch_requests(1, "b2"))

        def attempt(chunk: int, n: int, outcome: str, code: int | None) -> WebhookAttempt:
            return WebhookAttempt(batch_id="b1", chunk_index=chunk, chunk_count=2, attempt=n,
                                  outcome=outcome, status_code=code,  # type: ignore[arg-type]
                                  error=None if code == 200 else f"HTTP {code}",
                                  at=T0 + timedelta(seconds=chunk * 10 + n))

        await store.record_webhook_attempt(attempt(0, 1, "retrying", 500))
        await store.record_webhook_attempt(attempt(0, 2, "delivered", 200))
        view = await store.get_batch("b1")
        assert view is not None
        assert (view.webhook.state, view.webhook.attempts, view.webhook.chunks_delivered,
                view.webhook.chunks_total) == ("delivering", 2, 1, 2)
        assert view.webhook.last_error == "HTTP 500"
        await store.record_webhook_attempt(attempt(1, 1, "delivered", 200))
        view = await store.get_batch("b1")
        assert view is not None
        assert view.webhook.state == "delivered"
        other = await store.get_batch("b2")
        assert other is not None
        assert other.webhook.state == "none"


async def test_factory_opens_sqlite_and_rejects_unknown(tmp_path: Path) -> None:
    store = await open_result_store(f"sqlite:///{tmp_path / 'f.db'}")
    await store.write_results([record(1)])
    assert await store.get_result("req-1") == record(1)
    await store.close()
    for url in ("postgresql://localhost/x", "mysql://x", "sqlite://relative.db"):
        with pytest.raises(UnsupportedStoreURLError):
            await open_result_store(url)
