"""Scale-out: two ``sentiflow run`` processes in one consumer group, sharing PostgreSQL.

Both nodes get partitions; one is SIGKILLed mid-stream (no drain, no commit, no leave-group);
the survivor takes its partitions over after the session timeout and re-reads from the last
commit. Afterwards every post is in storage exactly once and the group's committed offsets equal
the end of every partition (counts in Kafka == counts in storage).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.ingest.kafka_helpers import committed_offsets, create_topics, post, produce
from tests.ingest.tansu import Tansu
from tests.net import free_port
from tests.pg import postgres_dsn, postgres_server  # noqa: F401  (pytest fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

REPO = Path(__file__).resolve().parents[2]
SENTIFLOW = Path(sys.executable).parent / "sentiflow"


def node_env(tmp: Path, name: str, broker: Tansu, topic: str, group: str, dlq: str,
             results_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SENTIFLOW_NODE__NAME": name,
        "SENTIFLOW_NODE__HOME": str(tmp / name),
        "SENTIFLOW_API__PORT": str(free_port()),
        "SENTIFLOW_CLASSIFIER__MODEL": "python:tests.ingest.backends:slow_lexicon",
        "SENTIFLOW_STORAGE__RESULTS_URL": results_url,
        "SENTIFLOW_DRIFT__ENABLED": "false",
        "SENTIFLOW_KAFKA__BOOTSTRAP_SERVERS": f'["{broker.bootstrap}"]',
        "SENTIFLOW_KAFKA__TOPICS": f'["{topic}"]',
        "SENTIFLOW_KAFKA__GROUP_ID": group,
        "SENTIFLOW_KAFKA__DEAD_LETTER_TOPIC": dlq,
        "SENTIFLOW_KAFKA__SESSION_TIMEOUT_MS": "1000",
        "SENTIFLOW_KAFKA__HEARTBEAT_INTERVAL_MS": "200",
        "SENTIFLOW_KAFKA__COMMIT_INTERVAL_MS": "50",
        "SENTIFLOW_KAFKA__MAX_POLL_RECORDS": "25",
        "SENTIFLOW_CLASSIFIER__MAX_BATCH": "16",
    }


@pytest.fixture
def nodes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def stored(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["request_id"] for r in await conn.fetch("SELECT request_id FROM results")]
    finally:
        await conn.close()


async def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_two_nodes_share_partitions_and_survive_a_sigkill(
        broker: Tansu, names: Callable[[str], str], postgres_dsn: str,  # noqa: F811
        tmp_path: Path, nodes: list[subprocess.Popen[bytes]]) -> None:
    topic, group, dlq = names("posts"), names("group"), names("dlq")
    await create_topics(broker.bootstrap, {topic: 4, dlq: 1})
    logs = []
    for name in ("node-a", "node-b"):
        log = (tmp_path / f"{name}.log").open("wb")
        logs.append(log)
        nodes.append(subprocess.Popen(  # noqa: ASYNC220 (started once, never awaited)
            [str(SENTIFLOW), "run"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            env=node_env(tmp_path, name, broker, topic, group, dlq, postgres_dsn)))

    def assigned(name: str) -> bool:
        return "assigned [" in (tmp_path / f"{name}.log").read_text(errors="replace") and \
            "assigned []" not in (tmp_path / f"{name}.log").read_text(errors="replace") \
            .rsplit("assigned", 1)[-1][:3]

    await wait_for(lambda: assigned("node-a") and assigned("node-b"), 60,
                   "both nodes to get partitions")
    # Posts produced before the kill (some of them in flight on the victim, not yet committed)
    # and after it (on the victim's former partitions too): the survivor must store them all.
    before, after = 3000, 1000
    total = before + after
    placed = await produce(broker.bootstrap, topic, [post(f"good {i}") for i in range(before)])
    await wait_for(lambda: _count_at_least(postgres_dsn, 150), 60, "some posts stored")
    victim = nodes[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    placed += await produce(broker.bootstrap, topic,
                            [post(f"good {i}") for i in range(before, total)])
    want = {f"kafka.{topic}.{p}.{o}" for p, o in placed}
    assert len(want) == total

    async def all_stored() -> bool:
        return set(await stored(postgres_dsn)) >= want

    await wait_for(all_stored, 120, "the survivor to store every post")
    ends: dict[tuple[str, int], int] = {}
    for p, o in placed:
        ends[(topic, p)] = max(ends.get((topic, p), 0), o + 1)

    async def all_committed() -> bool:
        committed = await committed_offsets(broker.bootstrap, group)
        return {k: v for k, v in committed.items() if k[0] == topic} == ends

    await wait_for(all_committed, 60, "every offset committed")
    ids = await stored(postgres_dsn)
    assert len(ids) == len(set(ids)) == total  # exactly once in storage
    survivor_log = (tmp_path / "node-b.log").read_text(errors="replace")
    assert survivor_log.count("assigned [") >= 2  # it took over the victim's partitions
    for log in logs:
        log.close()


async def _count_at_least(dsn: str, n: int) -> bool:
    return len(await stored(dsn)) >= n
