"""HFBackend vs ``transformers.pipeline("text-classification")``: texts/s at batch 1, 8, 32, 128.

Both run the same random-weight checkpoints (a tiny DistilBERT and a DistilBERT-sized one,
``DistilBertConfig()`` defaults), the same tokenizer, the same texts and the same device, in one
process, one after the other, with ``max_length`` truncation for both. Random weights cost the
same FLOPs as trained ones, and nothing can be downloaded here.

Two ways of calling are measured:

* ``calls``: the caller hands over batches of ``batch`` texts (what the classifier actor does with
  its micro-batches); the backend gets ``predict_proba(batch)``, the pipeline
  ``pipe(batch, batch_size=batch)``.
* ``bulk``: the whole text list in one call with ``max_batch_size=batch`` / ``batch_size=batch``;
  here the backend's length sorting can group similar lengths, the pipeline keeps arrival order.

The tokenizer is a WordPiece vocabulary trained at run time on the benchmark texts (tweet-length
posts from ``$SENTIFLOW_DATA_DIR/sentiment/*/test.csv`` when present, generated otherwise), so
token counts are close to a real tweet model's. Nothing is written to the repository but the
JSON result.

    python -m bench.bench_hf_backend                  # CPU, 1 torch thread, ~2.5 minutes
    python -m bench.bench_hf_backend --device cuda    # fp16 on the first GPU
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import print_table, write_results
from sentiflow.config.paths import data_dir
from sentiflow.models.devices import resolve_device
from sentiflow.models.hf_backend import HFBackend
from tests.hf_checkpoints import save_checkpoint

_WORDS = (
    "good", "bad", "great", "awful", "love", "hate", "movie", "game", "phone", "service", "today",
    "again", "never", "always", "really", "so", "very", "not", "the", "a", "this", "that", "my",
    "your", "people", "time", "day", "night", "new", "old",
)


def read_split(split: str) -> list[str]:
    """Every text of ``sentiment/*/<split>.csv`` under the data directory (empty if absent)."""
    texts: list[str] = []
    for path in sorted((data_dir() / "sentiment").glob(f"*/{split}.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            texts.extend(row["text"] for row in csv.DictReader(fh) if row.get("text"))
    return texts


