"""bench/bench_gpu_pipeline.py: its verdicts, and one real --quick run on the CPU.

The run is the command a GPU host runs, with ``--device cpu --model-size tiny --quick``: the
checkpoint is built, loaded by the node through ``classifier.model``, and every phase runs for
real. The numbers are not held to the targets here (a tiny model on a shared CPU), only to
being measured and consistent.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sentiflow.config.paths import data_dir
from tests.ops.test_bench_ops import REPO, bench

QUICK_SECONDS = 1.5


def _phase(name: str, rate: float | None, latencies: list[float], throughput: float,
           **counts: int) -> Any:
    phase = bench("bench_gpu_pipeline").Phase(name, rate, 1.0)
    phase.latencies_ms = latencies
    phase.throughput = throughput
    phase.sent = counts.get("sent", len(latencies))
    phase.completed = counts.get("completed", len(latencies))
    phase.shed = counts.get("shed", 0)
    phase.unfinished = counts.get("unfinished", 0)
    return phase


RAW = [{"batch": 16, "texts_per_s": 800.0}, {"batch": 64, "texts_per_s": 1000.0}]
BACKEND = {"batch": 64, "texts_per_s": 900.0}


def test_verdicts_follow_the_measurements() -> None:
    summarise = bench("bench_gpu_pipeline").summarise
    fast = [10.0] * 95 + [40.0] * 5
    met = summarise(RAW, BACKEND, _phase("closed", None, [], 700.0),
                    _phase("open", 833.0, fast, 833.0))
    assert met["raw_best_texts_per_s"] == 1000.0
    assert met["raw_best_batch"] == 64
    assert met["ratio"] == pytest.approx(0.7)
    assert met["backend_ratio"] == pytest.approx(0.9)
    assert met["targets"]["ratio_met"]
    assert met["targets"]["p95_met"]

    slow = summarise(RAW, BACKEND, _phase("closed", None, [], 690.0),
                     _phase("open", 833.0, [10.0] * 90 + [60.0] * 10, 833.0))
    assert not slow["targets"]["ratio_met"]
    assert slow["open_loop_p95_ms"] == 60.0
    assert not slow["targets"]["p95_met"]

    # A fast p95 over the posts that were answered does not count if some were not.
    shed = summarise(RAW, BACKEND, _phase("closed", None, [], 700.0),
                     _phase("open", 833.0, fast, 800.0, shed=3))
    assert shed["open_loop_p95_ms"] < 50
    assert not shed["targets"]["rate_sustained"]
    assert not shed["targets"]["p95_met"]


@pytest.mark.hf
@pytest.mark.data
def test_quick_cpu_run_measures_every_phase(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if not any((data_dir() / "sentiment").glob("*/test.csv")):
        pytest.skip(f"no sentiment/*/test.csv under {data_dir()}")
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_gpu_pipeline", "--device", "cpu",
         "--model-size", "tiny", "--quick", "--results-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "pipeline / raw" in done.stdout
    record = json.loads((tmp_path / "gpu_pipeline_cpu_tiny_quick.json").read_text())

    assert record["device"] == "cpu"
    assert record["dtype"] == "float32"
    assert record["model_size"] == "tiny"
    node = record["node"]
    # The node loaded the checkpoint through its own HF path (classifier.model = a directory).
    assert node["class"] == "HFBackend"
    assert node["name"].endswith("/model")
    assert node["version"].startswith("sha256-")
    assert node["device"] == "cpu"
    assert node["max_batch_size"] == node["max_batch"]
    assert node["max_length"] == record["max_length"]

    raw = record["raw"]
    assert [row["batch"] for row in raw] == [16, 64]
    assert all(row["texts_per_s"] > 0 and row["batches"] >= 2 for row in raw)
    assert record["raw_best_texts_per_s"] == max(row["texts_per_s"] for row in raw)
    assert record["backend"]["batch"] == node["max_batch"]
    assert record["backend"]["texts_per_s"] > 0
    assert 5 < record["tokens_mean"] < record["max_length"]

    closed, opened = record["pipeline"]["closed"], record["pipeline"]["open"]
    assert closed["errors"] == 0
    assert closed["completed"] == closed["sent"] > 0
    assert closed["texts_per_s"] > 0
    # Hundreds of concurrent submitters: the classifier really batched.
    assert 1 < closed["classifier"]["mean_batch"] <= node["max_batch"]
    assert closed["classifier"]["posts"] >= closed["completed"]

    assert opened["offered_per_s"] == 833.0
    assert opened["sent"] + opened["shed"] == round(833.0 * QUICK_SECONDS)
    assert opened["completed"] + opened["unfinished"] + opened["errors"] == opened["sent"]
    assert opened["p50_ms"] <= opened["p95_ms"] <= opened["p99_ms"]
    assert opened["p50_ms"] > 0

    assert record["pipeline_texts_per_s"] == closed["texts_per_s"]
    assert record["ratio"] == pytest.approx(closed["texts_per_s"]
                                            / record["raw_best_texts_per_s"])
    assert math.isfinite(record["ratio"])
    assert record["ratio"] > 0
    targets = record["targets"]
    assert targets["ratio_met"] == (record["ratio"] >= 0.7)
    assert targets["p95_met"] == (targets["rate_sustained"] and opened["p95_ms"] < 50)
    assert targets["rate_is_target"]
