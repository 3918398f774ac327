"""Bad text gets a clear 4xx and odd-but-real text is classified, through the real HTTP API.

The tables (tests/text_cases.py) are the same ones the Kafka decoder and the models are tested
with: one validation (``models.preprocess.validate_text``) serves every entry point. One node
serves each table (a node per case would cost a second each). asyncio only, like the API.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from sentiflow.config.settings import Settings
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from tests.net import free_port, serving
from tests.node.backends import LexiconBackend
from tests.text_cases import BAD_TEXTS, ODD_GOOD_TEXTS

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def served(make_settings: Callable[..., Settings], detector: LanguageDetector,
                 backend: LexiconBackend) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(API__PORT=str(free_port()), API__RATE_LIMIT_PER_SECOND="0")
    async with open_node(settings, backends=[backend], detector=detector) as node, \
            serving(node) as client:
        yield client


def as_json(body: object) -> bytes:
    """ASCII JSON, as most clients send it: a lone surrogate travels as ``"\\ud800"``."""
    return json.dumps(body).encode()


async def post(client: httpx.AsyncClient, path: str, body: object) -> httpx.Response:
    return await client.post(path, content=as_json(body),
                             headers={"content-type": "application/json"})


async def test_classify_refuses_each_bad_text_with_422_naming_the_reason(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = LexiconBackend()
    async with served(make_settings, detector, backend) as client:
        for name, text, code in BAD_TEXTS:
            r = await post(client, "/api/classify", {"text": text, "request_id": f"bad-{name}"})
            assert r.status_code == 422, (name, r.text)
            body = r.json()
            assert set(body) == {"error", "detail"}, name
            assert body["error"] == "invalid_request", name
            assert body["detail"].startswith("text: "), (name, body)
            assert f"({code})" in body["detail"], (name, body)
            assert (await client.get(f"/api/results/bad-{name}")).status_code == 404, name
    assert backend.calls == []  # nothing bad reached the model


async def test_classify_accepts_odd_but_real_texts(make_settings: Callable[..., Settings],
                                                   detector: LanguageDetector) -> None:
    backend = LexiconBackend()
    async with served(make_settings, detector, backend) as client:
        for name, text in ODD_GOOD_TEXTS:
            for encode in (as_json, lambda b: json.dumps(b, ensure_ascii=False).encode()):
                r = await client.post("/api/classify", content=encode(
                    {"text": text, "request_id": f"odd-{name}"}),
                    headers={"content-type": "application/json"})
                assert r.status_code == 200, (name, r.text)
                assert r.json()["request_id"] == f"odd-{name}"
                assert r.json()["sentiment"] in {"positive", "negative", "neutral"}
    seen = {t for call in backend.calls for t in call}
    assert seen == {text for _, text in ODD_GOOD_TEXTS}  # the model got them unchanged


async def test_batch_names_every_bad_item_and_queues_nothing(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = LexiconBackend()
    async with served(make_settings, detector, backend) as client:
        items: list[dict[str, Any]] = [{"text": "a good first item", "request_id": "ok-0"}]
        items += [{"text": text, "request_id": f"bad-{name}"} for name, text, _ in BAD_TEXTS]
        r = await post(client, "/api/classify/batch", {"items": items})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["error"] == "invalid_request"
        problems = body["detail"].split("; ")
        assert len(problems) == len(BAD_TEXTS)  # one per bad item, the good one not blamed
        for index, (name, _, code) in enumerate(BAD_TEXTS, start=1):
            assert problems[index - 1].startswith(f"items[{index}].text: "), (name, problems)
            assert problems[index - 1].endswith(f"({code})"), (name, problems)
        assert (await client.get("/api/results/ok-0")).status_code == 404  # atomic: no job
    assert backend.calls == []


async def test_batch_of_odd_but_real_texts_completes(make_settings: Callable[..., Settings],
                                                     detector: LanguageDetector) -> None:
    async with served(make_settings, detector, LexiconBackend()) as client:
        items = [{"text": text, "request_id": f"odd-{name}"} for name, text in ODD_GOOD_TEXTS]
        r = await post(client, "/api/classify/batch", {"items": items})
        assert r.status_code == 202, r.text
        batch_id = r.json()["batch_id"]
        status: dict[str, Any] = {}
        with anyio.fail_after(10):
            while status.get("status") != "completed":
                await anyio.sleep(0.02)
                status = (await client.get(f"/api/batches/{batch_id}")).json()
        assert [x["request_id"] for x in status["results"]] == [i["request_id"] for i in items]


async def test_non_json_bodies_are_400_and_surrogates_are_not_mistaken_for_bad_json(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    async with served(make_settings, detector, LexiconBackend()) as client:
        for raw in (b"[" * 100_000, b'{"text": NaN}', b'{"text": "ok"', b"\xff\xfe{}"):
            r = await client.post("/api/classify", content=raw,
                                  headers={"content-type": "application/json"})
            assert r.status_code == 400, (raw[:20], r.text)
            assert r.json()["error"] == "invalid_json"
            assert r.json()["detail"].startswith("body is not")
        # Valid JSON syntax whose string is not valid Unicode: the text's fault, 422, not 400.
        r = await client.post("/api/classify", content=b'{"text": "\\udc80 oops"}',
                              headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert "(invalid_encoding)" in r.json()["detail"]