def load_texts(count: int, seed: int = 0) -> tuple[list[str], list[str], str]:
    """``count`` benchmark texts, a disjoint corpus to train the vocabulary on, their source."""
    rng = random.Random(seed)
    texts, corpus = read_split("test"), read_split("train")
    if texts and corpus:
        source = f"sentiment/*/test.csv under {data_dir()} (vocabulary from train.csv)"
    else:
        def generate() -> str:
            return " ".join(rng.choices(_WORDS, k=rng.randint(4, 40)))
        texts = [generate() for _ in range(count)]
        corpus = [generate() for _ in range(2000)]
        source = "generated"
    rng.shuffle(texts)
    return (texts * (count // len(texts) + 1))[:count], corpus, source


def build_checkpoint(directory: Path, corpus: Sequence[str], size: str) -> Path:
    """A random-weight DistilBERT classifier with a WordPiece tokenizer trained on ``corpus``
    (``size``: ``tiny``, or ``base`` = the ``DistilBertConfig()`` defaults, 66M parameters)."""
    return save_checkpoint(directory, corpus=corpus,
                           size="tiny" if size == "tiny" else "distilbert")


def texts_per_second(run: Callable[[], object], n_texts: int) -> float:
    start = time.perf_counter()
    run()
    return n_texts / (time.perf_counter() - start)


def make_pipeline(checkpoint: Path, device: str) -> Any:
    """The peer: a stock text-classification pipeline over the same weights, dtype and device."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    network = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    network = network.to(device=device, dtype=dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    return pipeline("text-classification", model=network, tokenizer=tokenizer, device=device)


def pipeline_probs(outputs: Sequence[Sequence[dict[str, Any]]]) -> np.ndarray[Any, Any]:
    """Pipeline output (``top_k=None``) as an (n, 3) matrix in LABEL_0..2 order."""
    return np.array([[next(s["score"] for s in row if s["label"] == f"LABEL_{k}")
                      for k in range(3)] for row in outputs])


def bench_model(size: str, checkpoint: Path, pool: list[str], device: str,
                batch_sizes: Sequence[int], max_length: int, n_texts: int,
                repeats: int) -> list[dict[str, Any]]:
    """Rows for one model; each figure is the best of ``repeats`` interleaved runs."""
    pipe = make_pipeline(checkpoint, device)
    call_kwargs = {"truncation": True, "max_length": max_length, "top_k": None}
    reference = HFBackend(checkpoint, device=device, max_length=max_length)
    rows: list[dict[str, Any]] = []
    for batch in batch_sizes:
        texts = pool[:max(n_texts, batch)]
        backend = HFBackend(checkpoint, device=device, max_batch_size=batch,
                            max_length=max_length)
        backend.predict_proba(texts[:batch], ["und"] * batch)  # warm-up, both sides
        pipe(texts[:batch], batch_size=batch, **call_kwargs)
        chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]

        def ours_calls(backend: HFBackend = backend, chunks: list[list[str]] = chunks) -> None:
            for chunk in chunks:
                backend.predict_proba(chunk, ["und"] * len(chunk))

        def theirs_calls(batch: int = batch, chunks: list[list[str]] = chunks) -> None:
            for chunk in chunks:
                pipe(chunk, batch_size=batch, **call_kwargs)

        def ours_bulk(backend: HFBackend = backend, texts: list[str] = texts) -> None:
            backend.predict_proba(texts, ["und"] * len(texts))

        def theirs_bulk(batch: int = batch, texts: list[str] = texts) -> None:
            pipe(texts, batch_size=batch, **call_kwargs)

        modes: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
            "calls": (ours_calls, theirs_calls)}
        if len(texts) > batch > 1:  # otherwise identical to "calls"
            modes["bulk"] = (ours_bulk, theirs_bulk)
        for mode, (ours, theirs) in modes.items():
            ours_best = theirs_best = 0.0
            for _ in range(repeats):
                ours_best = max(ours_best, texts_per_second(ours, len(texts)))
                theirs_best = max(theirs_best, texts_per_second(theirs, len(texts)))
            rows.append({"model": size, "mode": mode, "batch": batch, "texts": len(texts),
                         "hf_backend_tps": ours_best, "pipeline_tps": theirs_best,
                         "speedup": ours_best / theirs_best})
            print(f"  {size:5s} {mode:5s} batch={batch:<4d} ours {ours_best:9.1f}/s  "
                  f"pipeline {theirs_best:9.1f}/s", flush=True)
    sample = pool[:64]
    ours_probs = reference.predict_proba(sample, ["und"] * len(sample))
    theirs_probs = pipeline_probs(pipe(sample, batch_size=8, **call_kwargs))
    lengths = [len(ids) for ids in pipe.tokenizer(
        pool, truncation=True, max_length=max_length)["input_ids"]]
    for row in rows:
        row["tokens_mean"] = float(np.mean(lengths))
        row["max_abs_prob_diff"] = float(np.abs(ours_probs - theirs_probs).max())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--tiny-texts", type=int, default=512, help="texts per tiny-model run")
    parser.add_argument("--base-texts", type=int, default=64,
                        help="texts per DistilBERT-sized run (at least the batch size)")
    parser.add_argument("--repeats", type=int, default=3, help="tiny-model runs, best kept")
    parser.add_argument("--batch-sizes", default="1,8,32,128")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default). 1 by default: on a shared "
                             "2-core machine, 2 OpenMP threads stall whenever one core is busy")
    args = parser.parse_args()

    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    scale = 8 if device.startswith("cuda") else 1  # a GPU needs more texts per timing
    pool, corpus, source = load_texts(max(args.tiny_texts, args.base_texts, *batch_sizes) * scale)
    print(f"device={device} torch={torch.__version__} transformers={transformers.__version__} "
          f"threads={torch.get_num_threads()} texts: {source}", flush=True)

    rows: list[dict[str, Any]] = []
    plan = (("tiny", args.tiny_texts * scale, args.repeats),
            ("base", args.base_texts * scale, 1 if scale == 1 else args.repeats))
    with tempfile.TemporaryDirectory() as tmp:
        for size, n_texts, repeats in plan:
            checkpoint = build_checkpoint(Path(tmp) / size, corpus, size)
            rows.extend(bench_model(size, checkpoint, pool, device, batch_sizes,
                                    args.max_length, n_texts, repeats))

    print_table(f"HFBackend vs transformers.pipeline, texts/s ({device})", rows)
    path = write_results("hf_backend", {
        "command": "python -m bench.bench_hf_backend " + " ".join(sys.argv[1:]),
        "device": device,
        "dtype": "float16" if device.startswith("cuda") else "float32",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "texts_source": source,
        "max_length": args.max_length,
        "rows": rows,
    })
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
