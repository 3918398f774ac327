"""``GET /api/model/health`` and ``GET /api/model/drift`` on a real node (Quart test client,
asyncio): numbers come from the posts the node classified and the stored snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentiflow.actors.messages import LANE
from sentiflow.api.app import create_app
from sentiflow.config.settings import load_settings
from sentiflow.node import open_node
from sentiflow.stores.records import (
    ClassificationRequest,
    DriftSnapshot,
    DriftStats,
    ModelVersionRecord,
    utcnow,
)
from tests.node.backends import LexiconBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_health_and_drift_history_from_real_data(tmp_path: Path) -> None:
    settings = load_settings(None, env={"SENTIFLOW_NODE__HOME": str(tmp_path / "home")})
    async with open_node(settings, backends=[LexiconBackend()]) as node:
        client = create_app(node).test_client()
        # 3 confident posts (0.8) and 1 unsure (0.4, under the 0.75 threshold).
        texts = ["I love it, great", "awful, I hate it", "excellent!", "a chair"]
        await node.entry.classify(
            [ClassificationRequest(request_id=f"h{i}", text=t) for i, t in enumerate(texts)],
            lane=LANE["standard"], timeout=5)
        trained = datetime(2026, 5, 30, 4, 5, 6, tzinfo=UTC)
        await node.store.record_model_version(ModelVersionRecord(
            version_id="t1", model_type="lexicon", f1_score=0.61, status="active",
            created_at=trained))
        yesterday = utcnow().date() - timedelta(days=1)
        await node.store.write_drift_snapshot(DriftSnapshot(
            snapshot_id=f"{yesterday}:t1", day=yesterday, model_version="t1", final=True,
            count=500, drift_score=0.2, low_confidence_pct=40.0, alerted=True,
            stats=DriftStats(confidence_counts=(0,) * 10)))

        response = await client.get("/api/model/health")
        assert response.status_code == 200
        health = await response.get_json()
        assert health["active_model"] == "lexicon:t1"
        assert health["f1_score"] == 0.61  # the store's record (the backend has none)
        # The backend carries no version record either: when the store says it was trained.
        # (After a real retrain the served artifact's training time: test_retraining.py.)
        assert datetime.fromisoformat(health["last_retrained"]) == trained
        assert health["low_confidence_pct"] == 25.0
        assert health["drift_score"] == 0.0  # today has no reference window (yesterday alerted)
        assert health["retraining_triggered"] is False
        assert health["snapshot"]["count"] == 4
        assert health["snapshot"]["final"] is False
        assert set(health) >= {"active_model", "f1_score", "low_confidence_pct", "drift_score",
                               "last_retrained", "retraining_triggered"}

        response = await client.get("/api/model/drift?days=2")
        assert response.status_code == 200
        history = await response.get_json()
        assert [(s["day"], s["count"], s["final"]) for s in history["snapshots"]] == [
            (yesterday.isoformat(), 500, True), (utcnow().date().isoformat(), 4, False)]
        today = history["snapshots"][1]
        assert sum(today["confidence_histogram"]) == 4
        assert len(today["bin_edges"]) == 10
        assert today["label_counts"] == {"negative": 1, "neutral": 1, "positive": 2}
        one = await (await client.get("/api/model/drift?days=1")).get_json()
        assert [s["day"] for s in one["snapshots"]] == [utcnow().date().isoformat()]

        doc = await (await client.get("/openapi.json")).get_json()
        assert {"/api/model/health", "/api/model/drift"} <= set(doc["paths"])
        assert {"ModelHealth", "DriftHistory"} <= set(doc["components"]["schemas"])

        for bad in ("days=0", "days=366", "days=abc", "days=2&x=1"):
            response = await client.get(f"/api/model/drift?{bad}")
            assert response.status_code == 422, bad
            body = await response.get_json()
            assert body["error"] == "invalid_request"
            assert body["detail"]
