"""A whole node (sentiflow.node.open_node) with ``storage.results_url`` on PostgreSQL: posts
classified through the pipeline are durably stored there, batch jobs too, and the node keeps
classifying across a PostgreSQL restart."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sentiflow.actors.messages import LANE
from sentiflow.config.settings import Settings
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from sentiflow.stores.postgres import PostgresResultStore
from sentiflow.stores.records import ClassificationRequest
from tests.node.backends import LexiconBackend
from tests.pg import PrivateCluster

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncpg


def posts(prefix: str, n: int) -> list[ClassificationRequest]:
    texts = ["I love this phone, it is great", "Das ist wirklich schlecht, sehr enttäuscht",
             "a table and a chair in the room"]
    return [ClassificationRequest(request_id=f"{prefix}-{i}", text=texts[i % 3], source="test")
            for i in range(n)]


async def test_node_classifies_into_postgres(
        make_settings: Callable[..., Settings], detector: LanguageDetector,
        postgres_dsn: str) -> None:
    settings = make_settings(STORAGE__RESULTS_URL=postgres_dsn, STORAGE__PG_POOL_SIZE="3")
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        assert isinstance(node.store, PostgresResultStore)
        requests = posts("n", 30)
        results = await node.entry.classify(requests, lane=LANE["standard"], timeout=10)
        assert [r.request_id for r in results] == [q.request_id for q in requests]
        for q, r in zip(requests, results, strict=True):
            stored = await node.store.get_result(q.request_id)
            assert stored is not None
            assert stored.request == q
            assert stored.result == r
        assert results[0].sentiment == "positive"
        assert results[1].sentiment == "negative"
    # And it is all still there for the next node on the same database.
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        again = await node.store.get_result("n-29")
        assert again is not None
        assert again.result == results[29]


async def test_node_keeps_classifying_across_a_postgres_restart(
        make_settings: Callable[..., Settings], detector: LanguageDetector,
        private_pg: PrivateCluster) -> None:
    url = private_pg.create_database()
    settings = make_settings(STORAGE__RESULTS_URL=url, STORAGE__PG_POOL_SIZE="2")
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        await node.entry.classify(posts("before", 5), lane=LANE["standard"], timeout=10)
        private_pg.restart()
        after = await node.entry.classify(posts("after", 5), lane=LANE["realtime"], timeout=10)
        assert len(after) == 5
        assert await node.store.get_result("before-4") is not None
        assert await node.store.get_result("after-4") is not None
        assert node.ready
