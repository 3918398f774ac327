"""Deliver a batch's results to its webhook: chunked, signed, retried, every attempt reported.

One chunk is one POST with a JSON body::

    {"batch_id": "...", "chunk_index": 0, "chunk_count": 3, "results": [ClassifyResponse, ...]}

signed as described in :mod:`sentiflow.delivery.signing`, plus ``X-Sentiflow-Delivery:
<batch_id>:<chunk_index>`` so receivers can drop duplicates (a retry after a lost 2xx repeats a
chunk). Chunks go in order; a chunk that finally fails stops the delivery (later chunks are not
sent) and the batch's results stay retrievable at ``GET /api/batches/{id}``.

Retries (tenacity): network errors, timeouts, 408, 429 and 5xx are retried with exponential
backoff and full jitter (before retry n+1, a random wait in
``[0, min(backoff_max_s, backoff_initial_s * 2**(n-1))]``), never sooner than a
``Retry-After`` the receiver sent (capped at ``backoff_max_s``), up to ``max_attempts`` per chunk.
Other statuses (3xx, 4xx) are final: redirects are not followed, since following one could lead
past the SSRF guard. The URL is re-checked by the guard before every attempt.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import anyio
import httpx
import msgspec
from pydantic import SecretStr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from sentiflow.config.settings import WebhookSettings
from sentiflow.delivery.signing import signed_headers
from sentiflow.delivery.ssrf import SsrfPolicy, WebhookURLRefusedError, check_webhook_url
from sentiflow.stores.records import WebhookAttempt, WebhookOutcome

AttemptCallback = Callable[[WebhookAttempt], Awaitable[None]]
"""Called after every attempt (e.g. ``store.record_webhook_attempt``). Exceptions propagate."""

DELIVERY_HEADER: Final = "X-Sentiflow-Delivery"
_RETRY_STATUSES: Final = frozenset({408, 429})
_MAX_ERROR_CHARS: Final = 300


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 60.0

    @classmethod
    def from_settings(cls, webhook: WebhookSettings) -> RetryPolicy:
        return cls(max_attempts=webhook.max_attempts, backoff_initial_s=webhook.backoff_initial_s,
                   backoff_max_s=webhook.backoff_max_s)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    state: Literal["delivered", "failed"]
    chunks_total: int
    chunks_delivered: int
    attempts: int
    last_error: str | None = None


class _RetryableError(Exception):
    def __init__(self, error: str, status_code: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status_code = status_code
        self.retry_after = retry_after


class _FinalError(Exception):
    def __init__(self, outcome: WebhookOutcome, error: str, status_code: int | None = None) -> None:
        super().__init__(error)
        self.outcome: WebhookOutcome = outcome
        self.error = error
        self.status_code = status_code


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in its delta-seconds form (HTTP dates ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + "…"


class WebhookSender:
    """Sends batch results to webhooks. One instance per node; safe for concurrent use.

    The ``httpx.AsyncClient`` is owned by the caller (one pooled client for the node).
    ``sleep`` and ``clock`` are injectable so tests need not wait for real backoff.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        secret: SecretStr | bytes,
        ssrf: SsrfPolicy,
        retry: RetryPolicy = RetryPolicy(),  # frozen dataclass: a safe default
        chunk_size: int = 100,
        timeout_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        raw = secret.get_secret_value().encode() if isinstance(secret, SecretStr) else secret
        if not raw:
            raise ValueError("a webhook secret is required to sign deliveries")
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self._client = client
        self._secret = raw
        self._ssrf = ssrf
        self._retry = retry
        self._chunk_size = chunk_size
        self._timeout = httpx.Timeout(timeout_s)
        self._sleep = sleep
        self._clock = clock
        self._jitter = wait_random_exponential(multiplier=retry.backoff_initial_s,
                                               max=retry.backoff_max_s)

    @classmethod
    def from_settings(cls, client: httpx.AsyncClient, webhook: WebhookSettings) -> WebhookSender:
        """Build from ``settings.webhook``; ``ValueError`` when no secret is configured."""
        if webhook.secret is None:
            raise ValueError("webhook.secret is not set: webhooks are disabled")
        return cls(client, secret=webhook.secret, ssrf=SsrfPolicy.from_settings(webhook),
                   retry=RetryPolicy.from_settings(webhook), chunk_size=webhook.chunk_size,
                   timeout_s=webhook.timeout_s)

    def chunks(self, results: Sequence[Mapping[str, Any]]) -> list[Sequence[Mapping[str, Any]]]:
        size = self._chunk_size
        return [results[i:i + size] for i in range(0, len(results), size)] or [results]

    async def deliver(
        self,
        *,
        batch_id: str,
        url: str,
        results: Sequence[Mapping[str, Any]],
        on_attempt: AttemptCallback,
    ) -> DeliveryReport:
        """POST ``results`` (JSON-compatible dicts, e.g. ``ClassifyResponse.model_dump(
        mode="json")``) to ``url`` in chunks; report each attempt; never raise for delivery
        failures (only for errors of ``on_attempt`` itself)."""
        chunks = self.chunks(results)
        attempts = 0
        for index, chunk in enumerate(chunks):
            body = msgspec.json.encode({"batch_id": batch_id, "chunk_index": index,
                                        "chunk_count": len(chunks), "results": list(chunk)})
            ok, used, error = await self._deliver_chunk(batch_id, url, index, len(chunks), body,
                                                        on_attempt)
            attempts += used
            if not ok:
                return DeliveryReport(state="failed", chunks_total=len(chunks),
                                      chunks_delivered=index, attempts=attempts, last_error=error)
        return DeliveryReport(state="delivered", chunks_total=len(chunks),
                              chunks_delivered=len(chunks), attempts=attempts)

    def _wait(self, state: RetryCallState) -> float:
        jitter: float = self._jitter(state)
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _RetryableError) and exc.retry_after is not None:
            return max(jitter, min(exc.retry_after, self._retry.backoff_max_s))
        return jitter

    async def _deliver_chunk(
        self, batch_id: str, url: str, index: int, count: int, body: bytes,
        on_attempt: AttemptCallback,
    ) -> tuple[bool, int, str | None]:
        max_attempts = self._retry.max_attempts
        used = 0

        async def report(n: int, outcome: WebhookOutcome, started: float,
                         status: int | None, error: str | None) -> None:
            await on_attempt(WebhookAttempt(
                batch_id=batch_id, chunk_index=index, chunk_count=count, attempt=n,
                outcome=outcome, status_code=status, error=error,
                duration_ms=(time.perf_counter() - started) * 1000))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(max_attempts), wait=self._wait,
            retry=retry_if_exception_type(_RetryableError), sleep=self._sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    used = attempt.retry_state.attempt_number
                    started = time.perf_counter()
                    try:
                        status = await self._post(url, batch_id, index, body)
                    except _RetryableError as exc:
                        outcome: WebhookOutcome = "gave_up" if used >= max_attempts else "retrying"
                        await report(used, outcome, started, exc.status_code, exc.error)
                        raise
                    except _FinalError as exc:
                        await report(used, exc.outcome, started, exc.status_code, exc.error)
                        raise
                    await report(used, "delivered", started, status, None)
        except _RetryableError as exc:
            return False, used, exc.error
        except _FinalError as exc:
            return False, used, exc.error
        return True, used, None

    async def _post(self, url: str, batch_id: str, index: int, body: bytes) -> int:
        try:
            await check_webhook_url(url, self._ssrf)
        except WebhookURLRefusedError as exc:
            raise _FinalError("refused", exc.detail) from None
        headers = {"Content-Type": "application/json",
                   "User-Agent": "sentiflow-webhook",
                   DELIVERY_HEADER: f"{batch_id}:{index}",
                   **signed_headers(body, self._secret, self._clock)}
        try:
            # Stream and do not read the body: a receiver cannot make us buffer a huge answer.
            async with self._client.stream("POST", url, content=body, headers=headers,
                                           timeout=self._timeout,
                                           follow_redirects=False) as response:
                status = response.status_code
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except httpx.TransportError as exc:
            raise _RetryableError(_short(f"{type(exc).__name__}: {exc}")) from None
        except httpx.InvalidURL as exc:
            raise _FinalError("refused", _short(f"invalid URL: {exc}")) from None
        if 200 <= status < 300:
            return status
        if status >= 500 or status in _RETRY_STATUSES:
            raise _RetryableError(f"HTTP {status}", status, retry_after)
        raise _FinalError("rejected", f"HTTP {status}", status)
