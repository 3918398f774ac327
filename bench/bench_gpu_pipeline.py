"""The node's micro-batching classifier against the raw model's best batched forward pass.

Issue 10's GPU evidence: with a DistilBERT-sized model (random weights), the pipeline should
reach at least 70 % of the raw model's best throughput, with p95 < 50 ms at 833 posts/s.

    python -m bench.bench_gpu_pipeline --device cuda        # the GPU evidence, ~2 minutes
    python -m bench.bench_gpu_pipeline --device cpu --model-size tiny --quick   # smoke, ~20 s

Everything runs in this one process, one phase after the other, on the same checkpoint:

1. **Checkpoint**: a random-weight DistilBERT sequence classifier (``DistilBertConfig()``
   defaults, 66M parameters, 3 labels; ``--model-size tiny`` for hidden 32 / 2 layers) with a
   WordPiece vocabulary trained at run time on ``sentiment/*/train.csv``, saved to a temp dir
   (tests/hf_checkpoints.py, the helper the HF backend tests use).
2. **Raw peer**: that checkpoint loaded with ``AutoModelForSequenceClassification`` (fp16 on
   CUDA, fp32 on CPU), the same tokenizer, texts *pre-tokenised* into batches of 16 ... 256 in
   arrival order, each padded to its longest text and already on the device; timed under
   ``torch.inference_mode`` with CUDA synchronisation. The best texts/s over batch sizes is the
   ceiling: no tokenising, no copies, no Python between batches.
3. **Backend alone** (diagnostic, no target): ``HFBackend.predict_proba`` on batches of
   ``classifier.max_batch`` texts, tokenising and padding included, no actors: how much of the
   pipeline's gap to the raw model is the backend's own work and how much the rest of the node.
4. **Pipeline**: the real node (``open_node``) with ``classifier.model`` = the checkpoint path
   and ``classifier.devices = [device]``, so the model goes through the node's own loading path
   (``load_backends`` -> ``HFBackend``), embedded SQLite store in a temp dir. Posts enter through
   ``node.entry`` (what the API and Kafka readers call) one post per submission, language
   ``auto``, realtime lane, and come back after the durable write. ``classifier.max_batch`` /
   ``max_wait_ms`` are the settings' (override with ``--max-batch`` / ``--max-wait-ms`` or
   ``SENTIFLOW_CLASSIFIER__*``). Trend and drift listeners are off and SQLite runs
   ``synchronous=NORMAL`` (as bench_api's ``node`` server) unless ``--full``.

   * *closed loop*: ``--concurrency`` submitters back to back for ``--seconds``: the maximum
     throughput (the first fifth of the window, at most 1 s, is left out as ramp-up);
   * *open loop* at ``--rate`` (833/s = 50K posts/min) for ``--seconds``: each post is sent at
     its scheduled instant and its latency counted from that instant (no coordinated omission).
     More than one second of backlog is not queued: such posts are counted as ``shed``, and
     posts still unanswered ``--drain`` seconds after the last send enter the percentiles with
     their waiting time so far (a lower bound). Either makes the rate target fail.

Texts are the held-out posts of ``$SENTIFLOW_DATA_DIR/sentiment/*/test.csv`` (read in place,
shuffled, cut at 2,000 characters). Results: a table, and ``bench/results/gpu_pipeline_<device
kind>_<size>[_quick].json`` with ``ratio`` = pipeline closed-loop texts/s / raw best texts/s and
whether the targets are met.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from bench._common import RESULTS_DIR, percentile, print_table, write_results
from bench.bench_hf_backend import read_split
from sentiflow.actors.messages import PipelineError
from sentiflow.config.paths import data_dir
from sentiflow.config.settings import Settings, load_settings
from sentiflow.config.tree import classifier_path
from sentiflow.models.devices import resolve_device
from sentiflow.node import Node, open_node
from sentiflow.runtime import ActorSnapshot, Priority
from sentiflow.runtime.metrics import HistogramSnapshot
from sentiflow.stores.records import ClassificationRequest
from tests.hf_checkpoints import ModelSize, save_checkpoint

if TYPE_CHECKING:
    import torch

TARGET_RATIO = 0.70
TARGET_RATE = 833.0
P95_BUDGET_MS = 50.0
RAW_BATCH_SIZES = (16, 32, 64, 128, 256)
QUICK_BATCH_SIZES = (16, 64)
#: HFBackend's default ``max_length``, which the node uses (both sides truncate the same).
MAX_LENGTH = 256
MAX_CHARS = 2000
#: What a submitter waits for one answer before counting an error.
ANSWER_TIMEOUT_S = 600.0


# -- texts -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Texts:
    posts: list[str]
    corpus: list[str]
    source: str


def load_texts(corpus_limit: int | None, seed: int = 0) -> Texts:
    """Shuffled held-out posts, and the train split to fit the vocabulary on (disjoint)."""
    posts = [t[:MAX_CHARS] for t in read_split("test") if t.strip()]
    corpus = read_split("train")
    if not posts or not corpus:
        raise SystemExit(f"no sentiment/*/test.csv + train.csv under {data_dir()} "
                         "(set SENTIFLOW_DATA_DIR)")
    rng = random.Random(seed)
    rng.shuffle(posts)
    rng.shuffle(corpus)
    if corpus_limit is not None:
        corpus = corpus[:corpus_limit]
    return Texts(posts, corpus, f"sentiment/*/test.csv under {data_dir()} "
                                f"(vocabulary from {len(corpus)} train.csv texts)")


# -- the raw model's best batched forward pass -----------------------------------------------

def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def raw_forward(checkpoint: Path, device: str, dtype: torch.dtype, posts: Sequence[str],
                batch_sizes: Sequence[int], seconds: float, min_batches: int,
                ) -> tuple[list[dict[str, Any]], float]:
    """texts/s of the bare model per batch size on pre-tokenised, padded, on-device batches,
    and the mean token count per text."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    model = model.to(device=device, dtype=dtype).eval()
    lengths = [len(ids) for ids in tokenizer(list(posts), truncation=True,
                                             max_length=MAX_LENGTH)["input_ids"]]
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        for size in batch_sizes:
            batches = []
            for start in range(0, len(posts) - size + 1, size):
                encoded = tokenizer(list(posts[start:start + size]), truncation=True,
                                    max_length=MAX_LENGTH, padding=True, return_tensors="pt")
                batches.append({k: encoded[k].to(device)
                                for k in ("input_ids", "attention_mask")})
            if not batches:
                raise SystemExit(f"fewer texts ({len(posts)}) than a batch of {size}")
            model(**batches[0])  # warm-up (kernels, allocator)
            _sync(device)
            done = texts = 0
            started = time.perf_counter()
            for batch in itertools.cycle(batches):
                model(**batch)
                done += 1
                texts += size
                # On CUDA, synchronise only now and then: launches queue ahead of the GPU.
                if done >= min_batches and (device == "cpu" or done % 4 == 0):
                    _sync(device)
                    if time.perf_counter() - started >= seconds:
                        break
            _sync(device)
            elapsed = time.perf_counter() - started
            rows.append({"batch": size, "batches": done, "texts": texts, "seconds": elapsed,
                         "texts_per_s": texts / elapsed})
            print(f"  raw batch={size:<4d} {texts / elapsed:10.1f} texts/s", flush=True)
    del model, batches
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows, sum(lengths) / len(lengths)


