"""Result stores side by side: SQLite (embedded) and PostgreSQL, writes and look-ups.

All configurations write the same records (10 % with an aspect) in the same run, through the
``ResultStore`` API as the node's sink calls it (one ``write_results`` call per batch, awaited):

* ``sqlite`` FULL / NORMAL: :class:`SQLiteResultStore` (one transaction per batch, worker thread);
* ``postgres <method>``: :class:`PostgresResultStore` on the server at ``--pg-url`` (a fresh
  database, dropped afterwards), once per bulk-upsert method (``unnest``, ``executemany``,
  ``copy``: see ``sentiflow/stores/pg_bulk.py``) to pick the default by measurement;
* ``sqlite naive``: a plain sqlite3 loop committing each row on its own (what a writer that
  stores each post as it arrives would do), the floor to compare batching against.

Write throughput at batch sizes 1 / 64 / 512, then look-up latency by request_id (p50 / p95)
over the rows written. Run: ``python -m bench.bench_store [--seconds 3] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg

from bench._common import percentile, print_table, write_results
from sentiflow.stores import (
    AspectSentiment,
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
    ResultStore,
    SQLiteResultStore,
)
from sentiflow.stores.pg_bulk import WRITE_METHODS, WriteMethod
from sentiflow.stores.postgres import PostgresResultStore
from sentiflow.stores.sqlite import _UPSERT_RESULT, _result_row

Sync = Literal["NORMAL", "FULL"]
Opener = Callable[[], Awaitable[ResultStore]]
BATCHES = (1, 64, 512)


def make_record(i: int) -> ResultRecord:
    rid = f"bench-{i}"
    now = datetime.now(UTC)
    aspects = (AspectSentiment(aspect_id=f"{rid}#0", result_id=rid, aspect_name="quality",
                               sentiment="positive", confidence=0.9, text_span=(0, 7)),
               ) if i % 10 == 0 else ()
    return ResultRecord(
        request=ClassificationRequest(request_id=rid, text=f"benchmark post {i} " * 8,
                                      source="twitter", topic="bench", received_at=now),
        result=ClassificationResult(request_id=rid, sentiment="positive", confidence=0.91,
                                    model_used="sentiflow-linear", language_detected="en",
                                    latency_ms=1.0, created_at=now, aspects=aspects),
    )


async def bench_writes(store: ResultStore, batch: int, seconds: float, first: int
                       ) -> dict[str, Any]:
    written, lat = 0, []
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        recs = [make_record(first + written + k) for k in range(batch)]
        t = time.perf_counter()
        await store.write_results(recs)
        lat.append((time.perf_counter() - t) * 1000)
        written += batch
    elapsed = time.perf_counter() - start
    return {"results_per_s": written / elapsed, "call_p50_ms": percentile(lat, 50),
            "call_p95_ms": percentile(lat, 95), "written": written}


async def bench_lookups(store: ResultStore, ids: list[int], seconds: float) -> dict[str, Any]:
    rng = random.Random(7)
    lat: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        rid = f"bench-{rng.choice(ids)}"
        t = time.perf_counter()
        found = await store.get_result(rid)
        lat.append((time.perf_counter() - t) * 1000)
        assert found is not None, rid
    return {"lookups": len(lat), "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95)}


async def bench_store(label: str, opener: Opener, seconds: float,
                      writes: list[dict[str, Any]], lookups: list[dict[str, Any]] | None) -> None:
    store = await opener()
    try:
        first = 0
        for batch in BATCHES:
            figures = await bench_writes(store, batch, seconds, first)
            first += figures["written"]
            writes.append({"store": label, "batch": batch, **figures})
        if lookups is not None:
            figures = await bench_lookups(store, list(range(first)), seconds)
            lookups.append({"store": label, "rows": first, **figures})
    finally:
        await store.close()


def bench_naive(path: Path, sync: Sync, seconds: float) -> dict[str, Any]:
    """One INSERT + COMMIT per result into the store's schema."""
    asyncio.run(_create_schema(path, sync))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    written, lat = 0, []
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        row = _result_row(make_record(written))
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute(_UPSERT_RESULT, row)
        conn.execute("COMMIT")
        lat.append((time.perf_counter() - t) * 1000)
        written += 1
    conn.close()
    elapsed = time.perf_counter() - start
    return {"results_per_s": written / elapsed, "call_p50_ms": percentile(lat, 50),
            "call_p95_ms": percentile(lat, 95), "written": written}


async def _create_schema(path: Path, sync: Sync) -> None:
    await (await SQLiteResultStore.open(path, synchronous=sync)).close()


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    writes: list[dict[str, Any]] = []
    lookups: list[dict[str, Any]] = []
    syncs: list[Sync] = ["FULL"] if args.quick else ["FULL", "NORMAL"]
    for sync in syncs:
        path = tmp / f"sqlite-{sync}.db"

        async def open_sqlite(path: Path = path, sync: Sync = sync) -> ResultStore:
            return await SQLiteResultStore.open(path, synchronous=sync)

        await bench_store(f"sqlite {sync}", open_sqlite, args.seconds, writes,
                          lookups if sync == "FULL" else None)
    methods: list[WriteMethod] = list(WRITE_METHODS) if not args.quick else ["unnest"]
    pg_error = None
    for method in methods:
        db = f"sentiflow_bench_{method}_{int(time.time())}"
        base = args.pg_url.rsplit("/", 1)[0]
        try:
            await _admin(args.pg_url, f'CREATE DATABASE "{db}"')
        except (OSError, asyncpg.PostgresError) as exc:
            pg_error = f"PostgreSQL at {args.pg_url} unavailable: {exc}"
            break
        try:
            async def open_pg(url: str = f"{base}/{db}", method: WriteMethod = method
                              ) -> ResultStore:
                return await PostgresResultStore.open(url, pool_size=4, write_method=method)

            await bench_store(f"postgres {method}", open_pg, args.seconds, writes,
                              lookups if method == "unnest" else None)
        finally:
            await _admin(args.pg_url, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return {"writes": writes, "lookups": lookups, "postgres_error": pg_error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per configuration")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 0.5 s per configuration, FULL and unnest only")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server (an admin database URL; a bench database is "
                             "created and dropped there)")
    args = parser.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 0.5)
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        figures = asyncio.run(run(args, Path(tmp)))
        naive = bench_naive(Path(tmp) / "naive.db", "FULL", args.seconds)
    figures["writes"].append({"store": "sqlite naive (1 row/txn)", "batch": 1, **naive})
    print_table("result store writes (results/s; per-call latency in ms)", figures["writes"])
    print_table("look-ups by request_id (ms)", figures["lookups"])
    if figures["postgres_error"]:
        print(f"\n{figures['postgres_error']}")
    name = "bench_store_quick" if args.quick else "bench_store"
    out = write_results(name, {"seconds_per_config": args.seconds, **figures})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
