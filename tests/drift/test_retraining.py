"""Retraining end to end: a drifted day in a running node retrains automatically, and
``sentiflow retrain`` from the command line; both promote only a candidate whose held-out F1 is
not worse than the active model's.

The retraining labels are the drifted day's posts (held-out test rows 700-870 of en/es/fr/de,
never in the training or evaluation splits, plus zh/ja reviews) with their gold labels, as a
faithful LLM audit and the review queue would store them. The "bad" variant rotates every label
(negative -> neutral -> positive -> negative), as a broken labeller would: the candidate trained
on them is worse on the held-out split and must be rejected, the active model kept.
Measured (2 shared cores): good labels F1 0.584-0.588 vs active 0.561 (promoted); rotated 0.530
(rejected). One retraining on the 4-language subset takes ~5 s.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from sentiflow.actors.drift import CloseDay, CurrentSnapshots
from sentiflow.actors.messages import LANE
from sentiflow.api.app import create_app
from sentiflow.cli import main
from sentiflow.config.settings import Settings
from sentiflow.config.tree import DRIFT, RETRAINER
from sentiflow.models.retraining import promotion_history
from sentiflow.models.versioning import ModelVersion, active_version_id, list_versions
from sentiflow.node import Node, open_node
from sentiflow.runtime import ActorSnapshot
from sentiflow.stores.factory import open_result_store
from sentiflow.stores.records import (
    AspectLabel,
    ClassificationRequest,
    DriftSnapshot,
    ModelVersionRecord,
    TrainingLabel,
    utcnow,
)
from tests.drift.conftest import LANGS, SmallModel, node_env, settings_for
from tests.drift.days import classify, labelled_rows

pytestmark = [pytest.mark.slow, pytest.mark.data]

ROTATE: dict[str, AspectLabel] = {"negative": "neutral", "neutral": "positive",
                                  "positive": "negative"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the node runs on asyncio


def drifted_day() -> list[tuple[str, str, str]]:
    """``(text, gold label, language)`` of the drifted day: 680 in-distribution posts and 460
    zh/ja reviews (the language mix the 4-language model never saw)."""
    return ([(t, lab, lang) for lang in LANGS for t, lab in labelled_rows(lang, 700, 870)]
            + [(t, lab, lang) for lang in ("zh", "ja")
               for t, lab in labelled_rows(lang, 0, 230, "train")])


def day_labels(rotate: bool) -> list[TrainingLabel]:
    """The drifted day's labels as the store keeps them: zh/ja from the review queue, the rest
    from the LLM audit."""
    out = []
    for i, (text, gold, lang) in enumerate(drifted_day()):
        label: AspectLabel = ROTATE[gold] if rotate else gold  # type: ignore[assignment]
        review = lang in ("zh", "ja")
        out.append(TrainingLabel(request_id=f"day2-{i}", text=text, language=lang, label=label,
                                 source="review" if review else "audit",
                                 labeller="reviewer" if review else "fake-llm"))
    return out


def version(models: Path, version_id: str) -> ModelVersion:
    (v,) = [v for v in list_versions(models) if v.version_id == version_id]
    return v


def store_versions(settings: Settings) -> dict[str, ModelVersionRecord]:
    async def read() -> list[ModelVersionRecord]:
        store = await open_result_store(settings.storage.results_url)
        try:
            return await store.model_versions()
        finally:
            await store.close()

    return {v.version_id: v for v in asyncio.run(read())}


def seed_labels(settings: Settings, labels: list[TrainingLabel]) -> None:
    async def write() -> None:
        store = await open_result_store(settings.storage.results_url)
        try:
            await store.add_training_labels(labels)
        finally:
            await store.close()

    asyncio.run(write())


async def health(node: Node) -> dict[str, object]:
    response = await create_app(node).test_client().get("/api/model/health")
    assert response.status_code == 200
    body: dict[str, object] = await response.get_json()
    return body


def when(value: object) -> datetime:
    assert isinstance(value, str), value
    return datetime.fromisoformat(value)


def counters(node: Node, path: str) -> dict[str, int]:
    """The counters among an actor's metrics."""
    snap = node.system.snapshot().find(path)
    assert isinstance(snap, ActorSnapshot), path
    return {k: v for k, v in snap.metrics.items() if isinstance(v, int)}


