"""``sentiflow replay FILE``: stream a JSONL or CSV file of posts through a node as if it came
from a topic, with backpressure, a progress bar and a summary.

Each line (JSONL: an object with ClassificationRequest fields; CSV: a header with at least
``text``) is validated like an API request. Invalid lines are never skipped silently: each
becomes a dead-letter record (line number, error, raw line) in ``<FILE>.deadletter.jsonl``, and
so does every valid post the pipeline failed to classify (counted as ``failed``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError
from tqdm import tqdm

from sentiflow.actors.messages import LANE
from sentiflow.api.schemas import (
    ClassifyRequest,
    ValidationLimits,
    error_body,
    reject_json_constant,
)
from sentiflow.node import Node
from sentiflow.runtime import DeferredReply
from sentiflow.stores.records import ClassificationRequest, ClassificationResult, utcnow

_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class ReplaySummary:
    read: int = 0
    classified: int = 0
    dead_lettered: int = 0
    failed: int = 0
    seconds: float = 0.0
    sentiments: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    needs_review: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    #: Where the posts that were not classified are listed (None when there were none).
    dead_letter_file: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:  # None, not NaN (which is not JSON), when empty
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None

        return {"read": self.read, "classified": self.classified,
                "dead_lettered": self.dead_lettered, "failed": self.failed,
                "seconds": round(self.seconds, 3),
                "posts_per_s": round(self.classified / self.seconds, 1) if self.seconds else 0,
                "latency_ms_p50": pct(0.50), "latency_ms_p95": pct(0.95),
                "needs_review": self.needs_review, "sentiments": dict(self.sentiments),
                "languages": dict(self.languages.most_common()),
                "dead_letter_file": (str(self.dead_letter_file)
                                     if self.dead_letter_file is not None else None)}


def _records(path: Path) -> Iterator[tuple[int, str, Any]]:
    """(line number, raw text, parsed object or the exception that stopped parsing) per record
    of the file. Bytes that are not UTF-8 are read as lone surrogates (``surrogateescape``):
    the line is still reported, and the text check refuses them as invalid Unicode."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8", errors="surrogateescape") as fh:
            reader = csv.DictReader(fh)
            for number, row in enumerate(reader, start=2):
                raw = io.StringIO()
                csv.writer(raw).writerow(row.values())
                yield number, raw.getvalue().rstrip("\r\n"), {
                    k: v for k, v in row.items() if k in ClassifyRequest.model_fields and v}
        return
    with path.open(encoding="utf-8", errors="surrogateescape") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield number, line.rstrip("\n"), json.loads(
                    line, parse_constant=reject_json_constant)
            except (ValueError, RecursionError) as exc:  # bad JSON, NaN, too deep, huge ints
                yield number, line.rstrip("\n"), exc


def _file_key(path: Path) -> str:
    """A post without a request_id is "line N of this file" (``replay-<key>-<N>``): replaying
    the file again overwrites the same results (idempotent upserts) instead of storing them
    twice. The key is a digest of the file's absolute path."""
    return hashlib.blake2b(os.path.abspath(path).encode("utf-8", "surrogateescape"),
                           digest_size=6).hexdigest()


async def replay(node: Node, path: Path, *, source: str = "replay", in_flight: int = 16,
                 progress: bool = True) -> ReplaySummary:
    summary = ReplaySummary()
    file_key = _file_key(path)
    limits = ValidationLimits.from_settings(node.settings.api)
    chunk_size = node.settings.classifier.max_batch
    dead_path = path.with_name(path.name + ".deadletter.jsonl")
    slots = anyio.Semaphore(in_flight)
    bar = tqdm(desc="replay", unit="post", disable=not progress)
    started = time.perf_counter()

    with dead_path.open("w", encoding="utf-8") as dead:

        def dead_letter(number: int, raw: str, error: str) -> None:
            dead.write(_dead_line({"line": number, "error": error, "raw": raw}))

        async def settle(chunk: list[tuple[int, str, ClassificationRequest]],
                         reply: DeferredReply) -> None:
            try:
                results: tuple[ClassificationResult, ...] = await reply.wait()
            except Exception as exc:  # never lost: each post is reported with the error
                summary.failed += len(chunk)
                for number, raw, _ in chunk:
                    dead_letter(number, raw, f"not classified: {type(exc).__name__}: {exc}")
            else:
                summary.classified += len(results)
                for r in results:
                    summary.sentiments[r.sentiment] += 1
                    summary.languages[r.language_detected] += 1
                    summary.needs_review += r.needs_review
                    summary.latencies_ms.append(r.latency_ms)
            finally:
                bar.update(len(chunk))
                slots.release()

        async with anyio.create_task_group() as tg:
            chunk: list[tuple[int, str, ClassificationRequest]] = []

            async def flush() -> None:
                await slots.acquire()
                reply = await node.entry.submit([req for _, _, req in chunk],  # backpressure
                                                lane=LANE["batch"])
                tg.start_soon(settle, list(chunk), reply)
                chunk.clear()

            for number, raw, obj in _records(path):
                summary.read += 1
                if isinstance(obj, BaseException):
                    detail = f"invalid JSON: {obj}"
                else:
                    if isinstance(obj, dict):
                        obj.setdefault("source", source)
                        obj.setdefault("request_id", f"replay-{file_key}-{number}")
                    try:
                        req = ClassifyRequest.model_validate(obj, context=limits)
                    except ValidationError as exc:
                        detail = error_body(exc).detail
                    else:
                        chunk.append((number, raw,
                                      req.to_request(priority="batch", received_at=utcnow())))
                        if len(chunk) >= chunk_size:
                            await flush()
                        continue
                dead_letter(number, raw, detail)
                summary.dead_lettered += 1
                bar.update(1)
            if chunk:
                await flush()
    summary.seconds = time.perf_counter() - started
    bar.close()
    if summary.dead_lettered or summary.failed:
        summary.dead_letter_file = dead_path
    else:
        dead_path.unlink(missing_ok=True)
    return summary


def _dead_line(record: dict[str, Any]) -> str:
    """One JSON line; ASCII-escaped when the raw line held bytes that were not UTF-8 (read as
    lone surrogates, which a UTF-8 file cannot hold; ``\\udcXX`` escapes keep them exact)."""
    line = json.dumps(record, ensure_ascii=False)
    if _SURROGATE.search(line):
        line = json.dumps(record)
    return line + "\n"
