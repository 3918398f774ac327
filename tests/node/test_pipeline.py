"""The actor pipeline end to end (no HTTP): detection, micro-batching, routing, durable
writes, priority, crashes and storage failures. Both anyio backends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial

import anyio
import pytest

from sentiflow.actors.messages import LANE, PipelineError, UnprocessablePostError
from sentiflow.config.settings import Settings
from sentiflow.config.tree import SINK, classifier_path
from sentiflow.models.base import Probabilities
from sentiflow.models.langid import LanguageDetector
from sentiflow.models.preprocess import normalize_text
from sentiflow.node import Node, open_node
from sentiflow.runtime import ActorSnapshot, HistogramSnapshot, MailboxFull
from sentiflow.stores.records import ClassificationRequest
from tests.node.backends import LexiconBackend, LightweightLexicon, NormalizingLexicon

pytestmark = pytest.mark.anyio

TEXTS = {
    "en": "I love this phone, it is great and the screen is excellent",
    "de": "Das ist wirklich schlecht, ich bin sehr enttäuscht von dem Produkt",
    "es": "El servicio fue horrible y la comida muy mala, no vuelvo nunca",
    "fr": "Le produit est génial, je suis très content de mon achat",
}


def req(text: str, rid: str, language: str = "auto", priority: str = "standard"
        ) -> ClassificationRequest:
    return ClassificationRequest(request_id=rid, text=text, language=language,
                                 priority=priority)  # type: ignore[arg-type]


def actor(node_snapshot: object, path: str) -> ActorSnapshot:
    assert isinstance(node_snapshot, ActorSnapshot), path
    return node_snapshot


async def test_classifies_detects_language_and_stores(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = LexiconBackend()
    async with open_node(make_settings(), backends=[backend], detector=detector) as node:
        requests = [req(t, f"r-{lang}") for lang, t in TEXTS.items()]
        results = await node.entry.classify(requests, lane=LANE["standard"], timeout=5)
        assert [r.request_id for r in results] == [r.request_id for r in requests]
        by_id = {r.request_id: r for r in results}
        assert {k: by_id[f"r-{k}"].language_detected for k in TEXTS} == {k: k for k in TEXTS}
        assert by_id["r-en"].sentiment == "positive"
        assert by_id["r-de"].sentiment == "negative"
        assert all(r.latency_ms > 0 and r.model_used == "lexicon:t1" for r in results)
        stored = await node.store.get_result("r-es")
        assert stored is not None
        assert stored.result.sentiment == "negative"
        # explicit language wins over detection
        (forced,) = await node.entry.classify([req(TEXTS["en"], "x", language="it")],
                                              lane=LANE["realtime"], timeout=5)
        assert forced.language_detected == "it"


async def test_low_confidence_is_flagged_for_review(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    async with open_node(make_settings(ROUTER__PER_LANGUAGE='{"fr": 0.9}'),
                         backends=[LexiconBackend()], detector=detector) as node:
        unsure, sure, fr = await node.entry.classify(
            [req("a table and a chair in the room", "u"), req(TEXTS["en"], "s"),
             req(TEXTS["fr"], "f")], lane=LANE["standard"], timeout=5)
        assert unsure.needs_review
        assert unsure.confidence < 0.75
        assert not sure.needs_review
        assert fr.needs_review  # 0.8 is under the French override of 0.9


async def test_concurrent_posts_are_micro_batched(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = LexiconBackend()
    settings = make_settings(CLASSIFIER__MAX_BATCH="16", CLASSIFIER__MAX_WAIT_MS="20")
    async with open_node(settings, backends=[backend], detector=detector) as node:
        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(partial(node.entry.classify, [req(f"great post {i}", f"p{i}")],
                                      lane=LANE["standard"], timeout=5))
        sizes = actor(node.snapshot().find(classifier_path(0)), "classifier").metrics[
            "batch_size"]
        assert isinstance(sizes, HistogramSnapshot)
        assert sizes.sum == 100
        assert sizes.count < 30, f"100 single posts took {sizes.count} model calls"
        assert max(len(c) for c in backend.calls) <= 16


async def test_realtime_overtakes_batch_priority(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = LexiconBackend()
    settings = make_settings(CLASSIFIER__MAX_BATCH="4", CLASSIFIER__MAX_WAIT_MS="0")
    async with open_node(settings, backends=[backend], detector=detector) as node:
        backend.gate.clear()
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(node.entry.classify, [req("first good", "first")],
                                  lane=LANE["batch"], timeout=5))
            await anyio.to_thread.run_sync(backend.entered.wait)  # the model is now busy
            for i in range(8):
                tg.start_soon(partial(node.entry.classify, [req(f"batch good {i}", f"b{i}")],
                                      lane=LANE["batch"], timeout=5))
            await anyio.sleep(0.1)
            tg.start_soon(partial(node.entry.classify, [req("urgent good", "rt")],
                                  lane=LANE["realtime"], timeout=5))
            await anyio.sleep(0.1)
            backend.gate.set()
        order = [t for call in backend.calls for t in call]
        assert order.index("urgent good") < min(order.index(f"batch good {i}") for i in range(8))


async def test_a_poison_post_fails_alone_and_the_rest_of_its_batch_is_classified(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = LexiconBackend(crash_marker="BOOM")
    async with open_node(make_settings(CLASSIFIER__MAX_WAIT_MS="20"), backends=[backend],
                         detector=detector) as node:
        outcomes = await _sixty_concurrent(node, poison={17})
        assert outcomes.pop("c17") == "unprocessable"
        assert set(outcomes.values()) == {"ok"}
        snap = actor(node.snapshot().find(classifier_path(0)), "classifier")
        assert snap.restarts == 0
        assert snap.metrics["unprocessable"] == 1
        for rid in outcomes:  # what was answered ok is durable
            assert await node.store.get_result(rid) is not None


async def test_a_broken_model_answers_every_caller_and_the_classifier_restarts(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = LexiconBackend(crash_marker="good")  # every text below contains it
    async with open_node(make_settings(CLASSIFIER__MAX_WAIT_MS="20"), backends=[backend],
                         detector=detector) as node:
        outcomes = await _sixty_concurrent(node, poison=set())
        assert len(outcomes) == 60  # every request answered, none hung into the timeout
        assert "ok" not in outcomes.values()
        for _ in range(500):  # the restart completes shortly after the last answer
            snap = actor(node.snapshot().find(classifier_path(0)), "classifier")
            if snap.state == "running":
                break
            await anyio.sleep(0.01)
        assert snap.state == "running"
        assert snap.restarts >= 1
        backend.crash_marker = None  # the model recovers: the restarted actor serves again
        (after,) = await node.entry.classify([req("good again", "after")],
                                             lane=LANE["standard"], timeout=5)
        assert after.sentiment == "positive"


class _BrokenModel(LexiconBackend):
    """Raises on every text: a model fault, not a poison post."""

    def predict_proba(self, texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        raise RuntimeError("weights corrupted")


async def test_a_broken_model_under_light_load_is_not_blamed_on_the_post(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    """One lone submission per batch cannot be bisected; the canary tells a broken model
    (retryable PipelineError + restart) from a poison post (UnprocessablePostError)."""
    async with open_node(make_settings(), backends=[_BrokenModel()],
                         detector=detector) as node:
        with pytest.raises(PipelineError) as caught:
            await node.entry.classify([req("a lone post", "lone")], lane=LANE["standard"],
                                      timeout=5)
        assert not isinstance(caught.value, UnprocessablePostError)
        for _ in range(500):
            snap = actor(node.snapshot().find(classifier_path(0)), "classifier")
            if snap.restarts >= 1 and snap.state == "running":
                break
            await anyio.sleep(0.01)
        assert snap.restarts >= 1
        assert snap.metrics["unprocessable"] == 0


async def _sixty_concurrent(node: Node, poison: set[int]) -> dict[str, str]:
    outcomes: dict[str, str] = {}

    async def one(i: int) -> None:
        text = "BOOM" if i in poison else f"good text {i}"
        try:
            await node.entry.classify([req(text, f"c{i}")], lane=LANE["standard"], timeout=5)
            outcomes[f"c{i}"] = "ok"
        except UnprocessablePostError:
            outcomes[f"c{i}"] = "unprocessable"
        except PipelineError:
            outcomes[f"c{i}"] = "error"

    async with anyio.create_task_group() as tg:
        for i in range(60):
            tg.start_soon(one, i)
    return outcomes


async def test_storage_failure_fails_the_request_not_the_node(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    async with open_node(make_settings(), backends=[LexiconBackend()], detector=detector) as node:
        await node.store.close()  # every write now raises StorageClosedError
        with pytest.raises(PipelineError, match="storage"):
            await node.entry.classify([req("good", "s1")], lane=LANE["standard"], timeout=5)
        sink = actor(node.snapshot().find(SINK), "sink")
        assert sink.metrics["write_failures"] == 1
        assert sink.restarts == 0


async def test_full_mailboxes_refuse_offers_instead_of_queueing(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = LexiconBackend()
    settings = make_settings(LANGUAGE__POOL_SIZE="1", LANGUAGE__MAILBOX_SIZE="2",
                             CLASSIFIER__MAILBOX_SIZE="2", CLASSIFIER__MAX_BATCH="1",
                             CLASSIFIER__MAX_WAIT_MS="0")
    async with open_node(settings, backends=[backend], detector=detector) as node:
        backend.gate.clear()
        refused = 0
        replies = []
        for i in range(20):
            try:
                replies.append(await node.entry.submit([req("good", f"m{i}")],
                                                       lane=LANE["standard"],
                                                       offer_timeout=0.01))
            except MailboxFull:
                refused += 1
        assert refused > 0
        backend.gate.set()
        for reply in replies:  # everything accepted is answered
            assert len(await reply.wait()) == 1


@pytest.mark.parametrize(("budget_ms", "on_loop"), [("1.0", True), ("0", False)])
async def test_a_lightweight_models_small_batches_run_on_the_event_loop(
        make_settings: Callable[..., Settings], detector: LanguageDetector, budget_ms: str,
        on_loop: bool) -> None:
    backend = LightweightLexicon()
    settings = make_settings(CLASSIFIER__INLINE_BUDGET_MS=budget_ms)
    async with open_node(settings, backends=[backend], detector=detector) as node:
        for i in range(5):
            (result,) = await node.entry.classify([req(f"great post {i}", f"p{i}")],
                                                  lane=LANE["standard"], timeout=5)
            assert result.sentiment == "positive"
        inline = actor(node.snapshot().find(classifier_path(0)), "classifier").metrics[
            "inline_batches"]
    loop_thread = threading.get_ident()
    assert [t == loop_thread for t in backend.threads] == [on_loop] * 5
    assert inline == (5 if on_loop else 0)


async def test_other_models_always_run_in_a_worker_thread(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    backend = LexiconBackend()  # says nothing about being lightweight: treated as heavy
    seen: list[int] = []
    original = backend.predict_proba

    def recording(texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        seen.append(threading.get_ident())
        return original(texts, languages)

    backend.predict_proba = recording  # type: ignore[method-assign]
    async with open_node(make_settings(CLASSIFIER__INLINE_BUDGET_MS="100"), backends=[backend],
                         detector=detector) as node:
        for i in range(3):
            await node.entry.classify([req(f"good {i}", f"g{i}")], lane=LANE["standard"],
                                      timeout=5)
    assert seen
    assert threading.get_ident() not in seen


async def test_a_post_is_normalised_once_for_a_backend_that_takes_normalised_text(
        make_settings: Callable[..., Settings], detector: LanguageDetector) -> None:
    """The language stage's normalised text of an "auto" post goes to the model as it is; a
    post with its own language (never normalised by that stage) is normalised in the
    classifier; the model's raw entry point is not used."""
    backend = NormalizingLexicon()
    auto = "Sooooo GOOD!!! see https://example.com @shop"
    forced = "Das Essen war  SCHLECHT"
    async with open_node(make_settings(), backends=[backend], detector=detector) as node:
        results = await node.entry.classify([req(auto, "a"), req(forced, "f", language="de")],
                                            lane=LANE["standard"], timeout=5)
    assert [r.sentiment for r in results] == ["positive", "negative"]
    assert backend.normalized_calls == [[normalize_text(auto), normalize_text(forced)]]
    assert backend.calls == backend.normalized_calls  # no call through predict_proba


