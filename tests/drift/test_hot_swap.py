"""Retrain + promotion + hot swap in a running node under load, and rollback from the CLI.

A real node (embedded model loaded from its models folder, SQLite store, the whole tree) serves
a steady stream of classify calls from several tasks while the in-node Retrainer trains a
candidate on the base data plus the store's retraining labels, promotes it (its held-out F1 is
not worse), and the ModelReloader swaps it into the classifier. Every request must be answered,
and the new version must show up in ``model_used``. asyncio only: the node runs on asyncio.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from sentiflow.actors.drift import RetrainRequest
from sentiflow.actors.messages import LANE
from sentiflow.actors.model_reloader import Reload
from sentiflow.cli import main
from sentiflow.config.tree import RELOADER, RETRAINER
from sentiflow.models.retraining import RetrainOutcome, promotion_history
from sentiflow.node import open_node
from sentiflow.stores.records import AspectLabel, ClassificationRequest, TrainingLabel
from tests.drift.conftest import SmallModel, node_env, settings_for

pytestmark = [pytest.mark.slow, pytest.mark.data]

TEXTS = ["I love this phone, it is great", "El servicio fue horrible",
         "Das ist wirklich schlecht", "Le produit est génial", "the package arrived today"]


LABELLED: list[tuple[str, AspectLabel]] = [("best day ever, so happy", "positive"),
                                           ("worst service, never again", "negative")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_promotion_under_load_drops_nothing(tmp_path: Path, small_model: SmallModel,
                                                  subset_data: Path) -> None:
    settings = settings_for(tmp_path, small_model, subset_data)
    answered: list[str] = []
    failures: list[BaseException] = []
    async with open_node(settings) as node:
        assert node.holders[0].version == "small-v1"
        await node.store.add_training_labels([
            TrainingLabel(request_id=f"lab-{i}", text=text, language="en", label=label,
                          source="review", labeller="tester")
            for i, (text, label) in enumerate(LABELLED)])
        stop = anyio.Event()

        async def client(k: int) -> None:
            i = 0
            while not stop.is_set():
                req = ClassificationRequest(request_id=f"c{k}-{i}", text=TEXTS[i % len(TEXTS)])
                try:
                    (result,) = await node.entry.classify([req], lane=LANE["realtime"],
                                                          timeout=30)
                    answered.append(result.model_used)
                except Exception as exc:  # any failure fails the test below
                    failures.append(exc)
                i += 1

        async with anyio.create_task_group() as tg:
            for k in range(4):
                tg.start_soon(client, k)
            await anyio.sleep(0.3)
            before = len(answered)
            outcome: RetrainOutcome = await node.system.lookup(RETRAINER).ask(
                RetrainRequest("test: drift"), timeout=300)
            with anyio.fail_after(10):  # the retrainer asked the reloader; polling also works
                while node.holders[0].version != outcome.candidate.version_id:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            swapped_at = len(answered)
            await anyio.sleep(0.5)
            stop.set()
        versions = await node.store.model_versions()
    print(f"\nanswered {len(answered)} requests ({before} before retraining, "
          f"{swapped_at - before} during it, {len(answered) - swapped_at} after the swap); "
          f"candidate F1 {outcome.candidate_f1:.4f} vs active {outcome.baseline_f1:.4f}: "
          f"{outcome.reason}")
    assert failures == []
    assert outcome.promoted
    assert outcome.extra_labels == 2
    new = f"sentiflow-linear:{outcome.candidate.version_id}"
    assert answered[0] == "sentiflow-linear:small-v1"
    assert new in answered
    assert answered[-1] == new
    # No request answered by a mix: every answer names one of the two versions.
    assert set(answered) == {"sentiflow-linear:small-v1", new}
    assert {(v.version_id, v.status) for v in versions} >= {(outcome.candidate.version_id,
                                                             "active")}


@pytest.mark.anyio
async def test_cli_rollback_is_hot_swapped_by_a_running_node(
        tmp_path: Path, small_model: SmallModel, subset_data: Path) -> None:
    settings = settings_for(tmp_path, small_model, subset_data)
    models = settings.node.home / "models"
    # A second version (a copy of the first, as if promoted earlier) is active.
    shutil.copytree(models / "small-v1", models / "small-v2")
    meta = (models / "small-v2" / "model.json")
    meta.write_text(meta.read_text().replace('"version_id": "small-v1"',
                                             '"version_id": "small-v2"'))
    from sentiflow.models.retraining import promote

    promote(models, "small-v2", reason="test setup")
    env = node_env(settings.node.home, subset_data)
    async with open_node(settings) as node:
        assert node.holders[0].version == "small-v2"
        result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(
            main, ["rollback"], env=env, catch_exceptions=False))
        assert result.exit_code == 0, result.output
        assert "active: small-v1 (was small-v2)" in result.output
        with anyio.fail_after(10):
            while node.holders[0].version != "small-v1":  # noqa: ASYNC110
                await anyio.sleep(0.05)
        (res,) = await node.entry.classify([ClassificationRequest(request_id="x", text="ok")],
                                           lane=LANE["realtime"], timeout=10)
        assert res.model_used == "sentiflow-linear:small-v1"
        assert await node.system.lookup(RELOADER).ask(Reload()) == "small-v1"
    assert [e.kind for e in promotion_history(models)] == ["promote", "rollback"]
    again = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(main, ["rollback"],
                                                                      env=env))
    assert again.exit_code != 0
    assert "no recorded predecessor" in again.output
