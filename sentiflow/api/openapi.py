"""The OpenAPI 3.1 document, generated from the pydantic schemas (one source of truth)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sentiflow import __version__
from sentiflow.api.review import ReviewItemOut, ReviewLabelRequest, ReviewList
from sentiflow.api.schemas import (
    BatchAccepted,
    BatchRequest,
    BatchStatus,
    ClassifyRequest,
    ClassifyResponse,
    ErrorBody,
)
from sentiflow.api.trends import TrendsResponse, openapi_parameters

_REF = "#/components/schemas/{model}"
#: Review-queue bodies (issue 7, sentiflow/api/review.py).
_REVIEW_MODELS: tuple[type[BaseModel], ...] = (ReviewLabelRequest, ReviewItemOut, ReviewList)


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "Error", **_json(ErrorBody)} for c in codes}


def openapi_document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [ClassifyRequest, ClassifyResponse, BatchRequest,
                                     BatchAccepted, BatchStatus, ErrorBody, TrendsResponse]
    _, schemas = models_json_schema(
        [(m, "validation" if m in (ClassifyRequest, BatchRequest, ReviewLabelRequest)
          else "serialization")
         for m in (*models, *_REVIEW_MODELS)], ref_template=_REF)
    common = _errors(401, 429, 503)
    return {
        "openapi": "3.1.0",
        "info": {"title": "sentiflow", "version": __version__,
                 "description": "Real-time multilingual sentiment classification."},
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header",
                                           "name": "X-API-Key"}},
        },
        "paths": {
            "/api/trends": {"get": {
                "summary": "Sentiment counts per hour / day / week, by source, language, topic",
                "parameters": openapi_parameters(),
                "responses": {"200": {"description": "The series", **_json(TrendsResponse)},
                              **_errors(422, 501), **common}}},
            "/api/classify": {"post": {
                "summary": "Classify one text",
                "requestBody": {"required": True, **_json(ClassifyRequest)},
                "responses": {"200": {"description": "The result", **_json(ClassifyResponse)},
                              **_errors(400, 408, 413, 422, 501), **common}}},
            "/api/classify/batch": {"post": {
                "summary": "Queue texts; results go to the webhook and GET /api/batches/{id}",
                "requestBody": {"required": True, **_json(BatchRequest)},
                "responses": {"202": {"description": "Queued", **_json(BatchAccepted)},
                              **_errors(400, 408, 413, 422), **common}}},
            "/api/batches/{batch_id}": {"get": {
                "summary": "Batch status, progress and results so far",
                "parameters": [{"name": "batch_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The batch", **_json(BatchStatus)},
                              **_errors(404), **common}}},
            "/api/results/{request_id}": {"get": {
                "summary": "A stored result",
                "parameters": [{"name": "request_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The result", **_json(ClassifyResponse)},
                              **_errors(404), **common}}},
            "/api/review": {"get": {
                "summary": "Human review queue (open: oldest first; resolved: latest first)",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {
                        "type": "string", "enum": ["open", "resolved"], "default": "open"}},
                    {"name": "limit", "in": "query", "schema": {
                        "type": "integer", "minimum": 1, "maximum": 500, "default": 50}}],
                "responses": {"200": {"description": "Items", **_json(ReviewList)},
                              **_errors(422), **common}}},
            "/api/review/{request_id}": {"post": {
                "summary": "A person's label (becomes a retraining label); same label again "
                           "is a no-op, a different one 409",
                "parameters": [{"name": "request_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "requestBody": {"required": True, **_json(ReviewLabelRequest)},
                "responses": {"200": {"description": "The resolved item",
                                      **_json(ReviewItemOut)},
                              **_errors(400, 404, 408, 409, 422), **common}}},
            "/healthz": {"get": {"summary": "Alive", "responses": {"200": {
                "description": "The process answers"}}}},
            "/readyz": {"get": {"summary": "Tree started and model loaded", "responses": {
                "200": {"description": "Ready"}, "503": {"description": "Not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Text exposition format"}}}},
        },
    }
