"""The nightly audit against the LLM helper's fake OpenAI-compatible server (deterministic
lexicon labels), with the real ``openai`` client through the LLM tier. asyncio only.

The day's stored fast-tier labels are built so that the expected agreement is known per
language: English posts agree with the lexicon, Spanish posts disagree on 2 in 5.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner, Result

from sentiflow.actors.auditor import AuditDay, Auditor, AuditTick
from sentiflow.audit import in_sample, run_audit
from sentiflow.cli import main
from sentiflow.config.settings import DriftSettings, LLMSettings, load_settings
from sentiflow.llm.tier import LLMTier
from sentiflow.runtime import ActorSystem
from sentiflow.stores.records import ClassificationRequest, ClassificationResult, ResultRecord
from sentiflow.stores.sqlite import SQLiteResultStore, sqlite_path_from_url
from tests.drift.days import RecordingAlerter
from tests.llm.fake_openai import FakeLLM, label_of, running_fake

pytestmark = pytest.mark.anyio
DAY = date(2026, 7, 1)
TEXTS = ["I love it, great value", "awful, I hate this", "the parcel is a box",
         "excellent and amazing", "terrible and bad service", "it arrived on monday"]
OTHER = {"positive": "negative", "negative": "neutral", "neutral": "positive"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def day_records(n: int) -> list[ResultRecord]:
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    out = []
    for i in range(n):
        lang = "en" if i % 2 == 0 else "es"
        text = f"{TEXTS[i % len(TEXTS)]} #{i}"
        truth = label_of(text)
        wrong = lang == "es" and (i // 2) % 5 in (0, 1)
        rid = f"req-{i:05d}"
        out.append(ResultRecord(
            request=ClassificationRequest(request_id=rid, text=text),
            result=ClassificationResult(
                request_id=rid, sentiment=OTHER[truth] if wrong else truth,  # type: ignore[arg-type]
                confidence=0.8, model_used="m:v1", model_version="v1",
                language_detected=lang, latency_ms=1.0,
                created_at=start + timedelta(seconds=i * 20))))
    # Posts of the neighbouring days are never audited with this day.
    for rid, at in (("prev", start - timedelta(seconds=1)), ("next", start + timedelta(days=1))):
        out.append(ResultRecord(
            request=ClassificationRequest(request_id=rid, text="x"),
            result=ClassificationResult(request_id=rid, sentiment="neutral", confidence=0.5,
                                        model_used="m", language_detected="en",
                                        latency_ms=1.0, created_at=at)))
    return out


def expected(records: list[ResultRecord], share: float) -> dict[str, tuple[int, int]]:
    per: dict[str, tuple[int, int]] = {}
    for r in records:
        if r.request_id in ("prev", "next") or not in_sample(r.request_id, share):
            continue
        n, agreed = per.get(r.result.language_detected, (0, 0))
        per[r.result.language_detected] = (n + 1,
                                           agreed + (label_of(r.request.text)
                                                     == r.result.sentiment))
    return per


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with running_fake() as server:
        yield server


def tier_for(fake: FakeLLM, **overrides: object) -> LLMTier:
    values: dict[str, object] = {"base_url": fake.base_url, "backoff_initial_s": 0.01,
                                 "backoff_max_s": 0.05, "timeout_s": 5.0,
                                 "requests_per_minute": 6000, "breaker_failures": 100}
    values.update(overrides)
    return LLMTier(LLMSettings(**values))  # type: ignore[arg-type]


async def test_audit_agreement_labels_alert_and_idempotent_rerun(
        fake: FakeLLM, tmp_path: Path) -> None:
    records = day_records(4000)
    want = expected(records, 0.05)
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store, \
            tier_for(fake) as tier:
        await store.write_results(records)
        alerter = RecordingAlerter()
        run = await run_audit(store, tier, DAY, share=0.05, min_agreement=0.9,
                              alerter=alerter, batch_size=16)
        sampled = sum(n for n, _ in want.values())
        print(f"\naudit {run.run_id}: sampled {run.sampled} of 4000 ({run.sampled / 40:.2f} %), "
              f"agreement {run.agreement:.3f}; per language "
              + ", ".join(f"{k} {v.agreement:.3f} ({v.audited})"
                          for k, v in run.per_language.items()))
        assert run.status == "completed"
        assert run.sampled == sampled == run.audited
        assert 150 <= sampled <= 250  # ~5 % of 4000
        assert {k: (v.audited, v.agreed) for k, v in run.per_language.items()} == want
        assert run.per_language["en"].agreement == 1.0
        es = run.per_language["es"].agreement
        assert es is not None
        assert 0.45 < es < 0.75
        assert run.agreement is not None
        assert run.agreement < 0.9
        assert run.alerted
        assert [a.kind for a in alerter.alerts] == ["audit_agreement"]
        labels = await store.training_labels()
        assert len(labels) == run.labels_stored == sampled
        assert all(lab.source == "audit" and lab.label == label_of(lab.text) for lab in labels)
        requests = fake.requests
        # Rerun: nothing changes, no LLM call.
        again = await run_audit(store, tier, DAY, share=0.05, min_agreement=0.9,
                                alerter=alerter, batch_size=16)
        assert again == run
        assert fake.requests == requests
        assert len(await store.training_labels()) == sampled
        assert len(alerter.alerts) == 1


async def test_failed_llm_calls_leave_the_run_resumable(fake: FakeLLM, tmp_path: Path) -> None:
    records = day_records(1000)
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store, \
            tier_for(fake, max_attempts=1) as tier:
        await store.write_results(records)
        fake.script.extend(["500"])  # the first request fails (no retry configured)
        first = await run_audit(store, tier, DAY, share=0.2, min_agreement=0.5, batch_size=8)
        assert first.status == "running"
        assert first.failed == 8
        assert first.audited == first.sampled - 8
        judged = len(fake.posts)
        second = await run_audit(store, tier, DAY, share=0.2, min_agreement=0.5, batch_size=8)
        assert second.status == "completed"
        assert second.audited == second.sampled
        assert len(fake.posts) - judged == 8  # only the failed posts were judged again
        assert not second.alerted  # agreement ~0.8 >= 0.5


async def test_auditor_actor_audits_yesterday_after_audit_time(fake: FakeLLM,
                                                               tmp_path: Path) -> None:
    now = [datetime(2026, 7, 2, 1, 0, tzinfo=UTC)]
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store, \
            tier_for(fake) as tier, ActorSystem() as system:
        await store.write_results(day_records(400))
        settings = DriftSettings(audit_time="02:30", audit_share=0.1)
        alerter = RecordingAlerter()
        await system.spawn(lambda: Auditor(store, tier, settings, alerter,
                                           clock=lambda: now[0], poll_s=3600), "auditor")
        auditor = system.lookup("/auditor")
        assert await auditor.ask(AuditTick()) is None  # 01:00 < 02:30: not yet
        assert await store.get_audit_run(DAY.isoformat()) is None
        now[0] = datetime(2026, 7, 2, 2, 31, tzinfo=UTC)
        run = await auditor.ask(AuditTick(), timeout=60)
        assert run is not None
        assert run.day == DAY
        assert run.status == "completed"
        assert await auditor.ask(AuditTick()) is None  # done: not repeated
        rerun = await auditor.ask(AuditDay(DAY), timeout=60)
        assert rerun == run


async def test_cli_audit_date_and_rerun(fake: FakeLLM, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"SENTIFLOW_NODE__HOME": str(home), "SENTIFLOW_DRIFT__AUDIT_SHARE": "0.1"}
    settings = load_settings(None, env=env)
    async with await SQLiteResultStore.open(sqlite_path_from_url(
            settings.storage.results_url)) as store:
        await store.write_results(day_records(1000))

    def invoke(extra: dict[str, str]) -> Result:
        return CliRunner().invoke(main, ["audit", "--date", DAY.isoformat()],
                                  env={**env, **extra})

    off = await anyio.to_thread.run_sync(invoke, {})
    assert off.exit_code != 0
    assert "not configured" in off.output
    on = {"SENTIFLOW_LLM__BASE_URL": fake.base_url, "SENTIFLOW_LLM__BACKOFF_INITIAL_S": "0.01"}
    first = await anyio.to_thread.run_sync(invoke, on)
    assert first.exit_code == 0, first.output
    assert "completed" in first.output
    assert "ALERT" in first.output
    assert "en" in first.output
    assert "es" in first.output
    requests = fake.requests
    second = await anyio.to_thread.run_sync(invoke, on)
    assert second.output == first.output
    assert fake.requests == requests
