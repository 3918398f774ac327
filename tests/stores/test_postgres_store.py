"""The PostgreSQL store's own behaviour: migrations, bulk-write methods, error mapping,
connection loss and server restarts (a private cluster), the factory and the settings.

asyncpg runs on asyncio only, so these tests do too (except the one checking that trio is
refused clearly).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import asyncpg
import pytest

from sentiflow.config.settings import ConfigError, Settings, load_settings
from sentiflow.stores import (
    StorageError,
    StorageFullError,
    UnsupportedStoreURLError,
    open_result_store,
)
from sentiflow.stores.errors import InvalidRecordError
from sentiflow.stores.pg_bulk import WRITE_METHODS, WriteMethod
from sentiflow.stores.pg_migrations import (
    Migration,
    MigrationError,
    apply_migrations,
    load_migrations,
)
from sentiflow.stores.pg_url import check_postgres_url, redact_url
from sentiflow.stores.postgres import PostgresResultStore, _storage_error
from tests.net import free_port
from tests.pg import PrivateCluster
from tests.stores.samples import record

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def fetchval(url: str, query: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


# -- migrations -------------------------------------------------------------------------------


def test_migration_files_are_numbered_and_include_the_base_schema() -> None:
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(set(versions))
    assert migrations[0].version == 1
    assert migrations[0].name == "base"
    assert "CREATE TABLE results" in migrations[0].sql


async def test_open_applies_every_migration_once(postgres_dsn: str) -> None:
    async with await PostgresResultStore.open(postgres_dsn, pool_size=2):
        pass
    async with await PostgresResultStore.open(postgres_dsn, pool_size=2):
        pass
    applied = await fetchval(postgres_dsn, "SELECT array_agg(version ORDER BY version) "
                                           "FROM schema_migrations")
    assert applied == [m.version for m in load_migrations()]


async def test_nodes_opening_at_once_do_not_race_on_migrations(postgres_dsn: str) -> None:
    stores: list[PostgresResultStore] = []

    async def open_one() -> None:
        stores.append(await PostgresResultStore.open(postgres_dsn, pool_size=1))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(open_one)
    try:
        await stores[0].write_results([record(1)])
        assert await stores[3].get_result("req-1") == record(1)
    finally:
        for store in stores:
            await store.close()
    count = await fetchval(postgres_dsn, "SELECT count(*) FROM schema_migrations")
    assert count == len(load_migrations())


async def test_late_landing_lower_migration_is_applied_and_edits_are_refused(
        postgres_dsn: str) -> None:
    one = Migration(1, "one", "CREATE TABLE t1 (x int)")
    two = Migration(2, "two", "CREATE TABLE t2 (x int)")
    three = Migration(3, "three", "CREATE TABLE t3 (x int)")
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await apply_migrations(conn, [one, three]) == [1, 3]
        assert await apply_migrations(conn, [one, two, three]) == [2]
        assert await apply_migrations(conn, [one, two, three]) == []
        with pytest.raises(MigrationError, match="0002_two was changed"):
            await apply_migrations(conn, [one, Migration(2, "two", "CREATE TABLE t2 (y int)")])
        # A failing migration leaves no trace (its own transaction) and is retried next time.
        bad = Migration(4, "bad", "CREATE TABLE t4 (x int); SELECT 1/0")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await apply_migrations(conn, [one, two, three, bad])
        assert await conn.fetchval("SELECT to_regclass('t4')") is None
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 3
    finally:
        await conn.close()


# -- writes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", WRITE_METHODS)
async def test_every_bulk_write_method_upserts_the_same(postgres_dsn: str,
                                                        method: WriteMethod) -> None:
    async with await PostgresResultStore.open(postgres_dsn, pool_size=2,
                                              write_method=method) as store:
        first = [record(i, aspects=i % 3) for i in range(300)]
        await store.write_results(first)
        again = [record(i, sentiment="negative", aspects=(i + 1) % 3) for i in range(0, 300, 2)]
        await store.write_results([*again, record(1000), record(1000, sentiment="neutral")])
        await store.write_results([record(5)])  # a batch of one
        for i in range(300):
            expected = (record(5) if i == 5 else
                        record(i, sentiment="negative", aspects=(i + 1) % 3) if i % 2 == 0
                        else record(i, aspects=i % 3))
            assert await store.get_result(f"req-{i}") == expected
        assert await store.get_result("req-1000") == record(1000, sentiment="neutral")
    assert await fetchval(postgres_dsn, "SELECT count(*) FROM results") == 301


async def test_a_failing_statement_rolls_back_the_whole_batch(postgres_dsn: str) -> None:
    async with await PostgresResultStore.open(postgres_dsn, pool_size=2) as store:
        await store.write_results([record(1)])
        conn = await asyncpg.connect(postgres_dsn)
        try:  # the server refuses one row of the batch: the others must not stay
            await conn.execute("ALTER TABLE results ADD CONSTRAINT no_13 "
                               "CHECK (request_id <> 'req-13')")
        finally:
            await conn.close()
        with pytest.raises(StorageError, match="no_13") as caught:
            await store.write_results([record(i, aspects=1) for i in range(10, 20)])
        assert not isinstance(caught.value.__cause__, StorageError)
        assert await store.get_result("req-10") is None
        assert await store.get_result("req-1") == record(1)
    assert await fetchval(postgres_dsn, "SELECT count(*) FROM aspects") == 0


async def test_nul_characters_are_refused_before_writing(postgres_dsn: str) -> None:
    async with await PostgresResultStore.open(postgres_dsn, pool_size=1) as store:
        with pytest.raises(InvalidRecordError, match="NUL"):
            await store.write_results([record(1), record(2, text="bad\x00text")])
        assert await store.get_result("req-1") is None


def test_disk_full_maps_to_storage_full() -> None:
    error = _storage_error(asyncpg.DiskFullError("could not extend file"), "writing")
    assert isinstance(error, StorageFullError)
    lost = _storage_error(asyncpg.ConnectionDoesNotExistError("gone"), "writing")
    assert type(lost) is StorageError
    assert "database unavailable" in str(lost)


# -- connections ------------------------------------------------------------------------------


async def test_killed_connections_are_replaced_without_a_failed_call(postgres_dsn: str) -> None:
    async with await PostgresResultStore.open(postgres_dsn, pool_size=3) as store:
        async with anyio.create_task_group() as tg:  # warm several pooled connections
            for i in range(6):
                tg.start_soon(store.write_results, [record(i)])
        killed = await fetchval(
            postgres_dsn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert isinstance(killed, int)
        assert killed >= 1
        await anyio.sleep(0.1)
        for i in range(6, 12):  # every call succeeds: dead connections are retried once
            await store.write_results([record(i)])
        assert await store.get_result("req-11") == record(11)


async def test_store_rides_out_a_server_restart(private_pg: PrivateCluster) -> None:
    url = private_pg.create_database()
    async with await PostgresResultStore.open(url, pool_size=3,
                                              connect_timeout_s=2) as store:
        await store.write_results([record(i) for i in range(10)])
        private_pg.stop()
        with anyio.fail_after(10):  # down: fails fast and clearly, never hangs
            with pytest.raises(StorageError, match="database unavailable"):
                await store.write_results([record(10)])
            with pytest.raises(StorageError):
                await store.get_result("req-1")
        private_pg.start()
        await store.write_results([record(10)])  # back: the pool reconnects by itself
        assert await store.get_result("req-10") == record(10)
        private_pg.restart()  # restarted while idle: not a single call fails
        assert await store.get_result("req-3") == record(3)
        await store.write_results([record(11)])
    assert await fetchval(url, "SELECT count(*) FROM results") == 12


async def test_writer_retrying_through_a_crash_loses_and_duplicates_nothing(
        private_pg: PrivateCluster) -> None:
    """A writer that retries failed batches (what the sink's callers do) while the server is
    killed mid-stream: afterwards every record is stored exactly once."""
    url = private_pg.create_database()
    total, batch = 3000, 100
    async with await PostgresResultStore.open(url, pool_size=2, connect_timeout_s=2) as store:

        async def writer() -> int:
            failures = 0
            for start in range(0, total, batch):
                chunk = [record(i, aspects=1) for i in range(start, start + batch)]
                while True:
                    try:
                        await store.write_results(chunk)
                        break
                    except StorageError:
                        failures += 1
                        await anyio.sleep(0.05)
            return failures

        failures: list[int] = []
        async with anyio.create_task_group() as tg:
            async def run_writer() -> None:
                failures.append(await writer())

            tg.start_soon(run_writer)
            await anyio.sleep(0.3)
            await anyio.to_thread.run_sync(private_pg.kill)
            await anyio.sleep(0.3)
            await anyio.to_thread.run_sync(private_pg.start)
    assert await fetchval(url, "SELECT count(*) FROM results") == total
    assert await fetchval(url, "SELECT count(*) FROM aspects") == total
    assert await fetchval(url, "SELECT count(DISTINCT request_id) FROM results") == total


# -- opening: factory, URLs, settings, event loop ----------------------------------------------


async def test_factory_opens_postgres_urls(postgres_dsn: str) -> None:
    for url in (postgres_dsn, postgres_dsn.replace("postgresql://", "postgres://", 1)):
        store = await open_result_store(url, pg_pool_size=1)
        try:
            assert isinstance(store, PostgresResultStore)
            await store.write_results([record(1)])
            assert await store.get_result("req-1") == record(1)
        finally:
            await store.close()


async def test_unreachable_server_fails_fast_with_storage_error() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    with anyio.fail_after(10), pytest.raises(StorageError, match="connecting"):
        await open_result_store(url, pg_connect_timeout_s=2)


async def test_missing_database_is_a_storage_error(postgres_server: str) -> None:
    url = postgres_server.rsplit("/", 1)[0] + "/sentiflow_no_such_db_x"
    with pytest.raises(StorageError, match="does not exist"):
        await open_result_store(url)


def test_urls_are_checked_and_passwords_redacted(tmp_path: Path) -> None:
    assert check_postgres_url("postgresql://u@h:5432/db") == "postgresql://u@h:5432/db"
    assert check_postgres_url("postgres:///db?host=/run/postgresql")
    for bad in ("postgresql://h:notaport/db", "postgresql://h/db#x", "postgresql://h/d b"):
        with pytest.raises(ValueError, match="PostgreSQL URL"):
            check_postgres_url(bad)
    assert redact_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"

    def settings(url: str) -> Settings:
        return load_settings(None, env={"SENTIFLOW_NODE__HOME": str(tmp_path),
                                        "SENTIFLOW_STORAGE__RESULTS_URL": url,
                                        "SENTIFLOW_STORAGE__PG_POOL_SIZE": "4"})

    loaded = settings("postgresql://u:s3cret@db.internal:5432/sentiflow")
    assert loaded.storage.results_url == "postgresql://u:s3cret@db.internal:5432/sentiflow"
    assert loaded.storage.pg_pool_size == 4
    shown = loaded.masked_dump()
    assert shown["storage"]["results_url"] == "postgresql://u:***@db.internal:5432/sentiflow"
    with pytest.raises(ConfigError, match="results_url"):
        settings("postgresql://db:port/x")


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_is_refused_clearly(anyio_backend: str) -> None:
    with pytest.raises(UnsupportedStoreURLError, match="asyncio"):
        await open_result_store("postgresql://postgres@127.0.0.1:5432/postgres")

