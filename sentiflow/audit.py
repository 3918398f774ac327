"""The nightly audit: re-classify a deterministic sample of one day's posts with the LLM tier
and measure agreement with the fast tier, per language.

* Sample: a post is in the audit iff ``blake2b(request_id) / 2**64 < share``, so a rerun (or a
  resumed run) picks exactly the same posts, and adding posts to a day never reshuffles it.
* Resumable and idempotent: each audited post is stored as an ``audit_items`` row keyed on
  ``(run_id, request_id)`` as soon as its LLM answer arrives; a rerun skips posts already
  there. A run whose LLM calls partly failed stays ``running`` (those posts are retried by the
  next run); a ``completed`` run is returned as it is: rerunning a finished date changes
  nothing.
* Verdict: agreement (LLM label == fast-tier label) under ``min_agreement`` (default 90 %) raises
  an ``audit_agreement`` alert and stores every audited post's LLM label as a retraining label
  (``source="audit"``; the store keys them on ``(request_id, source)``, so again idempotent).

The fast tier's label is ``fast_sentiment`` when a later tier replaced it, else ``sentiment``.
The OpenAI Batch API (half price, 24 h turnaround) is not used: the audit goes through the same
rate-limited, budgeted :class:`~sentiflow.llm.tier.LLMTier` as the live escalations.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Protocol

import msgspec

from sentiflow.alerts import Alert, AlertSink
from sentiflow.llm.tier import LLMAnswer
from sentiflow.models.base import LABELS
from sentiflow.models.llm.errors import LLMError
from sentiflow.models.llm.prompt import LLMPost
from sentiflow.stores.interface import ResultStore
from sentiflow.stores.records import (
    AuditItem,
    AuditLanguage,
    AuditRun,
    ResultRecord,
    TrainingLabel,
    utcnow,
)

log = logging.getLogger("sentiflow.audit")

_SCALE: Final = float(2**64)


class Judge(Protocol):
    """What the audit needs of the LLM tier."""

    model: str

    async def judge(self, posts: Sequence[LLMPost]) -> LLMAnswer: ...


def in_sample(request_id: str, share: float) -> bool:
    """Deterministic membership of the audit sample (independent of order and day size)."""
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8,
                             person=b"sf-audit").digest()
    return int.from_bytes(digest, "big") / _SCALE < share


def fast_label(record: ResultRecord) -> str:
    r = record.result
    return r.sentiment if r.tier == "fast" or r.fast_sentiment is None else r.fast_sentiment


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), UTC)
    return start, start + timedelta(days=1)


def summarize_items(items: Sequence[AuditItem]) -> tuple[int, int, dict[str, AuditLanguage]]:
    per: dict[str, AuditLanguage] = {}
    for item in items:
        cur = per.get(item.language, AuditLanguage())
        per[item.language] = AuditLanguage(audited=cur.audited + 1,
                                           agreed=cur.agreed + int(item.agreed))
    return len(items), sum(int(i.agreed) for i in items), dict(sorted(per.items()))


async def _judge(store: ResultStore, judge: Judge, run_id: str,
                 batch: Sequence[ResultRecord]) -> int:
    """Audit ``batch`` with one LLM request; returns how many posts failed (to retry later)."""
    posts = [LLMPost(id=str(i), text=r.request.text, language=r.result.language_detected)
             for i, r in enumerate(batch)]
    try:
        answer = await judge.judge(posts)
    except LLMError as exc:
        log.warning("audit %s: LLM request for %d posts failed: %s", run_id, len(batch), exc)
        return len(batch)
    items = []
    for i, rec in enumerate(batch):
        verdict = answer.verdicts.get(str(i))
        if verdict is None:
            continue
        fast = fast_label(rec)
        items.append(AuditItem(run_id=run_id, request_id=rec.request_id,
                               language=rec.result.language_detected or "und",
                               fast_label=fast, llm_label=verdict.sentiment,
                               agreed=fast == verdict.sentiment))
    await store.add_audit_items(items)
    return len(batch) - len(items)


async def run_audit(store: ResultStore, judge: Judge, day: date, *, share: float,
                    min_agreement: float, alerter: AlertSink | None = None,
                    batch_size: int = 16, source: str = "sentiflow") -> AuditRun:
    """Audit ``day`` (UTC); see the module docstring. Returns the run as stored."""
    run_id = day.isoformat()
    existing = await store.get_audit_run(run_id)
    if existing is not None and existing.status == "completed":
        return existing
    run = existing or AuditRun(run_id=run_id, day=day, share=share, llm_model=judge.model)
    await store.save_audit_run(run)
    done = {item.request_id for item in await store.audit_items(run_id)}
    sampled = failed = 0
    pending: list[ResultRecord] = []
    start, end = day_bounds(day)
    async for page in store.iter_results(start, end):
        for rec in page:
            if not in_sample(rec.request_id, run.share):
                continue
            sampled += 1
            if rec.request_id in done or fast_label(rec) not in LABELS:
                continue  # already audited; or "mixed" (aspects), not comparable
            pending.append(rec)
            if len(pending) >= batch_size:
                failed += await _judge(store, judge, run_id, pending)
                pending = []
    if pending:
        failed += await _judge(store, judge, run_id, pending)
    items = await store.audit_items(run_id)
    audited, agreed, per_language = summarize_items(items)
    run = msgspec.structs.replace(run, sampled=sampled, audited=audited, agreed=agreed,
                                  failed=failed, per_language=per_language)
    if failed:
        await store.save_audit_run(run)  # stays "running": the next run retries the rest
        log.warning("audit %s incomplete: %d of %d sampled posts not judged yet", run_id,
                    failed, sampled)
        return run
    agreement = run.agreement
    alerted = agreement is not None and agreement < min_agreement
    labels_stored = 0
    if alerted:
        labels_stored = await _store_labels(store, items, judge.model)
        if alerter is not None:
            await alerter.send(Alert(
                kind="audit_agreement", severity="warning", component="fast-tier",
                source=source, dedup_key=f"sentiflow-audit-{run_id}",
                summary=(f"nightly audit {run_id}: fast tier agrees with the LLM on "
                         f"{agreement:.1%} of {audited} sampled posts (< {min_agreement:.0%})"),
                details={"day": run_id, "agreement": round(agreement or 0.0, 4),
                         "audited": audited, "labels_stored": labels_stored,
                         "per_language": {k: round(v.agreement or 0.0, 4)
                                          for k, v in per_language.items()}}))
    run = msgspec.structs.replace(run, status="completed", alerted=alerted,
                                  labels_stored=labels_stored, finished_at=utcnow())
    await store.save_audit_run(run)
    log.info("audit %s: %d sampled, agreement %s, alert=%s", run_id, sampled,
             f"{agreement:.3f}" if agreement is not None else "n/a", alerted)
    return run


async def _store_labels(store: ResultStore, items: Sequence[AuditItem], model: str) -> int:
    labels = []
    for item in items:
        record = await store.get_result(item.request_id)
        if record is None or item.llm_label not in LABELS:
            continue
        labels.append(TrainingLabel(request_id=item.request_id, text=record.request.text,
                                    language=item.language, label=item.llm_label,
                                    source="audit", labeller=model))
    await store.add_training_labels(labels)
    return len(labels)
