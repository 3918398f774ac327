"""The Quart application: the REST API of a running :class:`~sentiflow.node.Node`.

Every error is a JSON ``{error, detail}`` body with a 4xx/5xx status, never an HTML page or a
hang: bad JSON 400, a body that does not arrive within api.body_timeout_s 408, failed
validation 422, too large 413, unknown route 404, missing key 401,
rate limited 429 (+ Retry-After), aspects 501 (when aspects.enabled is false), a post the model
fails on 422 ``unprocessable``, saturation or a pipeline failure 503 (+ Retry-After).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel, ValidationError
from quart import Quart, Response, g, request
from werkzeug.exceptions import HTTPException

from sentiflow.actors.messages import LANE, PipelineError, UnprocessablePostError
from sentiflow.api import timeouts
from sentiflow.api.console import console_blueprint
from sentiflow.api.metrics import CONTENT_TYPE, ApiMetrics, NodeCollector
from sentiflow.api.model_health import add_openapi, model_blueprint
from sentiflow.api.openapi import openapi_document
from sentiflow.api.review import (
    ReviewInputError,
    ReviewList,
    parse_label,
    parse_review_query,
    review_item_out,
)
from sentiflow.api.schemas import (
    BatchAccepted,
    BatchRequest,
    BatchStatus,
    BodyNotJSONError,
    ClassifyRequest,
    ClassifyResponse,
    ErrorBody,
    ValidationLimits,
    error_body,
    load_json,
)
from sentiflow.api.security import (
    ApiKeyChecker,
    InvalidAPIKeyError,
    SsrfPolicy,
    TokenBucketLimiter,
    WebhookURLRefusedError,
    check_webhook_url,
    extract_api_key,
)
from sentiflow.api.trends_routes import trends_blueprint
from sentiflow.node import Node
from sentiflow.ops.logs import bind_request_id, post_fields, request_id_from
from sentiflow.runtime import MailboxFull
from sentiflow.stores.errors import ReviewConflictError, ReviewNotFoundError
from sentiflow.stores.records import BatchJob, utcnow

JSON = dict[str, Any]

log = logging.getLogger("sentiflow.api")


class ApiError(Exception):
    """Raised by handlers; rendered as ``{error, detail}`` with ``status``."""

    def __init__(self, status: int, error: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.headers = headers or {}


def _body(error: str, detail: str) -> JSON:
    return ErrorBody(error=error, detail=detail).model_dump()


def _json(model: BaseModel, status: int) -> Response:
    """``model`` as a JSON response serialised by pydantic's core in one call (fields in the
    schema's order), not dumped to a dict and then through Quart's JSON provider (Python's
    json, keys sorted): the answers of the hot routes."""
    return Response(model.model_dump_json(), status=status, content_type="application/json")


def create_app(node: Node) -> Quart:
    settings = node.settings
    api = settings.api
    app = Quart("sentiflow")
    app.config["MAX_CONTENT_LENGTH"] = api.max_body_bytes
    # Bodies are read under api.body_timeout_s by read_body (api/timeouts.py: no task each).
    app.config["BODY_TIMEOUT"] = None
    limits = ValidationLimits.from_settings(api)
    keys = ApiKeyChecker.from_settings(api)
    limiter = TokenBucketLimiter.from_settings(api)
    ssrf = SsrfPolicy.from_settings(settings.webhook)
    metrics = ApiMetrics(node.snapshot)
    metrics.registry.register(NodeCollector(node))
    retry_after = {"Retry-After": str(api.retry_after_s)}
    openapi = openapi_document()
    add_openapi(openapi)

    async def read_body() -> bytes:
        try:
            return await timeouts.read_body(request, api.body_timeout_s)
        except timeouts.BodyTimeoutError as exc:
            raise ApiError(408, "request_timeout", str(exc)) from None

    async def parse(model: type[ClassifyRequest] | type[BatchRequest],
                    request_id: str | None = None) -> Any:
        """The body as ``model``; ``request_id``: the body's ``request_id`` when it has none."""
        raw = await read_body()
        try:  # Python's json, then the schema (see schemas.load_json for why)
            body = load_json(raw)
            if request_id is not None and isinstance(body, dict):
                body.setdefault("request_id", request_id)
            return model.model_validate(body, context=limits)
        except BodyNotJSONError as exc:
            raise ApiError(400, "invalid_json", exc.detail) from None
        except ValidationError as exc:
            body = error_body(exc)
            raise ApiError(422, body.error, body.detail) from None

    @app.before_request
    async def guard() -> None:
        g.started = time.perf_counter()
        g.request_id = request_id_from(request.headers.get("X-Request-ID"))
        bind_request_id(g.request_id)  # every log line of this request names it
        if not request.path.startswith("/api/"):
            return
        # Looking up absent headers is not free (werkzeug builds an exception per miss).
        presented = (extract_api_key(cast(Mapping[str, str], request.headers)) if keys.enabled
                     else None)
        try:
            identity = keys.authenticate(presented)
        except InvalidAPIKeyError as exc:
            raise ApiError(401, "unauthorized", str(exc),
                           {"WWW-Authenticate": 'Bearer realm="sentiflow"'}) from None
        decision = limiter.acquire(identity)
        if not decision.allowed:
            raise ApiError(429, "rate_limited", "too many requests for this API key",
                           {"Retry-After": decision.retry_after_header})

    @app.after_request
    async def count(response: Response) -> Response:
        started: float | None = g.get("started")
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.observe_request(route, response.status_code,
                                None if started is None else time.perf_counter() - started)
        request_id: str | None = g.get("request_id")
        if request_id is not None:
            response.headers.setdefault("X-Request-ID", request_id)
        timeouts.drop_small_response_timeout(response)
        return response

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> tuple[JSON, int, dict[str, str]]:
        return _body(exc.error, exc.detail), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[JSON, int]:
        code = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        return _body(name, exc.description or name), code

    @app.post("/api/classify")
    async def classify() -> Response:
        # One id per call: a post without its own request_id is stored, answered and logged
        # under the HTTP request's id (the caller's X-Request-ID, else a new one).
        req: ClassifyRequest = await parse(ClassifyRequest, request_id=g.request_id)
        if req.aspects and not settings.aspects.enabled:
            raise ApiError(501, "not_implemented",
                           "aspect-based sentiment is disabled on this node (aspects.enabled); "
                           "send aspects=false")
        try:
            results = await node.entry.classify(
                [req.to_request(priority=req.priority, received_at=utcnow())],
                lane=LANE[req.priority], timeout=api.request_timeout_s,
                offer_timeout=api.enqueue_timeout_s)
        except MailboxFull:
            raise ApiError(503, "saturated", "the node is at capacity; retry later",
                           retry_after) from None
        except PipelineError as exc:
            log.warning("classify %s failed: %s", req.request_id, exc, extra=post_fields(
                [req.request_id], http_request_id=g.request_id))
            if isinstance(exc, UnprocessablePostError):  # the input: a retry fails the same way
                raise ApiError(422, "unprocessable", str(exc)) from None
            raise ApiError(503, "unavailable", str(exc), retry_after) from None
        return _json(ClassifyResponse.from_result(results[0]), 200)

    @app.post("/api/classify/batch")
    async def classify_batch() -> Response:
        req: BatchRequest = await parse(BatchRequest)
        if not settings.aspects.enabled and any(item.aspects for item in req.items):
            raise ApiError(501, "not_implemented",
                           "aspect-based sentiment is disabled on this node (aspects.enabled)")
        if req.webhook_url is not None:
            if settings.webhook.secret is None:
                raise ApiError(422, "webhooks_disabled",
                               "this node has no webhook.secret configured; omit webhook_url "
                               "and poll GET /api/batches/{id}")
            try:
                await check_webhook_url(req.webhook_url, ssrf)
            except WebhookURLRefusedError as exc:
                raise ApiError(422, "webhook_refused", exc.detail) from None
        batch_id = str(uuid.uuid4())
        received = utcnow()
        requests = [item.to_request(priority=req.priority, received_at=received)
                    for item in req.items]
        job = BatchJob(batch_id=batch_id, count=len(requests), priority=req.priority,
                       webhook_url=req.webhook_url)
        estimate = node.estimate_completion_ms(len(requests))
        await node.store.create_batch(job, requests)
        await node.start_batch(batch_id, len(requests))
        return _json(BatchAccepted(batch_id=batch_id, count=len(requests),
                                   estimated_completion_ms=estimate), 202)

    @app.get("/api/batches/<batch_id>")
    async def get_batch(batch_id: str) -> Response:
        view = await node.store.get_batch(batch_id)
        if view is None:
            raise ApiError(404, "not_found", f"no batch {batch_id!r}")
        return _json(BatchStatus.from_view(view), 200)

    @app.get("/api/results/<request_id>")
    async def get_result(request_id: str) -> Response:
        record = await node.store.get_result(request_id)
        if record is None:
            raise ApiError(404, "not_found", f"no result for request_id {request_id!r}")
        return _json(ClassifyResponse.from_result(record.result), 200)

    # -- human review queue (issue 7; sentiflow/api/review.py) ---------------------------------

    @app.get("/api/review")
    async def review_queue() -> tuple[JSON, int]:
        try:
            status, limit = parse_review_query(cast(Mapping[str, str], request.args))
        except ReviewInputError as exc:
            raise ApiError(exc.status, exc.error, exc.detail) from None
        items = [review_item_out(i) for i in await node.store.review_items(status, limit=limit)]
        return ReviewList(status=status, count=len(items), items=items).model_dump(mode="json"), 200

    @app.post("/api/review/<request_id>")
    async def review_label(request_id: str) -> tuple[JSON, int]:
        try:
            body = parse_label(await read_body())
        except ReviewInputError as exc:
            raise ApiError(exc.status, exc.error, exc.detail) from None
        try:
            item = await node.store.resolve_review(request_id, body.label, body.reviewer)
        except ReviewNotFoundError:
            raise ApiError(404, "not_found", f"no result for request_id {request_id!r}") from None
        except ReviewConflictError as exc:
            raise ApiError(409, "conflict", f"{request_id!r} was already labelled "
                           f"{exc.existing!r}; a different label is refused") from None
        return review_item_out(item).model_dump(mode="json"), 200

    @app.get("/healthz")
    async def healthz() -> tuple[JSON, int]:
        return {"status": "alive"}, 200

    @app.get("/readyz")
    async def readyz() -> tuple[JSON, int]:
        ready = node.ready
        return ({"status": "ready" if ready else "not_ready", "model": node.model.name,
                 "model_version": node.model.version, "devices": list(node.model.devices)},
                200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), status=200, content_type=CONTENT_TYPE)

    @app.get("/openapi.json")
    async def openapi_json() -> tuple[JSON, int]:
        return openapi, 200

    if settings.ops.console_enabled:
        app.register_blueprint(console_blueprint(node))
    app.register_blueprint(model_blueprint(node))
    app.register_blueprint(trends_blueprint(node))
    return app
