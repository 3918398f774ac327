"""aspects=true through the real HTTP API (Hypercorn on a free port; asyncio only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from sentiflow.config.settings import Settings, load_settings
from sentiflow.models.langid import LanguageDetector
from tests.aspects.sanity import PolarityWordsBackend
from tests.net import free_port
from tests.node.test_http_api import served

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        environ = {"SENTIFLOW_NODE__HOME": str(tmp_path / "home"),
                   "SENTIFLOW_TRENDS__ENABLED": "false",
                   "SENTIFLOW_API__PORT": str(free_port())}
        environ.update({f"SENTIFLOW_{k}": v for k, v in env.items()})
        return load_settings(None, env=environ)
    return make


async def test_classify_with_aspects_has_the_seed_shape_plus_text_span(
        settings_for: Callable[..., Settings], detector: LanguageDetector) -> None:
    text = "Das Produkt ist super, aber der Versand war katastrophal."
    async with served(settings_for(), detector,
                      PolarityWordsBackend()) as client:  # type: ignore[arg-type]
        r = await client.post("/api/classify", json={"text": text, "aspects": True,
                                                     "request_id": "api-1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sentiment"] == "mixed"
        assert body["aspects"] == [
            {"aspect": "product quality", "sentiment": "positive",
             "confidence": pytest.approx(0.9), "text_span": [4, 11]},
            {"aspect": "shipping", "sentiment": "negative",
             "confidence": pytest.approx(0.9), "text_span": [32, 39]}]
        for a in body["aspects"]:
            assert set(a) == {"aspect", "sentiment", "confidence", "text_span"}
            start, end = a["text_span"]
            assert text[start:end] in ("Produkt", "Versand")
        stored = await client.get("/api/results/api-1")
        assert stored.json()["aspects"] == body["aspects"]
        plain = await client.post("/api/classify", json={"text": text})
        assert plain.json()["aspects"] == []


async def test_batch_with_aspects(settings_for: Callable[..., Settings],
                                  detector: LanguageDetector) -> None:
    async with served(settings_for(), detector,
                      PolarityWordsBackend()) as client:  # type: ignore[arg-type]
        r = await client.post("/api/classify/batch", json={"items": [
            {"text": "产品很好，但是物流太差了。", "aspects": True, "request_id": "b1"},
            {"text": "产品很好", "request_id": "b2"}]})
        assert r.status_code == 202, r.text
        batch_id = r.json()["batch_id"]
        with anyio.fail_after(10):
            for _ in range(1000):  # polling a remote status: there is no event to wait on
                view = (await client.get(f"/api/batches/{batch_id}")).json()
                if view["status"] == "completed":
                    break
                await anyio.sleep(0.05)
        results = {x["request_id"]: x for x in view["results"]}
        assert [(a["aspect"], a["sentiment"], a["text_span"])
                for a in results["b1"]["aspects"]] == [
            ("product quality", "positive", [0, 2]), ("shipping", "negative", [7, 9])]
        assert results["b2"]["aspects"] == []


async def test_disabled_aspects_answer_501(settings_for: Callable[..., Settings],
                                           detector: LanguageDetector) -> None:
    async with served(settings_for(ASPECTS__ENABLED="false"), detector) as client:
        r = await client.post("/api/classify", json={"text": "hi", "aspects": True})
        assert (r.status_code, r.json()["error"]) == (501, "not_implemented")
