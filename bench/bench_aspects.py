"""Aspect-based sentiment: SemEval-2014 held-out quality and the throughput cost of aspects.

* Quality (needs ../shared/data): extraction P/R/F1 (exact span) and per-aspect polarity
  accuracy / macro-F1 given the gold aspect, per domain, for the windowed default model, the
  target-conditioned model and their blend (the aspect model is trained first if absent).
* Cost: posts/s of the fast path alone (default model on whole posts) vs fast path + aspect
  step (extraction + per-aspect polarity) on the same posts, in the same run.

    .venv/bin/python -m bench.bench_aspects [--quick] [--seconds S]

Writes bench/results/aspects.json (aspects_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench._common import machine, print_table, write_results
from sentiflow.config import paths
from sentiflow.models.aspects.absa_data import available, load_absa
from sentiflow.models.aspects.training import evaluate_active, load_aspect_models, train_aspects
from sentiflow.models.errors import ModelNotFoundError
from sentiflow.models.training import load_or_train_default

MIXED_POSTS = [
    "The product is great but shipping took forever.",
    "Terrible customer service, although the price was excellent.",
    "El producto es excelente, pero el envío fue horrible.",
    "Das Produkt ist super, aber der Versand war katastrophal.",
    "产品很好，但是物流太差了。",
    "The food was delicious and the staff friendly, but the prices are too high.",
    "I just wanted to say hello to everyone today.",  # no aspect
    "Battery life is amazing; the screen is dim and the keyboard feels cheap.",
]


def _rate(fn: Any, texts: list[str], langs: list[str], seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn(texts, langs)
        done += len(texts)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    seconds = 0.5 if args.quick else args.seconds
    data_dir, models_dir = paths.data_dir(), paths.models_dir()
    aspect_dir = paths.home_dir() / "aspect-models"
    backend = load_or_train_default(models_dir, data_dir, progress=True)
    out: dict[str, Any] = {"machine": machine(), "quick": args.quick,
                           "note": "taken on a shared 2-core VM under contention"}

    quality_rows = []
    if available(data_dir):
        try:
            load_aspect_models(aspect_dir)
        except ModelNotFoundError:
            train_aspects(data_dir, aspect_dir, backend, log=print)
        report = evaluate_active(aspect_dir, data_dir, backend)
        out["quality"] = report
        for domain, r in report["heldout"].items():
            e = r["extraction"][report["extraction_mode"]]["exact"]
            for name, p in r["polarity"].items():
                quality_rows.append({
                    "domain": domain, "polarity model": name, "acc": f"{p['accuracy']:.3f}",
                    "macro-F1": f"{p['macro_f1']:.3f}", "ECE": f"{p['ece']:.3f}",
                    "extract P/R/F1": f"{e['precision']:.3f}/{e['recall']:.3f}/{e['f1']:.3f}",
                    "anchor acc": {"restaurant": 0.87, "laptop": 0.84}[domain]})
        print_table("SemEval-2014 held-out (given gold aspects; extraction = "
                    f"{report['extraction_mode']}, exact span)", quality_rows)
    else:
        print(f"no ABSA data under {data_dir}: quality skipped")

    try:
        models = load_aspect_models(aspect_dir)
    except ModelNotFoundError:
        from sentiflow.models.aspects.training import lexicon_only

        models = lexicon_only()
    analyzer = models.analyzer(backend)
    sentences = [s.text for s in load_absa(data_dir, "heldout")][:256] if available(
        data_dir) else []
    posts = (MIXED_POSTS * 8 + sentences)[:64 if args.quick else 256]
    langs = [""] * len(posts)
    detected = [backend.detector.detect_normalized(p).language for p in posts]

    def fast(texts: list[str], languages: list[str]) -> None:
        backend.predict_proba(texts, languages)

    def with_aspects(texts: list[str], languages: list[str]) -> None:
        backend.predict_proba(texts, languages)
        analyzer.analyze(texts, detected)

    base = _rate(fast, posts, langs, seconds)
    full = _rate(with_aspects, posts, langs, seconds)
    n_aspects = sum(len(a) for a in analyzer.analyze(posts, detected))
    cost = [{"path": "fast tier only", "posts/s": f"{base:,.0f}", "aspects/post": "-",
             "slowdown": "1.0x"},
            {"path": "fast tier + aspects", "posts/s": f"{full:,.0f}",
             "aspects/post": f"{n_aspects / len(posts):.2f}",
             "slowdown": f"{base / full:.1f}x"}]
    print_table(f"Throughput, one thread, batches of {len(posts)} posts "
                f"(analyzer {analyzer.name})", cost)
    out["throughput"] = {"posts": len(posts), "fast_posts_per_s": base,
                         "with_aspects_posts_per_s": full,
                         "aspects_per_post": n_aspects / len(posts),
                         "analyzer": analyzer.name}
    path = write_results("aspects_quick" if args.quick else "aspects", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
