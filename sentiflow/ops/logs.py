"""Logging setup: plain text for a terminal, one JSON object per line for journald / Loki.

The request being served is carried in a :class:`~contextvars.ContextVar` (``request_id``) that
the API binds per request; a filter copies it onto every record, so any log line written while
handling a request (in the handler or anything it awaits in the same task) names it without
threading an id through call signatures.

The JSON formatter is written here (stdlib only) rather than taken from python-json-logger: it
is twenty lines, and owning it fixes the field names operators query (``ts``, ``level``,
``logger``, ``msg``, ``request_id``, ``exc``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal, TextIO

#: The id of the request being handled in this context ("-" outside any request).
request_id: ContextVar[str] = ContextVar("sentiflow_request_id", default="-")

#: Attributes every LogRecord has; anything else on a record came from ``extra=`` and is kept.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "request_id", "taskName"}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def bind_request_id(value: str) -> None:
    """Set the request id for the rest of this context (one API request = one task)."""
    request_id.set(value)


@contextmanager
def request_scope(value: str) -> Iterator[None]:
    """Bind ``value`` as the request id inside the block, restoring the previous one after."""
    token = request_id.set(value)
    try:
        yield
    finally:
        request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Copies the context's request id onto each record (as ``record.request_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC ISO-8601), level, logger, msg, request_id, the
    ``extra=`` fields, and ``exc`` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id.get()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", fmt: Literal["text", "json"] = "text",
                      stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one stream handler in the chosen format.

    Returns the handler (tests attach it to a buffer). Idempotent: calling it again replaces
    the handler rather than adding a second one.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO (readiness polls, webhooks): keep that for DEBUG runs.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    return handler


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def request_id_from(header: str | None) -> str:
    """The request id for an HTTP request: the caller's (or the proxy's) ``X-Request-ID`` when
    it is a sane token (1-128 of ``[A-Za-z0-9-_.:]``), else a new random one. A header is never
    trusted blindly: it ends up in log lines."""
    if header and len(header) <= 128 and set(header) <= _ID_CHARS:
        return header
    return uuid.uuid4().hex