def backend_calls(checkpoint: Path, device: str, posts: Sequence[str], batch: int,
                  seconds: float, min_calls: int) -> dict[str, Any]:
    """texts/s of ``HFBackend.predict_proba`` called with ``batch`` texts at a time (what the
    classifier hands it), outside the actors: splits the pipeline's gap to the raw model into
    the backend's own work (tokenising, padding, copies) and the rest of the node."""
    from sentiflow.models.hf_backend import HFBackend

    backend = HFBackend(checkpoint, device=device, max_batch_size=batch)
    chunks = [list(posts[i:i + batch]) for i in range(0, len(posts) - batch + 1, batch)]
    languages = ["und"] * batch
    backend.predict_proba(chunks[0], languages)  # warm-up
    calls = 0
    started = time.perf_counter()
    for chunk in itertools.cycle(chunks):
        backend.predict_proba(chunk, languages)  # returns numpy: synchronised
        calls += 1
        if calls >= min_calls and time.perf_counter() - started >= seconds:
            break
    elapsed = time.perf_counter() - started
    rate = calls * batch / elapsed
    print(f"  HFBackend.predict_proba batch={batch:<4d} {rate:10.1f} texts/s", flush=True)
    return {"batch": batch, "calls": calls, "seconds": elapsed, "texts_per_s": rate}