def _count_detector_calls(detector: LanguageDetector, monkeypatch: pytest.MonkeyPatch
                          ) -> list[int]:
    sizes: list[int] = []
    original = detector.detect_batch_normalized

    def counting(normalized: Sequence[str]) -> list[object]:
        sizes.append(len(normalized))
        return original(normalized)  # type: ignore[return-value]

    monkeypatch.setattr(detector, "detect_batch_normalized", counting)
    return sizes


async def test_submissions_queued_together_are_detected_in_one_call(
        make_settings: Callable[..., Settings], detector: LanguageDetector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = _count_detector_calls(detector, monkeypatch)
    async with open_node(make_settings(LANGUAGE__POOL_SIZE="1"), backends=[LexiconBackend()],
                         detector=detector) as node:
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(partial(node.entry.classify, [req(TEXTS["de"], f"d{i}")],
                                      lane=LANE["standard"], timeout=5))
        stored = await node.store.get_result("d39")
    assert sum(sizes) == 40
    assert len(sizes) < 20, f"40 queued posts took {len(sizes)} detector calls"
    assert stored is not None
    assert stored.result.language_detected == "de"


async def test_language_stage_lingers_so_posts_arriving_apart_share_one_batch(
        make_settings: Callable[..., Settings], detector: LanguageDetector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Posts submitted 20 ms apart, inside a 1 s linger, go through detection, the classifier
    and the write together; without the linger each would be a batch of its own."""
    sizes = _count_detector_calls(detector, monkeypatch)
    backend = LexiconBackend()
    batches: list[int] = []
    original = backend.predict_proba

    def recording(texts: Sequence[str], languages: Sequence[str]) -> Probabilities:
        batches.append(len(texts))
        return original(texts, languages)

    backend.predict_proba = recording  # type: ignore[method-assign]
    settings = make_settings(LANGUAGE__POOL_SIZE="1", LANGUAGE__MAX_WAIT_MS="1000")
    async with open_node(settings, backends=[backend], detector=detector) as node:
        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(partial(node.entry.classify, [req(TEXTS["fr"], f"f{i}")],
                                      lane=LANE["realtime"], timeout=10))
                await anyio.sleep(0.02)
        elapsed = anyio.current_time() - started
    assert sizes == [5]
    assert batches == [5]
    assert 0.9 <= elapsed < 5, elapsed  # held for the linger, then answered


async def test_linger_ends_early_when_the_batch_is_full(
        make_settings: Callable[..., Settings], detector: LanguageDetector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = _count_detector_calls(detector, monkeypatch)
    settings = make_settings(LANGUAGE__POOL_SIZE="1", LANGUAGE__MAX_WAIT_MS="10000",
                             CLASSIFIER__MAX_BATCH="4")
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        with anyio.fail_after(5):  # far less than the 10 s linger
            async with anyio.create_task_group() as tg:
                for i in range(4):
                    tg.start_soon(partial(node.entry.classify, [req(TEXTS["en"], f"e{i}")],
                                          lane=LANE["standard"], timeout=20))
    assert sizes == [4]


async def test_without_linger_a_lone_post_is_detected_at_once(
        make_settings: Callable[..., Settings], detector: LanguageDetector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = _count_detector_calls(detector, monkeypatch)
    settings = make_settings(LANGUAGE__MAX_WAIT_MS="0")
    async with open_node(settings, backends=[LexiconBackend()], detector=detector) as node:
        for i in range(3):
            with anyio.fail_after(2):
                await node.entry.classify([req(TEXTS["es"], f"s{i}")], lane=LANE["standard"],
                                          timeout=5)
    assert sizes == [1, 1, 1]


async def test_posts_arriving_together_stay_in_one_detector_of_the_pool(
        make_settings: Callable[..., Settings], detector: LanguageDetector,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool is filled first-member-first: four submissions offered in one go share one
    detector batch (least-loaded routing split them two and two)."""
    sizes = _count_detector_calls(detector, monkeypatch)
    settings = make_settings(LANGUAGE__POOL_SIZE="2", LANGUAGE__MAX_WAIT_MS="200")
    async with (open_node(settings, backends=[LexiconBackend()], detector=detector) as node,
                anyio.create_task_group() as tg):
        for i in range(4):
            tg.start_soon(partial(node.entry.classify, [req(TEXTS["de"], f"p{i}")],
                                  lane=LANE["standard"], timeout=10))
    assert sizes == [4]


def test_fill_first_spills_to_the_next_member_only_when_the_first_is_behind() -> None:
    from types import SimpleNamespace
    from typing import cast

    from sentiflow.actors.language import fill_first
    from sentiflow.actors.messages import Submission
    from sentiflow.runtime import ActorRef

    a, b, c = (SimpleNamespace(mailbox_depth=d) for d in (3, 0, 1))
    refs = cast("list[ActorRef[Submission]]", [a, b, c])
    assert fill_first(refs, spill_at=4) is refs[0]
    a.mailbox_depth = 4
    assert fill_first(refs, spill_at=4) is refs[1]
    a.mailbox_depth, b.mailbox_depth, c.mailbox_depth = 9, 7, 5
    assert fill_first(refs, spill_at=4) is refs[2]  # all behind: the least loaded
