"""Logging setup: plain text for a terminal, one JSON object per line for journald / Loki.

Two ways a line names the post it is about:

* explicitly, with ``extra=post_fields(ids, batch_id=...)``: every line written by the pipeline's
  actors, the Kafka readers and the batch jobs about particular posts (a poison post, a failed
  write, a dead letter, a failed LLM call, a webhook that gave up). Actors run in their own
  tasks, far from the request that brought a post in, so the ids travel with the message and
  are passed here by the code that logs, never picked up from ambient state;
* the HTTP request being served, carried in a :class:`~contextvars.ContextVar`
  (``request_id``) that the API binds per request: the fallback for lines written in the
  handler's own task (the filter fills it in when a line names no post).

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal, TextIO

#: The id of the request being handled in this context ("-" outside any request).
request_id: ContextVar[str] = ContextVar("sentiflow_request_id", default="-")

#: Attributes every LogRecord has; anything else on a record came from ``extra=`` and is kept.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "request_id", "taskName"}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

#: At most this many ids in a line's ``request_ids`` (``posts`` always has the full count).
MAX_LOGGED_IDS = 20


def post_fields(request_ids: Sequence[str], *, batch_id: str | None = None,
                **fields: object) -> dict[str, object]:
    """The ``extra=`` of a log line about particular posts.

    About one post: ``request_id`` (the field operators search, the same as for an HTTP
    request). About several: ``request_ids`` (the first :data:`MAX_LOGGED_IDS`) and ``posts``
    (how many), so a line about a thousand posts stays a line; ``request_id`` is then left to
    the context (the HTTP request, or ``-``). ``batch_id`` names the batch job, and ``fields``
    are further structured fields (``kafka_topic``, ``attempt``...).
    """
    out: dict[str, object] = {}
    if len(request_ids) == 1:
        out["request_id"] = request_ids[0]
    elif request_ids:
        out["request_ids"] = list(request_ids[:MAX_LOGGED_IDS])
        out["posts"] = len(request_ids)
    if batch_id is not None:
        out["batch_id"] = batch_id
    out.update(fields)
    return out


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
    return str(uuid.uuid4())
