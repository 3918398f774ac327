"""PagerDuty Events API v2 channel for :mod:`sentiflow.alerts`.

Sends ``{"routing_key", "event_action": "trigger", "dedup_key", "payload": {summary, source,
severity, timestamp, component, group, class, custom_details}}`` to the configured endpoint
(``https://events.pagerduty.com/v2/enqueue``; any receiver of that format works, which is how the
tests check it). Retries with exponential backoff (tenacity) on transport errors, 429 and 5xx,
as PagerDuty's docs ask; a 4xx other than 429 is a malformed event or bad key and is not
retried. The alert URL is operator configuration, so it bypasses the webhook SSRF guard (which
exists for caller-supplied URLs).
"""

from __future__ import annotations

from typing import Any, Final

import anyio
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from sentiflow.alerts import Alert, AlertDeliveryError, Alerter
from sentiflow.config.settings import DriftSettings

#: PagerDuty truncates summaries at 1024 characters; we do it so the event is never rejected.
MAX_SUMMARY: Final = 1024


class _RetryableError(AlertDeliveryError):
    pass


def event_body(alert: Alert, routing_key: str) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key,
        "client": "sentiflow",
        "payload": {
            "summary": alert.summary[:MAX_SUMMARY],
            "source": alert.source,
            "severity": alert.severity,
            "timestamp": alert.at.isoformat(),
            "component": alert.component,
            "group": "sentiment",
            "class": alert.kind,
            "custom_details": dict(alert.details),
        },
    }


class PagerDutyChannel:
    name = "pagerduty"

    def __init__(self, http: httpx.AsyncClient, url: str, routing_key: str, *,
                 timeout_s: float = 10.0, attempts: int = 4, backoff_s: float = 0.5) -> None:
        self._http = http
        self._url = url
        self._key = routing_key
        self._timeout = timeout_s
        self._attempts = attempts
        self._backoff = backoff_s

    async def _post(self, body: dict[str, Any]) -> None:
        try:
            response = await self._http.post(self._url, json=body, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableError(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise AlertDeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")

    async def send(self, alert: Alert) -> None:
        body = event_body(alert, self._key)
        try:
            async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self._attempts),
                    wait=wait_exponential(multiplier=self._backoff, max=30),
                    retry=retry_if_exception_type(_RetryableError), reraise=True,
                    sleep=anyio.sleep):
                with attempt:
                    await self._post(body)
        except _RetryableError as exc:
            raise AlertDeliveryError(f"gave up after {self._attempts} attempts: {exc}") from exc


def alerter_from_settings(settings: DriftSettings, http: httpx.AsyncClient) -> Alerter:
    """Log + metric always; PagerDuty too when ``drift.alert_webhook_url`` is configured."""
    if settings.alert_webhook_url is None or settings.pagerduty_routing_key is None:
        return Alerter()
    return Alerter([PagerDutyChannel(http, settings.alert_webhook_url,
                                     settings.pagerduty_routing_key.get_secret_value(),
                                     timeout_s=settings.alert_timeout_s)])
