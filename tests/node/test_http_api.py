"""The REST API end to end: a real Hypercorn on a free loopback port in front of a node.

asyncio only: Quart and Hypercorn run on asyncio (the node's production backend).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiflow.config.settings import Settings
from sentiflow.delivery.signing import verify_signature
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from tests.api.webhook_receiver import receiver
from tests.net import free_port, serving
from tests.node.backends import LexiconBackend

pytestmark = pytest.mark.anyio

#: The seed's response fields, in the seed's order (pydantic serialises in the schema's order).
SEED_ORDER = ["request_id", "sentiment", "confidence", "model_used", "aspects",
              "language_detected", "latency_ms"]
SEED_FIELDS = set(SEED_ORDER)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def served(settings: Settings, detector: LanguageDetector,
                 backend: LexiconBackend | None = None) -> AsyncIterator[httpx.AsyncClient]:
    async with open_node(settings, backends=[backend or LexiconBackend()],
                         detector=detector) as node, serving(node) as client:
        yield client


@pytest.fixture
def api_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        return make_settings(API__PORT=str(free_port()), **env)
    return make


async def test_classify_answers_with_the_seed_contract_in_several_languages(
        api_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    async with served(api_settings(), detector) as client:
        cases = {"en": "I love this, it is great", "de": "Das Essen war wirklich schlecht",
                 "es": "El hotel fue horrible y muy malo"}
        for lang, text in cases.items():
            r = await client.post("/api/classify", json={"text": text, "request_id": f"id-{lang}",
                                                         "priority": "realtime"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert list(body) == SEED_ORDER
            assert r.headers["content-type"] == "application/json"
            assert body["language_detected"] == lang
            assert body["request_id"] == f"id-{lang}"
            assert body["aspects"] == []
            assert 0.0 <= body["confidence"] <= 1.0
            stored = await client.get(f"/api/results/id-{lang}")
            assert stored.status_code == 200
            assert stored.json()["sentiment"] == body["sentiment"]
        assert (await client.get("/api/results/nope")).status_code == 404


@pytest.mark.parametrize(("body", "status", "error"), [
    (b"{not json", 400, "invalid_json"),
    (b'{"text": ""}', 422, "invalid_request"),
    (b'{"text": "   "}', 422, "invalid_request"),
    (b'{"text": "hi", "colour": "red"}', 422, "invalid_request"),
    (b'{"text": 5}', 422, "invalid_request"),
    (b'{"text": "hi", "priority": "urgent"}', 422, "invalid_request"),
    (b'{"text": "hi", "language": "english"}', 422, "invalid_request"),
    (json.dumps({"text": "x" * 5001}).encode(), 422, "invalid_request"),
    (b'{"text": "hi", "aspects": "yes"}', 422, "invalid_request"),  # aspects work: issue 8
    (b'[1, 2]', 422, "invalid_request"),
])
async def test_bad_input_gets_a_clear_4xx(api_settings: Callable[..., Settings],
                                          detector: LanguageDetector, body: bytes, status: int,
                                          error: str) -> None:
    async with served(api_settings(), detector) as client:
        r = await client.post("/api/classify", content=body,
                              headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        assert r.json()["error"] == error
        assert r.json()["detail"]


async def test_limits_routes_and_operations_endpoints(api_settings: Callable[..., Settings],
                                                      detector: LanguageDetector) -> None:
    async with served(api_settings(API__MAX_BODY_BYTES="1000"), detector) as client:
        big = await client.post("/api/classify", content=b'{"text": "' + b"a" * 2000 + b'"}')
        assert big.status_code == 413
        assert "error" in big.json()
        missing = await client.get("/api/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["error"] == "not_found"
        assert (await client.get("/healthz")).json() == {"status": "alive"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["model"] == "lexicon"
        await client.post("/api/classify", json={"text": "good"})
        metrics = (await client.get("/metrics")).text
        assert 'sentiflow_actor_mailbox_depth{path="/root/pipeline/classifier-0"}' in metrics
        assert "sentiflow_actor_batch_size_bucket" in metrics
        assert "sentiflow_http_requests_total" in metrics
        spec = (await client.get("/openapi.json")).json()
        assert "/api/classify" in spec["paths"]
        assert "ClassifyRequest" in spec["components"]["schemas"]


async def test_a_trickled_body_gets_408_and_the_server_keeps_serving(
        api_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    """A client that sends the headers and part of the body, then stalls, gets a 408 JSON error
    after api.body_timeout_s instead of holding the request open (api/timeouts.py)."""
    settings = api_settings(API__BODY_TIMEOUT_S="0.3")
    async with served(settings, detector) as client:
        stream = await anyio.connect_tcp(settings.api.host, settings.api.port)
        async with stream:
            await stream.send(b"POST /api/classify HTTP/1.1\r\nHost: t\r\n"
                              b"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
                              b'{"text": "goo')
            reply = b""
            with anyio.fail_after(5):
                while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                    reply += await stream.receive()
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), head
        assert json.loads(body)["error"] == "request_timeout"
        assert "0.3 s" in json.loads(body)["detail"]
        ok = await client.post("/api/classify", json={"text": "good"})
        assert ok.status_code == 200


async def test_api_keys_and_rate_limit(api_settings: Callable[..., Settings],
                                       detector: LanguageDetector) -> None:
    settings = api_settings(API__API_KEYS='["key-aaaaaaaa"]', API__RATE_LIMIT_PER_SECOND="1",
                            API__RATE_LIMIT_BURST="2")
    async with served(settings, detector) as client:
        assert (await client.post("/api/classify", json={"text": "hi"})).status_code == 401
        bad = await client.post("/api/classify", json={"text": "hi"},
                                headers={"authorization": "Bearer wrong-key-1"})
        assert bad.status_code == 401
        ok = {"authorization": "Bearer key-aaaaaaaa"}
        codes = [(await client.post("/api/classify", json={"text": "hi"}, headers=ok))
                 for _ in range(4)]
        assert [c.status_code for c in codes[:2]] == [200, 200]
        assert codes[-1].status_code == 429
        assert int(codes[-1].headers["retry-after"]) >= 1
        assert (await client.get("/healthz")).status_code == 200  # not behind the key


async def test_saturation_answers_503_with_retry_after(api_settings: Callable[..., Settings],
                                                       detector: LanguageDetector) -> None:
    backend = LexiconBackend()
    settings = api_settings(LANGUAGE__POOL_SIZE="1", LANGUAGE__MAILBOX_SIZE="1",
                            CLASSIFIER__MAILBOX_SIZE="1", CLASSIFIER__MAX_BATCH="1",
                            CLASSIFIER__MAX_WAIT_MS="0", API__ENQUEUE_TIMEOUT_S="0.01",
                            API__RATE_LIMIT_PER_SECOND="0")
    async with served(settings, detector, backend) as client:
        backend.gate.clear()
        answers: list[httpx.Response] = []

        async def one(i: int) -> None:
            answers.append(await client.post("/api/classify", json={"text": f"good {i}"}))

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(one, i)
            await anyio.sleep(0.5)
            backend.gate.set()
        codes = sorted(a.status_code for a in answers)
        assert len(codes) == 12
        assert set(codes) <= {200, 503}
        assert 503 in codes
        assert 200 in codes
        busy = next(a for a in answers if a.status_code == 503)
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["error"] == "saturated"


async def test_batch_runs_delivers_signed_webhook_and_stays_retrievable(
        api_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    secret = "s3cret-for-tests"
    async with receiver(script=[500]) as hook:
        settings = api_settings(WEBHOOK__SECRET=secret, WEBHOOK__ALLOW_HOSTS='["127.0.0.1"]',
                                WEBHOOK__CHUNK_SIZE="10", WEBHOOK__BACKOFF_INITIAL_S="0.01",
                                WEBHOOK__BACKOFF_MAX_S="0.05")
        async with served(settings, detector) as client:
            items = [{"text": f"great product {i}" if i % 2 else f"awful service {i}",
                      "request_id": f"b-{i}"} for i in range(25)]
            r = await client.post("/api/classify/batch",
                                  json={"items": items, "webhook_url": hook.url})
            assert r.status_code == 202, r.text
            accepted = r.json()
            assert accepted["count"] == 25
            assert accepted["status"] == "queued"
            assert accepted["estimated_completion_ms"] > 0
            status: dict[str, Any] = {}
            for _ in range(300):
                status = (await client.get(f"/api/batches/{accepted['batch_id']}")).json()
                if status["status"] == "completed":
                    break
                await anyio.sleep(0.02)
            assert status["status"] == "completed"
            assert status["done"] == 25
            assert [x["request_id"] for x in status["results"]] == [f"b-{i}" for i in range(25)]
            assert status["results"][1]["sentiment"] == "positive"
            assert status["webhook"]["state"] == "delivered"
            assert status["webhook"]["chunks_total"] == 3
            assert (await client.get("/api/batches/unknown")).status_code == 404
    delivered = [x for x in hook.received if x.method == "POST"]
    assert len(delivered) == 4  # one 500 retried, then 3 chunks
    got = []
    for post in delivered[1:]:
        assert verify_signature(post.body, secret.encode(),
                                post.headers.get("x-sentiflow-signature"),
                                post.headers.get("x-sentiflow-timestamp"))
        got += [x["request_id"] for x in json.loads(post.body)["results"]]
    assert got == [f"b-{i}" for i in range(25)]


async def test_webhooks_to_private_addresses_are_refused(
        api_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    async with served(api_settings(WEBHOOK__SECRET="s3cret-for-tests"), detector) as client:
        for url in ("http://127.0.0.1:9/hook", "http://10.1.2.3/x", "http://169.254.169.254/"):
            r = await client.post("/api/classify/batch",
                                  json={"items": [{"text": "hi"}], "webhook_url": url})
            assert r.status_code == 422, url
            assert r.json()["error"] == "webhook_refused"
    async with served(api_settings(), detector) as client:  # no secret: webhooks disabled
        r = await client.post("/api/classify/batch",
                              json={"items": [{"text": "hi"}],
                                    "webhook_url": "https://example.com/h"})
        assert r.status_code == 422
        assert r.json()["error"] == "webhooks_disabled"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["text", "language", "priority", "aspects",
                                       "request_id", "source", "topic", "x"]), children,
                      max_size=5),
    max_leaves=8)


async def test_fuzzed_bodies_never_crash_the_api(api_settings: Callable[..., Settings],
                                                 detector: LanguageDetector) -> None:
    async with served(api_settings(API__RATE_LIMIT_PER_SECOND="0"), detector) as client:
        seen: list[int] = []

        @settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(body=json_values)
        def check(body: object) -> None:
            async def send() -> None:
                r = await client.post("/api/classify", json=body)
                assert r.status_code in (200, 400, 422, 501), (body, r.text)
                assert "error" in r.json() or r.status_code == 200
                seen.append(r.status_code)
            anyio.from_thread.run(send)

        await anyio.to_thread.run_sync(check)
        assert 422 in seen
