"""How many results per second the DriftWatcher absorbs (it must keep up with the ResultSink,
which writes ~25k results/s to SQLite in 512-record batches), and the cost of one snapshot.

Compared with the sink's own rate on the same machine is the point: the watcher is fed with
``try_tell`` and drops (logs) batches it cannot take, so it must be faster than the writer.

    .venv/bin/python -m bench.bench_drift            # ~10 s
    .venv/bin/python -m bench.bench_drift --quick    # smoke run
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import numpy as np

from bench._common import print_table, write_results
from sentiflow.actors.drift import CurrentSnapshots, DriftWatcher, summarize_records
from sentiflow.alerts import Alerter
from sentiflow.config.settings import DriftSettings, RouterSettings
from sentiflow.runtime import ActorSystem
from sentiflow.stores.records import ClassificationRequest, ClassificationResult, ResultRecord
from sentiflow.stores.sqlite import SQLiteResultStore

LABELS = ("negative", "neutral", "positive")
LANGS = ("en", "es", "fr", "de", "it", "pt", "ar", "hi", "id", "ms", "ja", "zh")


def make_batches(n_batches: int, size: int) -> list[list[ResultRecord]]:
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    out = []
    for b in range(n_batches):
        batch = []
        for i, (c, lab) in enumerate(zip(rng.uniform(0.34, 1.0, size), rng.integers(0, 3, size),
                                         strict=True)):
            rid = f"{b}-{i}"
            batch.append(ResultRecord(
                request=ClassificationRequest(request_id=rid, text="t"),
                result=ClassificationResult(
                    request_id=rid, sentiment=LABELS[lab], confidence=float(c),  # type: ignore[arg-type]
                    model_used="m:v", model_version="v", language_detected=LANGS[i % 12],
                    latency_ms=1.0, created_at=now + timedelta(microseconds=i))))
        out.append(batch)
    return out


async def run(seconds: float, size: int) -> list[dict[str, object]]:
    batches = make_batches(50, size)
    rows: list[dict[str, object]] = []
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < seconds / 2:
        summarize_records(batches[n % len(batches)], RouterSettings(), 10)
        n += 1
    elapsed = time.perf_counter() - started
    rows.append({"path": "summarize_records (pure)", "batch": size,
                 "records/s": n * size / elapsed, "us/record": elapsed / (n * size) * 1e6})
    with tempfile.TemporaryDirectory() as tmp:
        async with await SQLiteResultStore.open(Path(tmp) / "r.db") as store, \
                ActorSystem() as system:
            settings = DriftSettings(checkpoint_s=3600)
            ref = await system.spawn(lambda: DriftWatcher(store, settings, RouterSettings(),
                                                          Alerter()), "drift")
            started = time.perf_counter()
            n = 0
            while time.perf_counter() - started < seconds / 2:
                await ref.tell(batches[n % len(batches)])
                n += 1
            await ref.ask(CurrentSnapshots(), timeout=60)  # waits for the queue to drain
            elapsed = time.perf_counter() - started
            snap_started = time.perf_counter()
            await ref.tell(batches[0])
            await ref.ask(CurrentSnapshots(), timeout=60)  # one batch + one snapshot write
            snap_s = time.perf_counter() - snap_started
            rows.append({"path": "DriftWatcher actor (tell)", "batch": size,
                         "records/s": n * size / elapsed, "us/record": elapsed / (n * size) * 1e6})
            rows.append({"path": "one batch + snapshot write (12 languages)", "batch": size,
                         "records/s": 0.0, "us/record": snap_s * 1e6})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="1 s smoke run")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    rows = anyio.run(run, seconds, args.batch)
    print_table("DriftWatcher throughput (2 shared cores)", rows)
    write_results("bench_drift_quick" if args.quick else "bench_drift",
                  {"seconds": seconds, "batch": args.batch, "rows": rows})


if __name__ == "__main__":
    main()
