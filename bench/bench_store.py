"""Bulk write throughput of the embedded result store vs a naive one-row-per-transaction peer.

Both write the same records into the same schema on the same disk, in the same run:

* ``embedded``: :class:`SQLiteResultStore.write_results`, one transaction per batch
  (executemany upsert), through anyio's worker thread as the node uses it;
* ``naive``: a plain sqlite3 loop committing every row on its own (what a writer that stores
  each post as it arrives would do).

Run: ``python -m bench.bench_store [--seconds 3] [--synchronous FULL|NORMAL|both]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio

from bench._common import percentile, print_table, write_results
from sentiflow.stores import (
    AspectSentiment,
    ClassificationRequest,
    ClassificationResult,
    ResultRecord,
    SQLiteResultStore,
)
from sentiflow.stores.sqlite import _UPSERT_RESULT, _result_row

Sync = Literal["NORMAL", "FULL"]


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


async def bench_embedded(path: Path, sync: Sync, batch: int, seconds: float) -> dict[str, Any]:
    store = await SQLiteResultStore.open(path, synchronous=sync)
    written, i, lat = 0, 0, []
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    try:
        while time.perf_counter() < deadline:
            recs = [make_record(i + k) for k in range(batch)]
            i += batch
            t = time.perf_counter()
            await store.write_results(recs)
            lat.append((time.perf_counter() - t) * 1000)
            written += batch
    finally:
        await store.close()
    elapsed = time.perf_counter() - start
    return {"results_per_s": written / elapsed, "batch_p50_ms": percentile(lat, 50),
            "batch_p95_ms": percentile(lat, 95), "written": written}


def bench_naive(path: Path, sync: Sync, seconds: float) -> dict[str, Any]:
    # Same schema (created by the store), one INSERT + COMMIT per result.
    anyio.run(_create_schema, path, sync)
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
    return {"results_per_s": written / elapsed, "batch_p50_ms": percentile(lat, 50),
            "batch_p95_ms": percentile(lat, 95), "written": written}


async def _create_schema(path: Path, sync: Sync) -> None:
    await (await SQLiteResultStore.open(path, synchronous=sync)).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per configuration")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL", "both"], default="both")
    args = parser.parse_args()
    syncs: list[Sync] = ["FULL", "NORMAL"] if args.synchronous == "both" else [args.synchronous]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        for sync in syncs:
            for batch in (64, 512):
                path = Path(tmp) / f"embedded-{sync}-{batch}.db"
                figures = anyio.run(bench_embedded, path, sync, batch, args.seconds)
                rows.append({"store": "embedded", "synchronous": sync, "batch": batch, **figures})
            naive = bench_naive(Path(tmp) / f"naive-{sync}.db", sync, args.seconds)
            rows.append({"store": "naive (1 row/txn)", "synchronous": sync, "batch": 1, **naive})
    print_table("result store bulk writes (results/s; per-call latency in ms)", rows)
    out = write_results("bench_store", {"seconds_per_config": args.seconds, "rows": rows})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
