"""Webhook delivery against a real HTTP server on loopback (allow-listed for the test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from sentiflow.config.settings import load_settings
from sentiflow.delivery import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    RetryPolicy,
    SsrfPolicy,
    WebhookSender,
    sign,
    verify_signature,
)
from sentiflow.delivery.webhooks import DELIVERY_HEADER
from sentiflow.stores import BatchJob, ClassificationRequest, SQLiteResultStore, WebhookAttempt
from tests.api.webhook_receiver import receiver

pytestmark = pytest.mark.anyio

SECRET = b"whsec-test-secret"
LOOPBACK = SsrfPolicy(allow_hosts=frozenset({"127.0.0.1"}))
FAST = RetryPolicy(max_attempts=3, backoff_initial_s=0.001, backoff_max_s=0.01)


def results(n: int) -> list[dict[str, Any]]:
    return [{"request_id": f"r{i}", "sentiment": "positive", "confidence": 0.9,
             "model_used": "m", "aspects": [], "language_detected": "en", "latency_ms": 1.0}
            for i in range(n)]


class Attempts:
    def __init__(self) -> None:
        self.seen: list[WebhookAttempt] = []

    async def __call__(self, attempt: WebhookAttempt) -> None:
        self.seen.append(attempt)

    @property
    def outcomes(self) -> list[str]:
        return [a.outcome for a in self.seen]


def sender(client: httpx.AsyncClient, **kw: Any) -> WebhookSender:
    options: dict[str, Any] = {"secret": SECRET, "ssrf": LOOPBACK, "retry": FAST,
                               "chunk_size": 2, "timeout_s": 5.0}
    options.update(kw)
    return WebhookSender(client, **options)


async def test_chunks_are_signed_and_verifiable() -> None:
    attempts = Attempts()
    async with receiver() as rec, httpx.AsyncClient() as client:
        report = await sender(client).deliver(batch_id="b1", url=rec.url, results=results(5),
                                              on_attempt=attempts)
    assert (report.state, report.chunks_total, report.chunks_delivered) == ("delivered", 3, 3)
    assert attempts.outcomes == ["delivered"] * 3
    assert [a.status_code for a in attempts.seen] == [200] * 3
    got = []
    for index, req in enumerate(rec.received):
        assert (req.method, req.path) == ("POST", "/hook")
        sig, ts = req.headers[SIGNATURE_HEADER.lower()], req.headers[TIMESTAMP_HEADER.lower()]
        assert verify_signature(req.body, SECRET, sig, ts)
        assert sig == sign(req.body, SECRET, int(ts))
        assert not verify_signature(req.body + b" ", SECRET, sig, ts)  # tampered body
        assert not verify_signature(req.body, b"other-secret", sig, ts)
        assert not verify_signature(req.body, SECRET, sig, str(int(ts) - 3600))  # stale
        assert req.headers[DELIVERY_HEADER.lower()] == f"b1:{index}"
        payload = json.loads(req.body)
        assert (payload["batch_id"], payload["chunk_index"], payload["chunk_count"]) == \
            ("b1", index, 3)
        got.extend(payload["results"])
    assert got == results(5)


async def test_retries_after_server_errors_then_delivers() -> None:
    attempts = Attempts()
    async with receiver([500, 503]) as rec, httpx.AsyncClient() as client:
        report = await sender(client).deliver(batch_id="b", url=rec.url, results=results(1),
                                              on_attempt=attempts)
    assert report.state == "delivered"
    assert attempts.outcomes == ["retrying", "retrying", "delivered"]
    assert [a.attempt for a in attempts.seen] == [1, 2, 3]
    assert len(rec.received) == 3
    # Each retry is re-signed, and every signature verifies.
    assert all(verify_signature(r.body, SECRET, r.headers[SIGNATURE_HEADER.lower()],
                                r.headers[TIMESTAMP_HEADER.lower()]) for r in rec.received)


async def test_gives_up_after_max_attempts_and_stops_the_batch() -> None:
    attempts = Attempts()
    async with receiver(default=502) as rec, httpx.AsyncClient() as client:
        report = await sender(client).deliver(batch_id="b", url=rec.url, results=results(4),
                                              on_attempt=attempts)
    assert (report.state, report.chunks_delivered, report.attempts) == ("failed", 0, 3)
    assert report.last_error == "HTTP 502"
    assert attempts.outcomes == ["retrying", "retrying", "gave_up"]
    assert len(rec.received) == 3  # chunk 1 was never sent


async def test_client_errors_are_not_retried() -> None:
    attempts = Attempts()
    async with receiver([200, 404]) as rec, httpx.AsyncClient() as client:
        report = await sender(client).deliver(batch_id="b", url=rec.url, results=results(4),
                                              on_attempt=attempts)
    assert (report.state, report.chunks_delivered) == ("failed", 1)
    assert attempts.outcomes == ["delivered", "rejected"]
    assert attempts.seen[1].status_code == 404
    assert len(rec.received) == 2


async def test_backoff_is_jittered_exponential_and_honours_retry_after() -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = RetryPolicy(max_attempts=5, backoff_initial_s=0.5, backoff_max_s=4.0)
    attempts = Attempts()
    async with receiver([500, 500, (429, {"Retry-After": "3"}), 500]) as rec, \
            httpx.AsyncClient() as client:
        report = await sender(client, retry=policy, sleep=fake_sleep).deliver(
            batch_id="b", url=rec.url, results=results(1), on_attempt=attempts)
    assert report.state == "delivered"
    assert len(waits) == 4
    assert 0 <= waits[0] <= 0.5  # full jitter: uniform in [0, 0.5 * 2**(n-1)]
    assert 0 <= waits[1] <= 1.0
    assert 3.0 <= waits[2] <= 4.0  # Retry-After: 3 respected (cap 4)
    assert 0 <= waits[3] <= 4.0


async def test_network_errors_are_retried() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now: connection refused
    attempts = Attempts()
    async with httpx.AsyncClient() as client:
        report = await sender(client).deliver(batch_id="b", url=f"http://127.0.0.1:{port}/x",
                                              results=results(1), on_attempt=attempts)
    assert report.state == "failed"
    assert attempts.outcomes == ["retrying", "retrying", "gave_up"]
    assert all(a.status_code is None and a.error for a in attempts.seen)


async def test_loopback_is_refused_without_allow_list() -> None:
    attempts = Attempts()
    async with receiver() as rec, httpx.AsyncClient() as client:
        report = await sender(client, ssrf=SsrfPolicy()).deliver(
            batch_id="b", url=rec.url, results=results(3), on_attempt=attempts)
    assert report.state == "failed"
    assert attempts.outcomes == ["refused"]
    assert "not a public address" in (report.last_error or "")
    assert rec.received == []


async def test_attempts_recorded_in_the_store(tmp_path: Path) -> None:
    settings = load_settings(None, {"SENTIFLOW_WEBHOOK__SECRET": SECRET.decode(),
                                    "SENTIFLOW_WEBHOOK__ALLOW_HOSTS": '["127.0.0.1"]',
                                    "SENTIFLOW_WEBHOOK__CHUNK_SIZE": "2",
                                    "SENTIFLOW_WEBHOOK__BACKOFF_INITIAL_S": "0.001",
                                    "SENTIFLOW_WEBHOOK__BACKOFF_MAX_S": "0.01"})
    async with await SQLiteResultStore.open(tmp_path / "r.db") as store, \
            receiver([500]) as rec, httpx.AsyncClient() as client:
        await store.create_batch(BatchJob(batch_id="b1", count=1, webhook_url=rec.url),
                                 [ClassificationRequest(request_id="r0", text="t")])
        web = WebhookSender.from_settings(client, settings.webhook)
        report = await web.deliver(batch_id="b1", url=rec.url, results=results(3),
                                   on_attempt=store.record_webhook_attempt)
        view = await store.get_batch("b1")
    assert report.state == "delivered"
    assert view is not None
    assert (view.webhook.state, view.webhook.attempts, view.webhook.chunks_delivered,
            view.webhook.chunks_total, view.webhook.last_error) == \
        ("delivered", 3, 2, 2, "HTTP 500")


def test_a_secret_is_required() -> None:
    client = httpx.AsyncClient()
    with pytest.raises(ValueError, match="secret"):
        WebhookSender.from_settings(client, load_settings(None, {}).webhook)
    with pytest.raises(ValueError, match="secret"):
        WebhookSender(client, secret=b"", ssrf=SsrfPolicy())
