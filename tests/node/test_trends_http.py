"""``GET /api/trends`` end to end: a real Hypercorn in front of a node whose trend store is chDB.

asyncio only: Quart and Hypercorn run on asyncio.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

from sentiflow.api.trends import TrendsParams
from sentiflow.config.settings import Settings
from sentiflow.models.langid import LanguageDetector
from tests.net import free_port
from tests.node.test_http_api import served

pytestmark = pytest.mark.anyio

BUCKET_FIELDS = {"timestamp", "positive", "negative", "neutral", "mixed", "total",
                 "avg_confidence"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        return make_settings(API__PORT=str(free_port()), TRENDS__WRITER_MAX_WAIT_MS="5", **env)
    return make


async def trends(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get("/api/trends", params=params)


async def test_classified_posts_show_up_in_trends(api_settings: Callable[..., Settings],
                                                  detector: LanguageDetector) -> None:
    async with served(api_settings(), detector) as client:
        posts = [("I love it, great", "twitter", "launch"), ("awful and bad", "twitter", None),
                 ("terrible, I hate it", "support", "launch"), ("good and great", "support", None),
                 ("a table and a chair", "reddit", None)]
        languages = []
        for i, (text, source, topic) in enumerate(posts):
            body: dict[str, Any] = {"text": text, "source": source, "request_id": f"t-{i}"}
            if topic:
                body["topic"] = topic
            r = await client.post("/api/classify", json=body)
            assert r.status_code == 200, r.text
            languages.append(r.json()["language_detected"])
        with anyio.fail_after(10):
            while True:
                r = await trends(client)
                assert r.status_code == 200, r.text
                if sum(b["total"] for b in r.json()["buckets"]) == len(posts):
                    break
                await anyio.sleep(0.02)
        body = r.json()
        assert body["window"] == "hourly"
        assert len(body["buckets"]) == 24  # default: the last 24 hours, zero-filled
        assert all(set(b) == BUCKET_FIELDS for b in body["buckets"])
        (now,) = [b for b in body["buckets"] if b["total"]]
        assert (now["positive"], now["negative"], now["neutral"], now["mixed"]) == (2, 2, 1, 0)
        assert 0.0 < now["avg_confidence"] <= 1.0
        assert all(b["avg_confidence"] is None for b in body["buckets"] if not b["total"])

        start = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
        daily = (await trends(client, window="daily", start=start, source="twitter")).json()
        assert daily["source"] == "twitter"
        assert daily["start"] == f"{start}T00:00:00Z"
        assert sum(b["positive"] for b in daily["buckets"]) == 1
        assert sum(b["negative"] for b in daily["buckets"]) == 1
        weekly = (await trends(client, window="weekly", topic="launch")).json()
        assert sum(b["total"] for b in weekly["buckets"]) == 2
        assert len(weekly["buckets"]) in (12, 13)
        lang = languages[0]
        by_language = (await trends(client, window="daily", language=lang)).json()
        assert sum(b["total"] for b in by_language["buckets"]) == languages.count(lang)
        nothing = (await trends(client, window="daily", source="nowhere")).json()
        assert {b["total"] for b in nothing["buckets"]} == {0}


BAD_PARAMETERS: list[tuple[dict[str, str], str]] = [
    ({"window": "monthly"}, "window"),
    ({"start": "yesterday"}, "start"),
    ({"end": "2026-13-40"}, "end"),
    ({"start": "2026-11-03", "end": "2026-11-02"}, "before end"),
    ({"start": "2026-11-02T10:00:00Z", "end": "2026-11-02T10:00:00Z"}, "before end"),
    ({"window": "hourly", "start": "2020-01-01", "end": "2026-01-01"}, "at most 1000"),
    ({"windw": "daily"}, "unknown field"),
    ({"source": ""}, "source"),
    ({"topic": "x" * 200}, "topic"),
]


async def test_bad_parameters_get_422(api_settings: Callable[..., Settings],
                                      detector: LanguageDetector) -> None:
    async with served(api_settings(), detector) as client:  # one server for every case
        for params, needle in BAD_PARAMETERS:
            r = await trends(client, **params)
            assert r.status_code == 422, (params, r.text)
            assert r.json()["error"] == "invalid_request"
            assert needle in r.json()["detail"], params
        repeated = await client.get("/api/trends?window=daily&window=hourly")
        assert repeated.status_code == 422
        assert "more than once" in repeated.json()["detail"]


async def test_max_buckets_is_configurable(api_settings: Callable[..., Settings],
                                           detector: LanguageDetector) -> None:
    async with served(api_settings(TRENDS__MAX_BUCKETS="48"), detector) as client:
        ok = await trends(client, start="2026-11-01", end="2026-11-03")
        assert ok.status_code == 200
        assert len(ok.json()["buckets"]) == 48
        too_wide = await trends(client, start="2026-11-01", end="2026-11-03T01:00:00Z")
        assert too_wide.status_code == 422
        assert "49 hourly buckets" in too_wide.json()["detail"]
        spec = (await client.get("/openapi.json")).json()
        assert {p["name"] for p in spec["paths"]["/api/trends"]["get"]["parameters"]} == {
            "window", "start", "end", "source", "language", "topic"}
        assert "TrendsResponse" in spec["components"]["schemas"]


async def test_disabled_trends_answer_501(api_settings: Callable[..., Settings],
                                          detector: LanguageDetector) -> None:
    async with served(api_settings(TRENDS__ENABLED="false"), detector) as client:
        r = await trends(client)
        assert r.status_code == 501
        assert r.json()["error"] == "trends_disabled"


def test_params_default_to_bucket_aligned_ranges() -> None:
    now = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)  # a Wednesday
    q = TrendsParams.from_args({"window": ["weekly"]}).to_query(now=now, max_buckets=1000)
    assert q.end == datetime(2026, 11, 25, 11, tzinfo=UTC)
    assert q.start == datetime(2026, 8, 31, tzinfo=UTC)  # a Monday, 12 weeks before
    q = TrendsParams.from_args({"start": ["2026-11-20T12:00:00+02:00"]}).to_query(
        now=now, max_buckets=1000)
    assert q.start == datetime(2026, 11, 20, 10, tzinfo=UTC)