async def wait_for_counts(node: Node, count: int) -> DriftSnapshot:
    """Today's live snapshot once the watcher has counted ``count`` posts (the sink tells its
    listeners after it answered the callers)."""
    with anyio.fail_after(20):
        while True:
            live: list[DriftSnapshot] = await node.system.lookup(DRIFT).ask(CurrentSnapshots())
            if live and live[-1].count >= count:
                return live[-1]
            await anyio.sleep(0.05)


@pytest.mark.anyio
@pytest.mark.parametrize("rotate", [False, True], ids=["good-labels", "rotated-labels"])
async def test_a_drifted_day_retrains_automatically_by_the_f1_rule(
        tmp_path: Path, small_model: SmallModel, subset_data: Path, rotate: bool) -> None:
    """auto_retrain on: yesterday in distribution (fed to the node's DriftWatcher), today's
    drifted posts classified through the node's pipeline; closing today triggers the Retrainer,
    which promotes (good labels: hot-swapped, health shows the new model and its training time)
    or rejects (rotated labels: the node keeps serving small-v1)."""
    settings = settings_for(tmp_path, small_model, subset_data,
                            SENTIFLOW_DRIFT__AUTO_RETRAIN="true",
                            SENTIFLOW_ROUTER__THRESHOLD="0.6",  # see test_drift_simulation.py
                            SENTIFLOW_DRIFT__CHECKPOINT_S="3600")
    models = settings.node.home / "models"
    small_trained = datetime.fromisoformat(small_model.backend.model_version.created_at)
    yesterday = datetime.combine(utcnow().date() - timedelta(days=1), datetime.min.time(),
                                 tzinfo=UTC) + timedelta(hours=1)
    reference = [t for lang in LANGS for t, _ in labelled_rows(lang, 300, 500)]
    async with open_node(settings) as node:
        before = await health(node)
        assert before["active_model"] == "sentiflow-linear:small-v1"
        assert when(before["last_retrained"]) == small_trained
        await node.store.add_training_labels(day_labels(rotate))
        drift = node.system.lookup(DRIFT)
        records = classify(small_model.backend, reference, yesterday, "ref")
        for i in range(0, len(records), 256):
            await drift.tell(records[i:i + 256])
        (ref_day,) = await drift.ask(CloseDay(yesterday.date()), timeout=30)
        assert ref_day.reasons == ("no reference window yet",)

        posts = [text for text, _, _ in drifted_day()]
        for i in range(0, len(posts), 100):
            await node.entry.classify(
                [ClassificationRequest(request_id=f"today-{i + k}", text=t)
                 for k, t in enumerate(posts[i:i + 100])], lane=LANE["standard"], timeout=30)
        live = await wait_for_counts(node, len(posts))
        (today,) = await drift.ask(CloseDay(live.day), timeout=30)
        print(f"\nreference {ref_day.low_confidence_pct:.1f}% low-confidence, drifted day "
              f"{today.low_confidence_pct:.1f}% (growth {today.low_confidence_growth}), "
              f"drift_score {today.drift_score:.3f}")
        assert today.count == len(posts)
        assert today.retraining_triggered
        assert today.alerted

        with anyio.fail_after(120):  # one retraining on the subset: ~5 s
            while True:
                m = counters(node, RETRAINER)
                if m["promotions"] + m["rejections"] + m["retrain_failures"] >= 1:
                    break
                await anyio.sleep(0.1)
        assert (m["retrain_runs"], m["retrain_failures"]) == (1, 0)
        (candidate,) = [v for v in await node.store.model_versions()
                        if v.version_id != "small-v1"]
        print(f"candidate {candidate.version_id}: F1 {candidate.f1_score:.4f} vs active "
              f"{candidate.baseline_f1}: {candidate.status} ({candidate.reason})")
        assert candidate.reason.startswith(f"drift {today.snapshot_id}: ")
        assert candidate.baseline_version == "small-v1"
        assert candidate.baseline_f1 is not None
        assert candidate.extra_labels == len(posts)
        if rotate:
            assert (m["promotions"], m["rejections"]) == (0, 1)
            assert candidate.status == "rejected"
            assert candidate.f1_score < candidate.baseline_f1
            assert "kept the active" in candidate.reason
            await anyio.sleep(0.5)  # > reload_poll_s: a swap would have happened by now
            assert node.holders[0].version == "small-v1"
            assert active_version_id(models) == "small-v1"
            assert promotion_history(models) == []
        else:
            assert (m["promotions"], m["rejections"]) == (1, 0)
            assert candidate.status == "active"
            assert candidate.f1_score >= candidate.baseline_f1
            with anyio.fail_after(10):
                while node.holders[0].version != candidate.version_id:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            assert active_version_id(models) == candidate.version_id
            (event,) = promotion_history(models)
            assert (event.kind, event.version_id, event.previous) == (
                "promote", candidate.version_id, "small-v1")
        after = await health(node)
        (res,) = await node.entry.classify([ClassificationRequest(request_id="x", text="ok")],
                                           lane=LANE["realtime"], timeout=10)
    served = "small-v1" if rotate else candidate.version_id
    assert res.model_used == f"sentiflow-linear:{served}"
    assert after["active_model"] == f"sentiflow-linear:{served}"
    trained = version(models, served)
    assert when(after["last_retrained"]) == datetime.fromisoformat(trained.created_at)
    assert after["f1_score"] == trained.f1_score
    if not rotate:
        assert when(after["last_retrained"]) > small_trained


