"""Log lines about posts name them: structured ``request_id`` / ``request_ids`` / ``batch_id``.

End to end: a real ``sentiflow run`` with ``logging.format = "json"``, its stderr parsed line by
line: a post that fails names its request_id in the lines written where it failed, inside the
actors, whether it came over HTTP or from Kafka. The model is the lexicon test model that raises
on "POISON" (a poison post: the classifier isolates it by bisection); the broker is tansu, as in
tests/ingest. In process (caplog): a failed durable write, a webhook that gives up, a failed LLM
escalation.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from sentiflow.config.settings import load_settings
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from sentiflow.runtime import Priority
from sentiflow.stores.errors import StorageError
from sentiflow.stores.records import ClassificationRequest, ResultRecord
from tests.api.webhook_receiver import receiver
from tests.ingest.kafka_helpers import create_topics, post, produce, read_topic
from tests.ingest.tansu import Tansu
from tests.llm.fake_openai import running_fake
from tests.llm.nodes import UNCLEAR, llm_node, node_settings
from tests.net import free_port, serving
from tests.node.backends import LexiconBackend
from tests.ops.backends import POISON
from tests.ops.conftest import NodeProcess, kafka_env, minimal_env

Line = dict[str, Any]


def json_lines(node: NodeProcess) -> list[Line]:
    """Every JSON object the node wrote to stdout / stderr so far, in order."""
    out = []
    for raw in node.log().splitlines():
        if raw.startswith("{"):
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # a line being written right now
    return out


def names(line: Line, request_id: str) -> bool:
    """Does the line name the post, as ``request_id`` or among ``request_ids``?"""
    return line.get("request_id") == request_id or request_id in line.get("request_ids", ())


def wait_for_line(node: NodeProcess, match: Callable[[Line], bool], what: str,
                  within: float = 30.0) -> Line:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for line in json_lines(node):
            if match(line):
                return line
        time.sleep(0.1)
    raise AssertionError(f"no log line {what} within {within} s:\n{node.log()[-4000:]}")


@pytest.mark.slow
def test_failed_posts_name_their_request_id_in_json_logs(
        start_node: Callable[..., NodeProcess], kafka_broker: Tansu) -> None:
    run = f"logs{os.getpid()}-{time.monotonic_ns()}"
    env = {k.removeprefix("SENTIFLOW_"): v for k, v in kafka_env(kafka_broker, run).items()}
    anyio.run(create_topics, kafka_broker.bootstrap, {f"{run}-posts": 1, f"{run}-dlq": 1})
    node = start_node(LOGGING__FORMAT="json",
                      CLASSIFIER__MODEL="python:tests.ops.backends:poison_lexicon", **env)
    node.wait_ready()

    # (a) HTTP: the caller's X-Request-ID is the post's request_id when the body names none.
    ok = httpx.post(f"{node.base_url}/api/classify", json={"text": "i love this"},
                    headers={"X-Request-ID": "e2e-http-ok"}, timeout=10)
    assert ok.status_code == 200, ok.text
    assert ok.json()["request_id"] == "e2e-http-ok"
    bad = httpx.post(f"{node.base_url}/api/classify", json={"text": f"{POISON} pill"},
                     headers={"X-Request-ID": "e2e-http-poison"}, timeout=10)
    assert bad.status_code == 422, bad.text  # the input, not the node: no Retry-After
    assert bad.json()["error"] == "unprocessable"
    assert bad.headers["X-Request-ID"] == "e2e-http-poison"
    classifier = wait_for_line(
        node, lambda ln: ln["logger"] == "sentiflow.actors.classifier"
        and ln.get("request_id") == "e2e-http-poison", "from the classifier for the HTTP post")
    assert classifier["level"] == "WARNING"
    assert "bisection" in classifier["msg"]
    api = wait_for_line(node, lambda ln: ln["logger"] == "sentiflow.api"
                        and ln.get("request_id") == "e2e-http-poison", "from the API handler")
    assert api["http_request_id"] == "e2e-http-poison"

    # (b) Kafka: a poison post among good ones is bisected out and dead-lettered.
    values = [post(f"great phone {i}", request_id=f"e2e-kafka-ok-{i}") for i in range(3)]
    values.insert(1, post(f"{POISON} from kafka", request_id="e2e-kafka-poison"))
    anyio.run(produce, kafka_broker.bootstrap, f"{run}-posts", values)
    letters = anyio.run(read_topic, kafka_broker.bootstrap, f"{run}-dlq", 1)
    assert len(letters) == 1
    dead = wait_for_line(node, lambda ln: ln["logger"] == "sentiflow.ingest.reader"
                         and ln.get("request_id") == "e2e-kafka-poison", "for the dead letter")
    assert dead["level"] == "WARNING"
    assert dead["dead_letter_kind"] == "unprocessable"
    assert (dead["kafka_topic"], dead["kafka_partition"], dead["kafka_offset"]) == (
        f"{run}-posts", 0, 1)
    assert dead["dead_letter_topic"] == f"{run}-dlq"
    # ...and the classifier's lines about the Kafka submissions it failed on name it too.
    wait_for_line(node, lambda ln: ln["logger"] == "sentiflow.actors.classifier"
                  and names(ln, "e2e-kafka-poison"), "from the classifier for the Kafka post")

    assert node.terminate() == 0
    lines = json_lines(node)
    assert {"ts", "level", "logger", "msg", "request_id"} <= set(lines[0])
    # A post that went through is named by no failure line (ids are the post's, not global).
    assert not [ln for ln in lines if names(ln, "e2e-http-ok") and ln["level"] != "INFO"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Quart / Hypercorn


def records_naming(caplog: pytest.LogCaptureFixture, logger: str, **fields: object
                   ) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger
            and all(getattr(r, k, None) == v for k, v in fields.items())]


@pytest.mark.anyio
async def test_a_failed_write_and_a_failed_webhook_name_their_posts_and_batch(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(None, env={
        **minimal_env(tmp_path / "home"), "SENTIFLOW_API__PORT": str(free_port()),
        "SENTIFLOW_WEBHOOK__SECRET": "s3cret-for-tests",
        "SENTIFLOW_WEBHOOK__ALLOW_HOSTS": '["127.0.0.1"]', "SENTIFLOW_WEBHOOK__MAX_ATTEMPTS": "2",
        "SENTIFLOW_WEBHOOK__BACKOFF_INITIAL_S": "0.01", "SENTIFLOW_WEBHOOK__BACKOFF_MAX_S": "0.02"})
    caplog.set_level(logging.INFO)
    async with receiver(default=500) as hook, \
            open_node(settings, backends=[LexiconBackend()],
                      detector=LanguageDetector()) as node, serving(node) as client:
        original = node.store.write_results

        async def full_disk(batch: Sequence[ResultRecord]) -> None:
            if any(r.request_id == "write-fails" for r in batch):
                raise StorageError("injected: disk full")
            await original(batch)

        monkeypatch.setattr(node.store, "write_results", full_disk)
        r = await client.post("/api/classify", json={"text": "hi", "request_id": "write-fails"})
        assert r.status_code == 503
        [sink] = records_naming(caplog, "sentiflow.actors.sink", request_id="write-fails")
        assert sink.levelno == logging.ERROR

        r = await client.post("/api/classify/batch", json={
            "items": [{"text": f"great {i}", "request_id": f"job-{i}"} for i in range(3)],
            "webhook_url": hook.url})
        assert r.status_code == 202, r.text
        batch_id = r.json()["batch_id"]
        for _ in range(400):
            if (await client.get(f"/api/batches/{batch_id}")).json()["status"] == "completed":
                break
            await anyio.sleep(0.05)
        else:
            raise AssertionError("the batch job did not complete")
    attempts = records_naming(caplog, "sentiflow.actors.batch_jobs", batch_id=batch_id,
                              webhook_outcome="retrying")
    assert [a.attempt for a in attempts] == [1]  # type: ignore[attr-defined]
    assert records_naming(caplog, "sentiflow.actors.batch_jobs", batch_id=batch_id,
                          webhook_outcome="gave_up", status_code=500)
    [final] = records_naming(caplog, "sentiflow.actors.batch_jobs", batch_id=batch_id,
                             webhook_state="failed")
    assert final.levelno == logging.WARNING
    assert final.attempts == 2  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_a_failed_llm_escalation_names_its_post(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_fake() as fake, llm_node(
            node_settings(tmp_path, fake.base_url, LLM__MAX_ATTEMPTS="1", LLM__POOL_SIZE="1",
                          LLM__MAX_POSTS_PER_REQUEST="1"), LanguageDetector()) as node:
        fake.script.append("500")
        [result] = await node.entry.classify(
            [ClassificationRequest(request_id="unsure-1", text=UNCLEAR[0], language="en")],
            lane=Priority.NORMAL, timeout=20)
    assert result.review_reason == "llm_failed"  # the fast result stands, flagged
    [line] = records_naming(caplog, "sentiflow.actors.escalator", request_id="unsure-1")
    assert line.levelno == logging.WARNING
    assert line.reason == "llm_failed"  # type: ignore[attr-defined]
