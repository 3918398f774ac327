"""PagerDuty Events v2 delivery: format, retries on 5xx / 429, no retry on 4xx, and the
Alerter never raising (both anyio backends, a real local HTTP receiver)."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from sentiflow.alerts import Alert, AlertDeliveryError, Alerter
from sentiflow.delivery.pagerduty import MAX_SUMMARY, PagerDutyChannel
from tests.api.webhook_receiver import receiver

pytestmark = pytest.mark.anyio
ALERT = Alert(kind="drift", summary="x" * 2000, dedup_key="k-1", details={"drift_score": 0.3})


async def test_retries_server_errors_then_delivers_in_events_v2_format() -> None:
    async with receiver([500, 429], default=202) as pager, httpx.AsyncClient() as http:
        await PagerDutyChannel(http, pager.url, "rk", backoff_s=0.01).send(ALERT)
    assert len(pager.received) == 3
    body = json.loads(pager.received[-1].body)
    assert body["routing_key"] == "rk"
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "k-1"
    payload = body["payload"]
    assert len(payload["summary"]) == MAX_SUMMARY
    assert payload["severity"] == "warning"
    assert payload["class"] == "drift"
    assert payload["custom_details"] == {"drift_score": 0.3}
    assert {"source", "timestamp", "component", "group"} <= set(payload)


async def test_client_errors_are_not_retried_and_the_alerter_never_raises(
        caplog: pytest.LogCaptureFixture) -> None:
    async with receiver([400]) as pager, httpx.AsyncClient() as http:
        channel = PagerDutyChannel(http, pager.url, "rk", backoff_s=0.01)
        with pytest.raises(AlertDeliveryError, match="400"):
            await channel.send(ALERT)
        assert len(pager.received) == 1
    async with receiver(default=503) as pager, httpx.AsyncClient() as http:
        channel = PagerDutyChannel(http, pager.url, "rk", backoff_s=0.01, attempts=2)
        with caplog.at_level(logging.WARNING, logger="sentiflow.alerts"):
            outcome = await Alerter([channel]).send(ALERT)
        assert outcome.failed == ("pagerduty",)
        assert outcome.delivered == ()
        assert len(pager.received) == 2
    assert any("ALERT drift" in r.getMessage() for r in caplog.records)