def cli_retrain(settings: Settings, subset_data: Path, *args: str) -> str:
    env = node_env(settings.node.home, subset_data)
    result = CliRunner().invoke(main, ["retrain", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    print(f"\n$ sentiflow retrain {' '.join(args)}\n{result.output}")
    return result.output


CANDIDATE = re.compile(r"^candidate (\S+): F1 (\d\.\d{4}) \((\d+) extra labels\)$", re.M)


def test_cli_retrain_promotes_a_better_candidate(tmp_path: Path, small_model: SmallModel,
                                                 subset_data: Path) -> None:
    settings = settings_for(tmp_path, small_model, subset_data)
    models = settings.node.home / "models"
    seed_labels(settings, day_labels(rotate=False))
    output = cli_retrain(settings, subset_data)
    match = CANDIDATE.search(output)
    assert match, output
    vid, f1, extra = match[1], float(match[2]), int(match[3])
    assert extra == len(drifted_day())
    baseline = re.search(r"^active    small-v1: F1 (\d\.\d{4})$", output, re.M)
    assert baseline, output
    assert f1 >= float(baseline[1])
    assert f"PROMOTED: F1 {f1:.4f} >= active small-v1 {baseline[1]}" in output
    assert active_version_id(models) == vid
    assert [(e.kind, e.version_id, e.previous) for e in promotion_history(models)] == [
        ("promote", vid, "small-v1")]
    record = store_versions(settings)[vid]
    assert record.status == "active"
    assert record.promoted_at is not None
    assert round(record.f1_score, 4) == f1
    assert record.baseline_version == "small-v1"
    assert record.baseline_f1 is not None
    assert f"{record.baseline_f1:.4f}" == baseline[1]
    assert record.reason.startswith("sentiflow retrain: ")
    assert version(models, vid).extra_labels == extra


def test_cli_retrain_rejects_a_worse_candidate_and_keeps_the_active(
        tmp_path: Path, small_model: SmallModel, subset_data: Path) -> None:
    settings = settings_for(tmp_path, small_model, subset_data)
    models = settings.node.home / "models"
    seed_labels(settings, day_labels(rotate=True))
    output = cli_retrain(settings, subset_data)
    match = CANDIDATE.search(output)
    assert match, output
    vid, f1 = match[1], float(match[2])
    baseline = re.search(r"^active    small-v1: F1 (\d\.\d{4})$", output, re.M)
    assert baseline, output
    assert f1 < float(baseline[1])
    assert (f"not promoted: F1 {f1:.4f} < active small-v1 {baseline[1]}: kept the active"
            in output)
    assert "PROMOTED" not in output
    assert active_version_id(models) == "small-v1"
    assert promotion_history(models) == []
    assert (models / vid / "model.json").is_file()  # kept for inspection, never activated
    record = store_versions(settings)[vid]
    assert record.status == "rejected"
    assert record.promoted_at is None
    assert record.baseline_version == "small-v1"
    assert record.baseline_f1 is not None
    assert record.f1_score < record.baseline_f1
    assert "kept the active" in record.reason
    # Nothing was promoted, so there is nothing to roll back to.
    again = CliRunner().invoke(main, ["rollback"], env=node_env(settings.node.home, subset_data))
    assert again.exit_code != 0
    assert "no recorded predecessor of 'small-v1'" in again.output
