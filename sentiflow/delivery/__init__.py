"""Outbound delivery of results to callers: signed, retried, SSRF-guarded webhooks.

Plain async functions and classes (no actors): the node's webhook actor calls
:meth:`WebhookSender.deliver` and records each attempt through the store.
"""

from sentiflow.delivery.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signed_headers,
    verify_signature,
)
from sentiflow.delivery.ssrf import (
    SsrfPolicy,
    WebhookURLRefusedError,
    check_webhook_url,
    is_public_ip,
)
from sentiflow.delivery.webhooks import DeliveryReport, RetryPolicy, WebhookSender

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryReport",
    "RetryPolicy",
    "SsrfPolicy",
    "WebhookSender",
    "WebhookURLRefusedError",
    "check_webhook_url",
    "is_public_ip",
    "sign",
    "signed_headers",
    "verify_signature",
]
