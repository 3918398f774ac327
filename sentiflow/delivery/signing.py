"""HMAC-SHA256 signatures of webhook bodies (the scheme Stripe and GitHub use).

Every POST carries two headers::

    X-Sentiflow-Timestamp: 1735689600
    X-Sentiflow-Signature: sha256=<hex>

where ``<hex>`` is ``HMAC-SHA256(key=webhook.secret, msg=f"{timestamp}." + raw_body)`` in
lower-case hex. The timestamp is in the signed payload so a captured request cannot be replayed
later: receivers recompute the HMAC over the *raw* bytes they received, compare in constant time,
and reject timestamps older than a tolerance (5 minutes by default). A retried attempt is
re-signed with a fresh timestamp. :func:`verify_signature` is the reference receiver check.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

SIGNATURE_HEADER = "X-Sentiflow-Signature"
TIMESTAMP_HEADER = "X-Sentiflow-Timestamp"
SCHEME = "sha256="
DEFAULT_TOLERANCE_S = 300


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    """The ``X-Sentiflow-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def signed_headers(body: bytes, secret: bytes,
                   clock: Callable[[], float] = time.time) -> dict[str, str]:
    timestamp = int(clock())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(body, secret, timestamp)}


def verify_signature(body: bytes, secret: bytes, signature: str | None, timestamp: str | None,
                     *, tolerance_s: float = DEFAULT_TOLERANCE_S,
                     clock: Callable[[], float] = time.time) -> bool:
    """True when ``signature`` matches ``body`` and ``timestamp`` is within ``tolerance_s``."""
    if not signature or not timestamp or not timestamp.isdigit():
        return False
    ts = int(timestamp)
    if abs(clock() - ts) > tolerance_s:
        return False
    return hmac.compare_digest(signature.encode("ascii", "replace"),
                               sign(body, secret, ts).encode("ascii"))
