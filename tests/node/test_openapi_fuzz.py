"""Property tests of every POST route, generated from the node's published ``/openapi.json``.

Bodies valid against a route's request schema never get a 5xx; bodies mutated to be invalid
against it (checked with ``jsonschema``) get a 4xx ``{error, detail}``, so the document and the
API's validation cannot drift apart in the direction that matters: the API is never looser
than what it publishes. Complements the hand-written strategies of
tests/node/test_http_api.py::test_fuzzed_bodies_never_crash_the_api. asyncio only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiflow.config.settings import Settings
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from tests.net import free_port, serving
from tests.node.backends import LexiconBackend
from tests.node.openapi_strategies import SchemaDocument, invalid_bodies

pytestmark = pytest.mark.anyio

#: Stand-in for path parameters (``/api/review/{request_id}``): a well-formed id with no result.
PATH_VALUE = "fuzz-1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def served(make_settings: Callable[..., Settings], detector: LanguageDetector
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, list[tuple[str, SchemaDocument]]]]:
    settings = make_settings(API__PORT=str(free_port()), API__RATE_LIMIT_PER_SECOND="0")
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node, \
            serving(node) as client:
        spec = (await client.get("/openapi.json")).json()
        yield client, post_routes(spec)


def post_routes(spec: dict[str, Any]) -> list[tuple[str, SchemaDocument]]:
    """(concrete path, request schema) of every POST route in the document."""
    routes = []
    for path, item in spec["paths"].items():
        operation = item.get("post")
        if operation is None:
            continue
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        concrete = path
        for param in operation.get("parameters", item.get("parameters", [])):
            concrete = concrete.replace("{" + param["name"] + "}", PATH_VALUE)
        while "{" in concrete:  # a parameter the operation does not declare: still fill it
            start, end = concrete.index("{"), concrete.index("}")
            concrete = concrete[:start] + PATH_VALUE + concrete[end + 1:]
        routes.append((concrete, SchemaDocument(spec, schema)))
    return routes


def run_examples(client: httpx.AsyncClient, strategy: st.SearchStrategy[tuple[str, bytes]],
                 check: Callable[[str, bytes, httpx.Response], None]) -> None:
    """Drive hypothesis from a worker thread; each example is one request on the loop."""

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=strategy)
    def examples(case: tuple[str, bytes]) -> None:
        path, body = case

        async def send() -> httpx.Response:
            return await client.post(path, content=body,
                                     headers={"content-type": "application/json"})

        check(path, body, anyio.from_thread.run(send))

    examples()


def as_json(body: object) -> bytes:
    return json.dumps(body).encode()


async def test_valid_bodies_never_get_a_5xx(make_settings: Callable[..., Settings],
                                            detector: LanguageDetector) -> None:
    async with served(make_settings, detector) as (client, routes):
        assert {p for p, _ in routes} == {"/api/classify", "/api/classify/batch",
                                         f"/api/review/{PATH_VALUE}"}
        statuses: list[int] = []
        cases = st.one_of([st.tuples(st.just(path), doc.strategy().map(as_json))
                           for path, doc in routes])

        def check(path: str, body: bytes, r: httpx.Response) -> None:
            assert r.status_code < 500, (path, body[:300], r.status_code, r.text[:300])
            if r.status_code >= 400:  # valid per the schema, refused by a runtime rule
                assert set(r.json()) == {"error", "detail"}, (path, r.text)
            statuses.append(r.status_code)

        await anyio.to_thread.run_sync(run_examples, client, cases, check)
        assert {200, 202} & set(statuses), statuses  # bodies got through to the pipeline


async def test_invalid_bodies_get_a_4xx_with_error_and_detail(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    async with served(make_settings, detector) as (client, routes):
        broken_json = st.sampled_from([b"{", b'{"text": "x",}', b"", b"\xff", b"[1, 2"])
        cases = st.one_of(
            [st.tuples(st.just(path), invalid_bodies(doc).map(as_json)) for path, doc in routes]
            + [st.tuples(st.sampled_from([p for p, _ in routes]), broken_json)])

        def check(path: str, body: bytes, r: httpx.Response) -> None:
            assert 400 <= r.status_code < 500, (path, body[:300], r.status_code, r.text[:300])
            assert r.status_code != 404, (path, r.text)  # refused before any look-up
            error = r.json()
            assert set(error) == {"error", "detail"}, (path, r.text)
            assert error["error"], (path, r.text)
            assert error["detail"], (path, r.text)

        await anyio.to_thread.run_sync(run_examples, client, cases, check)
