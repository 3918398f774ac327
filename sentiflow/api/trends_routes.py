"""The ``GET /api/trends`` route (a blueprint the app registers); parameters and body are in
:mod:`sentiflow.api.trends`.

Errors follow the API's ``{error, detail}`` contract: 422 ``invalid_request`` for bad
parameters, 501 ``trends_disabled`` when ``trends.enabled`` is false, 503 ``unavailable``
(+ Retry-After) when the trend store could not be opened at start or fails now.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from quart import Blueprint, request

from sentiflow.api.schemas import ErrorBody, error_body
from sentiflow.api.trends import TrendsParams, TrendsResponse, utcnow
from sentiflow.node import Node
from sentiflow.stores.errors import StorageError

log = logging.getLogger("sentiflow.api.trends")

JSON = dict[str, Any]


def trends_blueprint(node: Node) -> Blueprint:
    bp = Blueprint("trends", __name__)
    settings = node.settings
    retry_after = {"Retry-After": str(settings.api.retry_after_s)}

    def error(status: int, code: str, detail: str) -> tuple[JSON, int, dict[str, str]]:
        headers = retry_after if status == 503 else {}
        return ErrorBody(error=code, detail=detail).model_dump(), status, headers

    @bp.get("/api/trends")
    async def trends() -> tuple[JSON, int, dict[str, str]]:
        try:
            params = TrendsParams.from_args(request.args.to_dict(flat=False))
            query = params.to_query(now=utcnow(), max_buckets=settings.trends.max_buckets)
        except ValidationError as exc:
            body = error_body(exc, "invalid_request")
            return body.model_dump(), 422, {}
        if not settings.trends.enabled:
            return error(501, "trends_disabled",
                         "trends are disabled on this node (trends.enabled = false)")
        store = node.trends
        if store is None:
            return error(503, "unavailable",
                         "the trend store could not be opened at start; see the node's log")
        try:
            series = await store.query(query)
        except StorageError as exc:
            log.warning("trend query failed: %s", exc)
            return error(503, "unavailable", "the trend store failed to answer; retry later")
        return TrendsResponse.from_series(series).model_dump(mode="json"), 200, {}

    return bp
