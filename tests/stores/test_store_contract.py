"""The ``ResultStore`` contract (interface.py), run against every backend: SQLite and PostgreSQL.

Round trips, idempotent upserts, atomic calls, concurrency, batch jobs, webhook state. Tests of
one backend's own behaviour live in test_sqlite_store.py / test_postgres_store.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
    StorageClosedError,
    WebhookAttempt,
)
from tests.stores.conftest import StoreHandle
from tests.stores.samples import T0, batch_requests, record, result_for

pytestmark = pytest.mark.anyio


async def test_store_implements_the_protocol(result_store: ResultStore) -> None:
    assert isinstance(result_store, ResultStore)


async def test_round_trip_keeps_every_field(result_store: ResultStore) -> None:
    recs = [record(i, aspects=i % 3) for i in range(10)]
    await result_store.write_results(recs)
    for rec in recs:
        assert await result_store.get_result(rec.request_id) == rec
    assert await result_store.get_result("missing") is None


async def test_empty_write_is_a_no_op(result_store: ResultStore,
                                      store_handle: StoreHandle) -> None:
    await result_store.write_results([])
    assert await store_handle.count("results") == 0


async def test_extreme_values_round_trip(result_store: ResultStore) -> None:
    rid = "ünï-✓-" + "x" * 200
    rec = ResultRecord(
        request=ClassificationRequest(request_id=rid, text="😀 " * 2000 + "'; DROP TABLE x; --",
                                      topic=None, aspects=True,
                                      received_at=datetime(1999, 12, 31, 23, 59, 59, 999999,
                                                           tzinfo=UTC)),
        result=ClassificationResult(request_id=rid, sentiment="mixed", confidence=1 / 3,
                                    model_used="m", language_detected="zh",
                                    latency_ms=1e-9, created_at=T0, tier="llm",
                                    fast_confidence=0.0),
    )
    await result_store.write_results([rec])
    assert await result_store.get_result(rid) == rec


async def test_naive_datetimes_are_taken_as_utc(result_store: ResultStore) -> None:
    naive = record(1)
    naive = ResultRecord(
        request=ClassificationRequest(request_id="req-1", text="t",
                                      received_at=T0.replace(tzinfo=None)),
        result=naive.result)
    await result_store.write_results([naive])
    stored = await result_store.get_result("req-1")
    assert stored is not None
    assert stored.request.received_at == T0
    assert stored.request.received_at.utcoffset() == timedelta(0)


async def test_aspects_come_back_in_aspect_id_byte_order(result_store: ResultStore) -> None:
    rec = record(5, aspects=12)  # ids req-5#0 .. req-5#11: "#10" sorts before "#2"
    await result_store.write_results([rec])
    stored = await result_store.get_result("req-5")
    assert stored is not None
    expected = tuple(sorted(rec.result.aspects, key=lambda a: a.aspect_id.encode()))
    assert stored.result.aspects == expected


async def test_results_survive_close_and_reopen(store_handle: StoreHandle) -> None:
    store = await store_handle.open()
    await store.write_results([record(1, aspects=2), record(2)])
    await store.close()
    reopened = await store_handle.open()
    assert await reopened.get_result("req-1") == record(1, aspects=2)
    assert await reopened.get_result("req-2") == record(2)


async def test_writing_the_same_request_id_twice_keeps_one_row(
        result_store: ResultStore, store_handle: StoreHandle) -> None:
    await result_store.write_results([record(7, aspects=3)])
    await result_store.write_results([record(7, aspects=3)])
    await result_store.write_results([record(7, sentiment="negative", aspects=1)])
    stored = await result_store.get_result("req-7")
    assert await store_handle.count("results") == 1
    assert await store_handle.count("aspects") == 1  # the rewrite replaced the aspects
    assert stored == record(7, sentiment="negative", aspects=1)


async def test_duplicate_ids_inside_one_batch_collapse(
        result_store: ResultStore, store_handle: StoreHandle) -> None:
    await result_store.write_results([record(1, aspects=2), record(2),
                                      record(1, sentiment="neutral", aspects=1)])
    stored = await result_store.get_result("req-1")
    assert await store_handle.count("results") == 2
    assert stored == record(1, sentiment="neutral", aspects=1)  # the last one wins


async def test_concurrent_writers_all_land(result_store: ResultStore,
                                           store_handle: StoreHandle) -> None:
    async with anyio.create_task_group() as tg:
        for start in range(0, 400, 50):
            tg.start_soon(result_store.write_results,
                          [record(i) for i in range(start, start + 50)])
        tg.start_soon(result_store.get_result, "req-3")
    assert await store_handle.count("results") == 400


async def test_overlapping_concurrent_upserts_leave_one_row_each(
        result_store: ResultStore, store_handle: StoreHandle) -> None:
    # Kafka redelivery: the same posts written by several writers at once.
    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(result_store.write_results, [record(i, aspects=1) for i in range(60)])
    assert await store_handle.count("results") == 60
    assert await store_handle.count("aspects") == 60


async def test_mismatched_request_and_result_is_rejected(
        result_store: ResultStore) -> None:
    bad = ResultRecord(request=record(1).request, result=record(2).result)
    with pytest.raises(ValueError, match="mismatch"):
        await result_store.write_results([record(3), bad])
    assert await result_store.get_result("req-3") is None


async def test_closed_store_refuses_calls(store_handle: StoreHandle) -> None:
    store = await store_handle.open()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StorageClosedError):
        await store.write_results([record(1)])
    with pytest.raises(StorageClosedError):
        await store.get_result("req-1")


async def test_batch_lifecycle(store_handle: StoreHandle) -> None:
    requests = batch_requests(5)
    job = BatchJob(batch_id="b1", count=5, webhook_url="https://example.com/hook",
                   created_at=T0, updated_at=T0)
    store = await store_handle.open()
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
    assert (await store.pending_requests("b1"))[0] == requests[1]
    view = await store.get_batch("b1")
    assert view is not None
    assert [r.request_id for r in view.results] == ["b1-0", "b1-3"]
    assert (view.job.status, view.job.done) == ("running", 2)

    await store.update_batch_progress("b1", done=1)  # progress never goes backwards
    await store.write_results([result_for(q) for q in requests])
    await store.update_batch_progress("b1", done=99, status="completed")
    await store.close()

    store = await store_handle.open()  # and all of it survives a restart
    view = await store.get_batch("b1")
    assert view is not None
    assert (view.job.status, view.job.done, len(view.results)) == ("completed", 5, 5)
    assert await store.unfinished_batches() == []
    assert await store.pending_requests("b1") == []
    with pytest.raises(BatchNotFoundError):
        await store.update_batch_progress("nope", done=1)
    assert await store.get_batch("nope") is None


async def test_batch_results_carry_their_aspects(result_store: ResultStore) -> None:
    requests = batch_requests(3)
    await result_store.create_batch(BatchJob(batch_id="b1", count=3), requests)
    with_aspects = [ResultRecord(request=r.request, result=ClassificationResult(
        request_id=r.request_id, sentiment="negative", confidence=0.7, model_used="m",
        language_detected="en", latency_ms=1.0, created_at=T0,
        aspects=tuple(AspectSentiment(aspect_id=f"{r.request_id}#{k}", result_id=r.request_id,
                                      aspect_name="battery", sentiment="negative",
                                      confidence=0.6, text_span=(0, 4)) for k in range(i))))
        for i, r in enumerate(result_for(q) for q in requests)]
    await result_store.write_results(with_aspects)
    view = await result_store.get_batch("b1")
    assert view is not None
    assert view.results == tuple(with_aspects)


async def test_unfinished_batches_oldest_first(result_store: ResultStore) -> None:
    for i, name in enumerate(["late", "early", "done"]):
        created = T0 + timedelta(minutes=10 - i * 5)
        await result_store.create_batch(
            BatchJob(batch_id=name, count=1, created_at=created, updated_at=created),
            batch_requests(1, name))
    await result_store.update_batch_progress("done", done=1, status="completed")
    assert [j.batch_id for j in await result_store.unfinished_batches()] == ["early", "late"]


async def test_batch_count_must_match_requests(result_store: ResultStore) -> None:
    with pytest.raises(ValueError, match="count=3"):
        await result_store.create_batch(BatchJob(batch_id="b", count=3), batch_requests(2))
    assert await result_store.get_batch("b") is None


async def test_failed_progress_update_keeps_error_and_status(result_store: ResultStore) -> None:
    await result_store.create_batch(BatchJob(batch_id="b", count=2), batch_requests(2, "b"))
    await result_store.update_batch_progress("b", done=1, status="failed", error="boom")
    await result_store.update_batch_progress("b", done=1)
    view = await result_store.get_batch("b")
    assert view is not None
    assert (view.job.status, view.job.error, view.job.done) == ("failed", "boom", 1)
    assert view.job.updated_at > view.job.created_at


async def test_webhook_attempts_drive_delivery_state(result_store: ResultStore) -> None:
    store = result_store
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
    assert view.webhook.last_attempt_at == T0 + timedelta(seconds=11)
    other = await store.get_batch("b2")
    assert other is not None
    assert other.webhook.state == "none"


async def test_overlapping_writers_in_opposite_orders_never_fail(
        result_store: ResultStore, store_handle: StoreHandle) -> None:
    # Two nodes replaying the same partition range in different orders: PostgreSQL would
    # deadlock on row locks taken in opposite orders unless the store orders its writes.
    forward = [record(i, aspects=1) for i in range(200)]
    backward = forward[::-1]
    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(result_store.write_results, forward if n % 2 else backward)
    assert await store_handle.count("results") == 200
    assert await store_handle.count("aspects") == 200


async def test_a_large_batch_job_round_trips(result_store: ResultStore) -> None:
    requests = batch_requests(1000, "big")
    await result_store.create_batch(BatchJob(batch_id="big", count=1000), requests)
    assert await result_store.pending_requests("big") == requests
    await result_store.write_results([result_for(q) for q in requests[::2]])
    assert await result_store.pending_requests("big") == requests[1::2]
