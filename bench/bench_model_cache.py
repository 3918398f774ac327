"""The embedded model's per-call cost with warm and with cold CPU caches, stage by stage.

    python -m bench.bench_model_cache

Why: inside the node a 4-post batch took 1.1-1.5 ms on the event loop, three times a tight
loop's figure, and the whole VM's speed moved by ~2x from hour to hour. This shows where that
goes: the same 4-post batches (held-out texts of 12 languages, a different batch per call, the
languages detected beforehand) scored three ways in one run:

* ``warm``: back to back, the peer (what a micro-benchmark of the model alone measures);
* ``after-python``: ~1 MB of unrelated Python objects built and parsed between calls (what the
  API, the actors and the store do between two model calls on the node);
* ``after-sweep``: an 8 MB buffer overwritten between calls (data only, no Python objects).

Each stage of ``predict_proba`` is timed separately: normalisation, n-gram hashing
(``occurrences``), the weight-table gather (``scores``) and the calibrator. If only the gather
slowed down, the table's size would be the cause; if every stage slows alike, it is the caches
as a whole (code and interpreter state included).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench._common import percentile, print_table, write_results
from bench.bench_api import load_texts
from sentiflow.config.settings import load_settings
from sentiflow.models.embedded import EmbeddedLinearBackend
from sentiflow.models.preprocess import normalize_batch
from sentiflow.models.training import load_or_train_default

BATCH = 4
#: ~1 MB of Python objects: 300 small dicts of lists and strings.
JUNK: list[dict[str, Any]] = [{f"k{i}": list(range(50)), "s": "x" * 200} for i in range(300)]
SWEEP = bytearray(8 * 1024 * 1024)


def between_python() -> None:
    for _ in range(3):
        json.loads(json.dumps(JUNK))


def between_sweep() -> None:
    SWEEP[:] = bytes(len(SWEEP))


def between_nothing() -> None:
    return None


def measure(backend: EmbeddedLinearBackend, texts: Sequence[str], calls: int,
            between: Callable[[], None]) -> dict[str, list[float]]:
    """Seconds per stage of ``calls`` batches of ``BATCH`` texts, ``between()`` before each."""
    detector, featurizer = backend.detector, backend.featurizer
    stages: dict[str, list[float]] = {"normalise": [], "occurrences": [], "table gather": [],
                                      "calibrator": [], "predict_proba": []}
    for k in range(calls):
        start = (k * BATCH) % (len(texts) - BATCH)
        batch = list(texts[start:start + BATCH])
        languages = [g.language for g in detector.detect_batch_normalized(normalize_batch(batch))]
        between()
        t0 = time.perf_counter()
        normalized = normalize_batch(batch)
        t1 = time.perf_counter()
        occ = featurizer.occurrences(normalized, languages)
        t2 = time.perf_counter()
        scores = featurizer.scores(occ, backend._table, backend.bias)
        t3 = time.perf_counter()
        backend.calibrator(scores)
        t4 = time.perf_counter()
        for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0),
                                 strict=True):
            stages[name].append(seconds)
    return stages


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600)
    args = parser.parse_args(argv)
    settings = load_settings()
    backend = load_or_train_default(settings.node.home / "models", settings.node.data_dir,
                                    progress=True)
    if not isinstance(backend, EmbeddedLinearBackend):
        raise SystemExit("the default model is not the embedded n-gram model")
    texts = load_texts(settings.node.data_dir)
    modes = {"warm": between_nothing, "after-python": between_python,
             "after-sweep": between_sweep}
    measure(backend, texts, 50, between_nothing)  # first calls: imports, allocator
    rows = []
    for mode, between in modes.items():
        stages = measure(backend, texts, args.calls, between)
        row: dict[str, Any] = {"mode": mode}
        for name, seconds in stages.items():
            row[f"{name} p50 us"] = percentile(seconds, 50) * 1e6
        row["predict_proba p90 us"] = percentile(stages["predict_proba"], 90) * 1e6
        rows.append(row)
    print_table(f"embedded model, batches of {BATCH}, per stage (median)", rows)
    warm = rows[0]["predict_proba p50 us"]
    for row in rows[1:]:
        print(f"{row['mode']}: predict_proba {row['predict_proba p50 us'] / warm:.1f}x warm")
    path = write_results("model_cache", {"batch": BATCH, "calls": args.calls, "rows": rows})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
