"""Store fixtures: every ``ResultStore`` test can run against SQLite and PostgreSQL.

* ``result_store``: an open store, parametrized over ``sqlite`` and ``postgres`` (a fresh
  database on the shared server per test, dropped afterwards). asyncpg needs asyncio, so the
  ``postgres`` × ``trio`` combination is deselected.
* ``store_handle``: the same, plus ``await handle.open()`` for another store on the same data
  (close / reopen tests) and ``await handle.count(table)``.
* ``postgres_dsn`` / ``private_pg``: from :mod:`tests.pg` (see there).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from sentiflow.stores import ResultStore, SQLiteResultStore
from sentiflow.stores.postgres import PostgresResultStore
from tests.pg import (  # noqa: F401  (pytest fixtures, re-exported)
    postgres_dsn,
    postgres_server,
    private_pg,
    private_pg_cluster,
    temporary_database,
)

STORE_BACKENDS = ("sqlite", "postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop ``postgres`` × ``trio`` items (asyncpg runs on asyncio only) instead of skipping
    each one, so the report lists real skips only."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("store_backend") == "postgres" and params.get("anyio_backend") == "trio":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@dataclass
class StoreHandle:
    """Where a test store lives, to open more stores on it and count rows behind its back."""

    backend: str
    location: str  # sqlite file path or PostgreSQL URL
    opened: list[ResultStore] = field(default_factory=list)

    async def open(self) -> ResultStore:
        store: ResultStore
        if self.backend == "sqlite":
            store = await SQLiteResultStore.open(Path(self.location))
        else:
            store = await PostgresResultStore.open(self.location, pool_size=4)
        self.opened.append(store)
        return store

    async def count(self, table: str) -> int:
        if self.backend == "sqlite":
            with sqlite3.connect(self.location) as db:
                return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        conn = await asyncpg.connect(self.location)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request: pytest.FixtureRequest, anyio_backend: str) -> str:
    backend = str(request.param)
    if backend == "postgres" and anyio_backend != "asyncio":
        pytest.skip("asyncpg runs on asyncio only")
    return backend


@pytest.fixture
def store_location(store_backend: str, tmp_path: Path,
                   request: pytest.FixtureRequest) -> Iterator[str]:
    if store_backend == "sqlite":
        yield str(tmp_path / "results.db")
        return
    server = request.getfixturevalue("postgres_server")
    with temporary_database(server) as url:
        yield url


@pytest.fixture
async def store_handle(store_backend: str, store_location: str) -> AsyncIterator[StoreHandle]:
    handle = StoreHandle(store_backend, store_location)
    try:
        yield handle
    finally:
        await handle.close_all()


@pytest.fixture
async def result_store(store_handle: StoreHandle) -> ResultStore:
    """An open store (closed at teardown), once on SQLite and once on PostgreSQL."""
    return await store_handle.open()
