"""AspectWorkers inside a running node (both anyio backends): only posts that asked for
aspects get them, whole submissions stay in order, the mixed rule applies, records are stored
with the result and batch jobs carry them too."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest

from sentiflow.actors.aspects import NextStage, next_stage_path
from sentiflow.actors.messages import LANE, Routed
from sentiflow.config.settings import Settings, load_settings
from sentiflow.models.base import Probabilities
from sentiflow.models.langid import LanguageDetector
from sentiflow.node import open_node
from sentiflow.runtime import DeferredReply
from sentiflow.stores.records import BatchJob, ClassificationRequest
from tests.aspects.sanity import PolarityWordsBackend

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        environ = {"SENTIFLOW_NODE__HOME": str(tmp_path / "home"),
                   "SENTIFLOW_TRENDS__ENABLED": "false"}
        environ.update({f"SENTIFLOW_{k}": v for k, v in env.items()})
        return load_settings(None, env=environ)
    return make


def req(rid: str, text: str, aspects: bool, language: str = "auto") -> ClassificationRequest:
    return ClassificationRequest(request_id=rid, text=text, aspects=aspects, language=language)


async def test_aspects_only_where_asked_and_mixed_rule(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    async with open_node(make_settings(), backends=[PolarityWordsBackend()],
                         detector=detector) as node:
        text = "The product is great but shipping took forever."
        asked, plain, one_sided = await node.entry.classify(
            [req("a", text, True, "en"), req("b", text, False, "en"),
             req("c", "Excellent price and amazing screen.", True, "en")],
            lane=LANE["standard"], timeout=10)
        assert [r.request_id for r in (asked, plain, one_sided)] == ["a", "b", "c"]
        assert plain.aspects == ()
        assert plain.sentiment != "mixed"
        assert [(a.aspect_id, a.aspect_name, a.sentiment, a.text_span)
                for a in asked.aspects] == [
            ("a#0", "product quality", "positive", (4, 11)),  # "product"
            ("a#1", "shipping", "negative", (text.index("shipping"), text.index("shipping") + 8))]
        assert asked.sentiment == "mixed"
        assert asked.confidence == pytest.approx(0.9, abs=1e-6)
        assert asked.fast_confidence is not None
        assert one_sided.sentiment == "positive"
        assert {a.aspect_name for a in one_sided.aspects} == {"price", "display"}
        stored = await node.store.get_result("a")
        assert stored is not None
        assert stored.result.aspects == asked.aspects
        assert stored.result.sentiment == "mixed"


async def test_batch_job_post_that_asked_for_aspects(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    async with open_node(make_settings(), backends=[PolarityWordsBackend()],
                         detector=detector) as node:
        requests = [req("j1", "La comida estaba deliciosa pero el servicio fue malo.", True),
                    req("j2", "La comida estaba deliciosa.", False)]
        await node.store.create_batch(BatchJob(batch_id="job", count=2), requests)
        await node.start_batch("job")
        with anyio.fail_after(10):
            while True:
                view = await node.store.get_batch("job")
                assert view is not None
                if view.job.status == "completed":
                    break
                await anyio.sleep(0.05)
        by_id = {r.request_id: r.result for r in view.results}
        assert [(a.aspect_name, a.sentiment) for a in by_id["j1"].aspects] == [
            ("food", "positive"), ("customer service", "negative")]
        assert by_id["j1"].sentiment == "mixed"
        assert by_id["j2"].aspects == ()


async def test_disabled_pool_routes_to_the_sink(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    async with open_node(make_settings(ASPECTS__ENABLED="false"),
                         backends=[PolarityWordsBackend()], detector=detector) as node:
        assert node.snapshot().find("/root/pipeline/aspects-0") is None
        (r,) = await node.entry.classify([req("x", "great price, awful screen", True, "en")],
                                         lane=LANE["standard"], timeout=10)
        assert r.aspects == ()


def test_next_stage_choice() -> None:
    from sentiflow.actors.messages import Post, Submission

    def routed(*asks: bool) -> Routed:
        posts = tuple(Post(req(str(i), "t", a), 0.0) for i, a in enumerate(asks))
        return Routed(submissions=(Submission(posts, DeferredReply.waitable()),),
                      results=((),))

    pool = ["/p/aspects-0", "/p/aspects-1"]
    assert next_stage_path(routed(False, True), pool, "/p/sink") == "/p/aspects-0"
    assert next_stage_path(routed(False), pool, "/p/sink") == "/p/sink"
    assert next_stage_path(routed(True), [], "/p/sink") == "/p/sink"
    choose = NextStage(pool, "/p/sink")
    assert [choose(routed(True)) for _ in range(3)] == [pool[0], pool[1], pool[0]]
    assert choose(routed(False)) == "/p/sink"


class OneCallerBackend(PolarityWordsBackend):
    """Records how many threads are inside ``predict_proba`` at once (the protocol allows one:
    a Hugging Face tokenizer fails with "Already borrowed" when two threads share it)."""

    def __init__(self) -> None:
        super().__init__()
        self._guard = threading.Lock()
        self.inside = 0
        self.most_inside = 0

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        with self._guard:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            time.sleep(0.002)  # long enough for an unserialised caller to overlap
            return super().predict_proba(texts, languages)
        finally:
            with self._guard:
                self.inside -= 1


async def test_classifier_and_aspect_workers_never_call_the_backend_at_once(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = OneCallerBackend()
    text = "The product is great but shipping took forever."
    # No linger: each staggered post is a classifier batch of its own (the default linger
    # would group them), so that many batches overlap the workers' clause calls.
    settings = make_settings(ASPECTS__POOL_SIZE="2", LANGUAGE__MAX_WAIT_MS="0")
    async with open_node(settings, backends=[backend], detector=detector) as node:
        async def one(i: int) -> None:
            await anyio.sleep(i * 0.003)  # staggered: classifier batches overlap clause calls
            await node.entry.classify([req(f"p{i}", text, i % 2 == 0, "en")],
                                      lane=LANE["standard"], timeout=20)

        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(one, i)
    assert len(backend.calls) > 30  # the classifier's batches and the workers' clauses
    assert backend.most_inside == 1
