"""The embedded SQLite store's own behaviour: disk full, file integrity, the sqlite:// factory.

The backend-neutral contract (round trips, idempotency, batches, ...) runs against SQLite and
PostgreSQL alike in test_store_contract.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from sentiflow.stores import (
    SQLiteResultStore,
    StorageFullError,
    UnsupportedStoreURLError,
    open_result_store,
)
from tests.stores.samples import record

pytestmark = pytest.mark.anyio


def row_count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_full_store_raises_storage_full_and_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    async with await SQLiteResultStore.open(path, max_pages=40) as store:
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


async def test_store_file_is_created_with_its_directories(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "r.db"
    async with await SQLiteResultStore.open(path, synchronous="NORMAL") as store:
        await store.write_results([record(1)])
        assert await store.integrity_check() == "ok"
    assert row_count(path, "results") == 1


async def test_factory_opens_sqlite_and_rejects_unknown(tmp_path: Path) -> None:
    store = await open_result_store(f"sqlite:///{tmp_path / 'f.db'}")
    await store.write_results([record(1)])
    assert await store.get_result("req-1") == record(1)
    await store.close()
    for url in ("mysql://x", "sqlite://relative.db"):
        with pytest.raises(UnsupportedStoreURLError):
            await open_result_store(url)


@pytest.mark.parametrize("budget_s", [0.05, 0.0])
async def test_result_writes_run_on_the_loop_while_cheap_and_stay_durable(
        tmp_path: Path, budget_s: float) -> None:
    path = tmp_path / "r.db"
    async with await SQLiteResultStore.open(path, synchronous="NORMAL",
                                            inline_budget_s=budget_s) as store:
        for i in range(4):
            await store.write_results([record(i)])
        writes = store.result_writes
        assert (writes.inline_calls, writes.thread_calls) == ((4, 0) if budget_s else (0, 4))
        assert await store.get_result("req-3") == record(3)
    assert row_count(path, "results") == 4


async def test_a_full_store_fails_a_write_on_the_loop_and_rolls_it_back(tmp_path: Path) -> None:
    async with await SQLiteResultStore.open(tmp_path / "r.db", max_pages=40,
                                            inline_budget_s=10.0) as store:
        await store.write_results([record(i) for i in range(5)])
        with pytest.raises(StorageFullError):
            await store.write_results([record(i, text="x" * 3000) for i in range(100, 400)])
        assert store.result_writes.thread_calls == 0
        assert await store.get_result("req-100") is None
        assert await store.integrity_check() == "ok"


async def test_a_write_on_the_loop_never_waits_for_another_process_lock(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    async with await SQLiteResultStore.open(path, synchronous="NORMAL",
                                            inline_budget_s=10.0) as store:
        await store.write_results([record(0)])  # measured on the loop: cheap
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as writers:
                    writers.start_soon(store.write_results, [record(1)])
                    await anyio.sleep(0.5)  # the write waits for the lock, in the thread
                    assert ticks >= 20  # and the loop kept running meanwhile
                    other.execute("COMMIT")
            tg.cancel_scope.cancel()
        other.close()
        assert await store.get_result("req-1") == record(1)
        assert store.result_writes.thread_calls == 0  # the loop attempt gave way, not counted


# -- checkpoints: the store's thread, not a commit on the loop -----------------------------------

async def test_checkpoints_run_in_the_checkpointer_thread_not_in_a_commit(tmp_path: Path) -> None:
    """The writer's automatic checkpoint (which would stall the loop inside an inline commit)
    is off; the store's checkpointer moves the WAL into the database shortly after writes."""
    path = tmp_path / "r.db"
    async with await SQLiteResultStore.open(path, inline_budget_s=10.0,
                                            checkpoint_interval_s=0.05) as store:
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        checkpointer = store.checkpointer
        assert checkpointer is not None
        await anyio.sleep(0.2)
        assert checkpointer.checkpoints == 0  # nothing written: nothing to do
        size_before = path.stat().st_size
        await store.write_results([record(i, text="y" * 2000) for i in range(200)])
        with anyio.fail_after(5):
            while checkpointer.checkpoints == 0:  # noqa: ASYNC110 - a thread's counter
                await anyio.sleep(0.02)
        assert path.stat().st_size > size_before + 200 * 2000  # the rows reached the database
        assert await store.get_result("req-199") == record(199, text="y" * 2000)
    assert not checkpointer._thread.is_alive()  # close() stopped it
    assert row_count(path, "results") == 200


def test_a_failed_checkpoint_is_retried_at_the_next_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    import time

    from sentiflow.stores.sqlite_checkpointer import WalCheckpointer

    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        def execute(self, sql: str) -> Flaky:
            self.calls += 1
            if self.calls == 1:
                raise sqlite3.OperationalError("disk I/O error")
            return self

        def fetchall(self) -> list[object]:
            return []

        def close(self) -> None:
            pass

    conn = Flaky()
    checkpointer = WalCheckpointer(lambda: conn, interval_s=0.02)  # type: ignore[arg-type,return-value]
    try:
        checkpointer.wrote()
        deadline = time.monotonic() + 5
        while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        checkpointer.close()
    assert conn.calls == 2
    assert checkpointer.checkpoints == 1
    assert "WAL checkpoint failed" in caplog.text