# -- the pipeline ----------------------------------------------------------------------------

@dataclass
class Phase:
    name: str
    offered_rate: float | None
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    completed: int = 0
    sent: int = 0
    shed: int = 0
    unfinished: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    throughput: float = 0.0
    send_lag_ms: list[float] = field(default_factory=list)
    classifier: dict[str, float] = field(default_factory=dict)

    def error(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1

    def row(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "offered_per_s": self.offered_rate if self.offered_rate is not None else "max",
            "texts_per_s": self.throughput,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p95_ms": percentile(self.latencies_ms, 95),
            "p99_ms": percentile(self.latencies_ms, 99),
            "mean_batch": self.classifier.get("mean_batch", float("nan")),
            "model_busy": self.classifier.get("model_busy", float("nan")),
            "sent": self.sent,
            "completed": self.completed,
            "shed": self.shed,
            "unfinished": self.unfinished,
            "errors": sum(self.errors.values()),
        }

    def record(self) -> dict[str, Any]:
        return {**self.row(), "seconds": self.seconds, "error_kinds": dict(self.errors),
                "send_lag_p99_ms": percentile(self.send_lag_ms, 99),
                "classifier": dict(self.classifier)}


def _request(phase: str, index: int, posts: Sequence[str]) -> ClassificationRequest:
    return ClassificationRequest(request_id=f"{phase}-{index}", text=posts[index % len(posts)],
                                 language="auto", priority="realtime")


async def _classify(node: Node, request: ClassificationRequest) -> None:
    await node.entry.classify([request], lane=Priority.REALTIME, timeout=ANSWER_TIMEOUT_S)


def _classifier_counters(node: Node) -> tuple[int, float, float]:
    """(batches, posts, seconds in the model) the classifier has published so far."""
    actor = node.snapshot().find(classifier_path(0))
    if not isinstance(actor, ActorSnapshot):
        raise RuntimeError(f"no classifier actor at {classifier_path(0)}")
    sizes, inference = actor.metrics.get("batch_size"), actor.metrics.get("inference_s")
    if not isinstance(sizes, HistogramSnapshot) or not isinstance(inference, HistogramSnapshot):
        raise RuntimeError("the classifier publishes no batch_size / inference_s histograms")
    return sizes.count, sizes.sum, inference.sum


def _classifier_delta(before: tuple[int, float, float], after: tuple[int, float, float],
                      wall: float) -> dict[str, float]:
    batches, posts, busy = (a - b for a, b in zip(after, before, strict=True))
    return {"batches": batches, "posts": posts,
            "mean_batch": posts / batches if batches else float("nan"),
            "model_busy": busy / wall if wall else float("nan"),
            "model_texts_per_s": posts / busy if busy else float("nan")}


async def warm_up(node: Node, posts: Sequence[str], count: int) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(_classify, node, _request("warm", i, posts))


async def closed_loop(node: Node, posts: Sequence[str], concurrency: int,
                      seconds: float) -> Phase:
    """``concurrency`` submitters back to back; throughput over the window after the ramp."""
    phase = Phase("closed", None, seconds)
    ids = itertools.count()
    before = _classifier_counters(node)
    start = time.perf_counter()
    ramp_end = start + min(1.0, seconds / 5)
    deadline = start + seconds
    counted = 0

    async def submitter() -> None:
        nonlocal counted
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            phase.sent += 1
            try:
                await _classify(node, _request("closed", next(ids), posts))
            except PipelineError as exc:
                phase.error(exc)
                continue
            done = time.perf_counter()
            phase.completed += 1
            phase.latencies_ms.append((done - sent) * 1000)
            if ramp_end <= done <= deadline:
                counted += 1

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(submitter)
    phase.throughput = counted / (deadline - ramp_end)
    phase.classifier = _classifier_delta(before, _classifier_counters(node),
                                         time.perf_counter() - start)
    return phase


async def open_loop(node: Node, posts: Sequence[str], rate: float, seconds: float,
                    drain: float) -> Phase:
    """Posts sent on a fixed schedule; latency from each post's scheduled instant."""
    phase = Phase("open", rate, seconds)
    in_flight: dict[int, float] = {}
    max_backlog = max(1, round(rate))  # one second of posts
    before = _classifier_counters(node)
    all_answered = anyio.Event()
    sending = True
    start = last_done = time.perf_counter()

    async def one(index: int, scheduled: float) -> None:
        nonlocal last_done
        try:
            await _classify(node, _request("open", index, posts))
        except PipelineError as exc:
            phase.error(exc)
        else:
            last_done = time.perf_counter()
            phase.completed += 1
            phase.latencies_ms.append((last_done - scheduled) * 1000)
        finally:
            del in_flight[index]
            if not in_flight and not sending:
                all_answered.set()

    async with anyio.create_task_group() as tg:
        for index in range(round(rate * seconds)):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            phase.send_lag_ms.append((time.perf_counter() - scheduled) * 1000)
            if len(in_flight) >= max_backlog:
                phase.shed += 1
                continue
            phase.sent += 1
            in_flight[index] = scheduled
            tg.start_soon(one, index, scheduled)
        sent_all = time.perf_counter()
        sending = False
        if not in_flight:
            all_answered.set()
        with anyio.move_on_after(drain):
            await all_answered.wait()
        now = time.perf_counter()
        phase.unfinished = len(in_flight)
        phase.latencies_ms.extend((now - s) * 1000 for s in in_flight.values())
        tg.cancel_scope.cancel()
    # Answered posts over the time from the first send to the last send or answer.
    phase.throughput = phase.completed / (max(sent_all, last_done) - start)
    phase.classifier = _classifier_delta(before, _classifier_counters(node),
                                         time.perf_counter() - start)
    return phase


def node_settings(home: Path, checkpoint: Path, device: str, args: argparse.Namespace,
                  environ: Mapping[str, str]) -> Settings:
    """The process's SENTIFLOW_* settings, with this run's model, device and store."""
    env = dict(environ)
    if not args.full:
        env.setdefault("SENTIFLOW_TRENDS__ENABLED", "false")
        env.setdefault("SENTIFLOW_DRIFT__ENABLED", "false")
        env.setdefault("SENTIFLOW_STORAGE__SQLITE_SYNCHRONOUS", "NORMAL")
    env.setdefault("SENTIFLOW_LOGGING__LEVEL", "WARNING")
    if args.max_batch is not None:
        env["SENTIFLOW_CLASSIFIER__MAX_BATCH"] = str(args.max_batch)
    if args.max_wait_ms is not None:
        env["SENTIFLOW_CLASSIFIER__MAX_WAIT_MS"] = str(args.max_wait_ms)
    env.update({
        "SENTIFLOW_NODE__HOME": str(home),
        "SENTIFLOW_CLASSIFIER__MODEL": str(checkpoint),
        "SENTIFLOW_CLASSIFIER__DEVICES": f'["{device}"]',
        # Random weights: nothing to calibrate (a fit would measure noise); speed only.
        "SENTIFLOW_CLASSIFIER__CALIBRATION": "none",
        "SENTIFLOW_STORAGE__RESULTS_URL": f"sqlite:///{home / 'results.db'}",
        "SENTIFLOW_STORAGE__TRENDS_URL": f"chdb:///{home / 'trends'}",
    })
    return load_settings(None, env=env)


async def run_pipeline(settings: Settings, posts: Sequence[str], args: argparse.Namespace,
                       ) -> tuple[dict[str, Any], list[Phase]]:
    async with open_node(settings) as node:
        backend: Any = node.holders[0]()  # the HFBackend load_backends built
        model = {"name": backend.name, "version": backend.version,
                 "class": type(backend).__name__, "device": getattr(backend, "device", "?"),
                 "max_length": getattr(backend, "max_length", None),
                 "max_batch_size": getattr(backend, "max_batch_size", None)}
        concurrency = args.concurrency or 4 * settings.classifier.max_batch
        await warm_up(node, posts, 2 * settings.classifier.max_batch)
        closed = await closed_loop(node, posts, concurrency, args.seconds)
        print(f"  pipeline closed loop ({concurrency} submitters): "
              f"{closed.throughput:10.1f} texts/s", flush=True)
        opened = await open_loop(node, posts, args.rate, args.seconds, args.drain)
        print(f"  pipeline open loop at {args.rate:g}/s: p95 "
              f"{percentile(opened.latencies_ms, 95):.1f} ms", flush=True)
        model["concurrency"] = concurrency
        if opened.unfinished:
            # Shutdown drains what it can within the stages' deadlines and dead-letters the
            # rest, one warning per post: say it once instead.
            print(f"  {opened.unfinished} posts still queued: the shutdown drains or "
                  "dead-letters them", flush=True)
            logging.getLogger("sentiflow.node").setLevel(logging.ERROR)
        return model, [closed, opened]


# -- main ------------------------------------------------------------------------------------

def summarise(raw_rows: Sequence[Mapping[str, Any]], backend: Mapping[str, Any],
              closed: Phase, opened: Phase) -> dict[str, Any]:
    """Ratio and target verdicts from the measured phases."""
    best = max(raw_rows, key=lambda r: float(r["texts_per_s"]))
    raw_best = float(best["texts_per_s"])
    ratio = closed.throughput / raw_best
    p95 = percentile(opened.latencies_ms, 95)
    kept_up = (opened.shed == 0 and opened.unfinished == 0 and not opened.errors
               and opened.completed == opened.sent)
    return {
        "raw_best_texts_per_s": raw_best,
        "raw_best_batch": best["batch"],
        "backend_texts_per_s": backend["texts_per_s"],
        "backend_ratio": float(backend["texts_per_s"]) / raw_best,
        "pipeline_texts_per_s": closed.throughput,
        "ratio": ratio,
        "open_loop_p95_ms": p95,
        "targets": {
            "ratio_min": TARGET_RATIO,
            "ratio_met": ratio >= TARGET_RATIO,
            "rate": opened.offered_rate,
            "p95_budget_ms": P95_BUDGET_MS,
            "rate_sustained": kept_up,
            "p95_met": kept_up and p95 < P95_BUDGET_MS,
            "rate_is_target": opened.offered_rate == TARGET_RATE,
        },
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--model-size", choices=("tiny", "distilbert"), default="distilbert")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of each pipeline phase (default 15, --quick 1.5)")
    parser.add_argument("--raw-seconds", type=float, default=None,
                        help="timing window per raw batch size (default 3, --quick 0.3)")
    parser.add_argument("--batch-sizes", default=None,
                        help="raw batch sizes, comma-separated (default 16,32,64,128,256)")
    parser.add_argument("--rate", type=float, default=TARGET_RATE,
                        help="open-loop posts/s (833 = 50K posts/min)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="closed-loop submitters (default 4 x classifier.max_batch)")
    parser.add_argument("--max-batch", type=int, default=None, help="classifier.max_batch")
    parser.add_argument("--max-wait-ms", type=float, default=None,
                        help="classifier.max_wait_ms")
    parser.add_argument("--drain", type=float, default=10.0,
                        help="seconds the open loop waits for answers after its last send")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default 1 on cpu, torch's own on cuda; 0 = "
                             "torch's own)")
    parser.add_argument("--full", action="store_true",
                        help="the node as shipped: trends + drift listeners, SQLite FULL")
    parser.add_argument("--quick", action="store_true",
                        help="short phases, 2 raw batch sizes, small vocabulary corpus")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 1.5 if args.quick else 15.0
    if args.raw_seconds is None:
        args.raw_seconds = 0.3 if args.quick else 3.0
    if args.batch_sizes is None:
        args.batch_sizes = QUICK_BATCH_SIZES if args.quick else RAW_BATCH_SIZES
    else:
        args.batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    if args.quick:
        args.drain = min(args.drain, 5.0)
    return args


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    device = resolve_device(args.device)
    threads = args.threads if args.threads is not None else (0 if device != "cpu" else 1)
    if threads:
        torch.set_num_threads(threads)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    size: ModelSize = args.model_size
    texts = load_texts(1500 if args.quick else None)
    print(f"device={device} dtype={str(dtype).removeprefix('torch.')} model={size} "
          f"torch={torch.__version__} transformers={transformers.__version__} "
          f"threads={torch.get_num_threads()} posts={len(texts.posts)}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-gpu-pipeline-") as tmp:
        checkpoint = save_checkpoint(Path(tmp) / "model", size=size, corpus=texts.corpus)
        settings = node_settings(Path(tmp) / "home", checkpoint, device, args, os.environ)
        raw_rows, tokens_mean = raw_forward(checkpoint, device, dtype, texts.posts,
                                            args.batch_sizes, args.raw_seconds, min_batches=2)
        backend = backend_calls(checkpoint, device, texts.posts, settings.classifier.max_batch,
                                args.raw_seconds, min_calls=2)
        model, (closed, opened) = anyio.run(run_pipeline, settings, texts.posts, args)
    if model["max_length"] != MAX_LENGTH:
        raise SystemExit(f"the node's backend truncates at {model['max_length']} tokens, the raw "
                         f"peer at {MAX_LENGTH}: not the same work")
    summary = summarise(raw_rows, backend, closed, opened)

    print_table(f"raw model, pre-tokenised batches ({device})", raw_rows)
    print_table(f"pipeline: node entry -> ... -> durable write ({device}, "
                f"max_batch={settings.classifier.max_batch}, "
                f"max_wait_ms={settings.classifier.max_wait_ms:g})", [closed.row(), opened.row()])
    targets = summary["targets"]
    print(f"\nHFBackend.predict_proba alone, batch {backend['batch']}: "
          f"{backend['texts_per_s']:,.1f} texts/s = {summary['backend_ratio']:.2f} of raw")
    print(f"pipeline / raw = {summary['pipeline_texts_per_s']:,.1f} / "
          f"{summary['raw_best_texts_per_s']:,.1f} = {summary['ratio']:.2f} "
          f"(target >= {TARGET_RATIO}: {'met' if targets['ratio_met'] else 'NOT met'})")
    print(f"open loop at {args.rate:g}/s: p95 {summary['open_loop_p95_ms']:.1f} ms "
          f"(target < {P95_BUDGET_MS:g} ms with every post answered: "
          f"{'met' if targets['p95_met'] else 'NOT met'})")

    name = f"gpu_pipeline_{device.split(':')[0]}_{size}" + ("_quick" if args.quick else "")
    path = write_results(name, {
        "command": "python -m bench.bench_gpu_pipeline " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "model_size": size,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda_device": torch.cuda.get_device_name(device) if device != "cpu" else None,
        "torch_threads": torch.get_num_threads(),
        "texts_source": texts.source,
        "posts": len(texts.posts),
        "tokens_mean": tokens_mean,
        "max_length": MAX_LENGTH,
        "node": {**model, "max_batch": settings.classifier.max_batch,
                 "max_wait_ms": settings.classifier.max_wait_ms,
                 "trends": settings.trends.enabled, "drift": settings.drift.enabled,
                 "sqlite_synchronous": settings.storage.sqlite_synchronous},
        "raw": raw_rows,
        "backend": backend,
        "pipeline": {"closed": closed.record(), "open": opened.record()},
        **summary,
    }, directory=args.results_dir)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()
