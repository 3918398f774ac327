"""KafkaReader: one consumer of the group, feeding the pipeline with at-least-once delivery.

A reader polls its partitions; each poll's valid posts become one Submission per priority lane
(``PipelineEntry.submit``, so they enter the tree like API posts). An offset is committed only
once the post is *done*: its result durably written (the Submission's reply completed by the
sink after ``write_results``), or the record dead-lettered (the dead-letter topic acknowledged
it). Commits advance over contiguous done offsets only (:mod:`sentiflow.ingest.offsets`), so a
crash anywhere re-reads from the first post not yet durable; writes are upserts on request_id
and request ids are derived from topic/partition/offset, so the replay duplicates nothing.

Flow control, nothing dropped and nothing buffered without bound:

* at most ``max_in_flight_posts`` fetched-but-not-durable posts per reader: past it the reader
  pauses its partitions (the broker keeps the data) and resumes at half;
* when the pipeline's entry mailbox is full the reader pauses too, then waits in ``tell``
  (backpressure), while the consumer keeps heart-beating.

Failures:

* bad input (not UTF-8, not JSON, not an object, missing / oversize / mistyped fields) -> the
  dead-letter topic at once, with the original bytes and the reason;
* ``UnprocessablePostError`` (the model fails on this submission): the submission is bisected
  and resubmitted until the failing post stands alone, which is dead-lettered;
* any other ``PipelineError`` (storage down, a stage restarting): resubmitted with exponential
  backoff up to ``max_retries`` times, then dead-lettered.

Rebalances: on revoke the reader waits up to ``revoke_timeout_s`` for the revoked partitions'
in-flight posts, commits what is durable and forgets the rest uncommitted: the new owner re-reads
it. Work that completes later is recognised as stale (per-assignment generations) and ignored.

aiokafka is asyncio-only, so this actor runs on asyncio (the node's backend).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from sentiflow.actors.entry import PipelineEntry
from sentiflow.actors.messages import LANE, PipelineError, UnprocessablePostError
from sentiflow.api.schemas import ValidationLimits
from sentiflow.config.settings import KafkaSettings
from sentiflow.ingest import clients
from sentiflow.ingest.offsets import OffsetTracker
from sentiflow.ingest.posts import InvalidPostError, RecordId, parse_post
from sentiflow.ingest.wire import DeadLetter, result_value
from sentiflow.ops.logs import post_fields
from sentiflow.runtime import SIZE_BOUNDS, Actor, DeferredReply, MailboxFull, Priority
from sentiflow.stores.records import ClassificationRequest, ClassificationResult, ResultRecord

log = logging.getLogger("sentiflow.ingest.reader")

#: How long a submission may wait for mailbox room before the reader pauses its partitions.
OFFER_TIMEOUT_S = 0.05
POLL_TIMEOUT_MS = 200
#: While paused: how often the reader re-checks its in-flight count and keeps polling alive.
PAUSED_TICK_S = 0.2
#: How often the lag gauge asks the broker for its end offsets, and how long it may take.
LAG_INTERVAL_S = 1.0
LAG_TIMEOUT_S = 2.0
_LANE_ORDER = (Priority.REALTIME, Priority.NORMAL, Priority.BATCH)


@dataclass(frozen=True, slots=True)
class StatusQuery:
    """Ask a reader for a :class:`ReaderStatus` (tests, the console)."""


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    connected: bool
    assigned: tuple[tuple[str, int], ...]
    paused: bool
    outstanding: int
    in_flight_submissions: int


@dataclass(frozen=True, slots=True)
class _Item:
    """A valid post and where it came from."""

    tp: TopicPartition
    offset: int
    generation: int
    request: ClassificationRequest
    value: bytes | None
    key: bytes | None
    #: The record's timestamp (producer create time, ms since the epoch).
    timestamp_ms: int


@dataclass(eq=False, slots=True)
class _Flight:
    """One submission in the pipeline."""

    items: tuple[_Item, ...]
    lane: Priority
    reply: DeferredReply
    attempt: int


@dataclass(slots=True)
class _DeadItem:
    tp: TopicPartition
    offset: int
    generation: int
    letter: DeadLetter
    #: The post's request id (None when the record could not even be parsed into a post).
    request_id: str | None = None


@dataclass(slots=True)
class _State:
    """Per-instance mutable state (a restart starts from scratch: the committed offsets)."""

    tracker: OffsetTracker[TopicPartition] = field(default_factory=OffsetTracker)
    flights: set[_Flight] = field(default_factory=set)
    paused: bool = False
    connected: bool = False
    freed: anyio.Event = field(default_factory=anyio.Event)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, reader: KafkaReader) -> None:
        self._reader = reader

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._reader._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._reader._on_assigned(list(assigned))


class KafkaReader(Actor[StatusQuery]):
    def __init__(self, settings: KafkaSettings, entry: PipelineEntry, *,
                 limits: ValidationLimits, client_id: str) -> None:
        self._settings = settings
        self._entry = entry
        self._limits = limits
        self._client_id = client_id
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._state = _State()
        self._commit_lock = anyio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    async def started(self) -> None:
        m = self.context.metrics
        self._consumed = m.counter("consumed")
        self._submitted = m.counter("submitted")
        self._durable = m.counter("durable")
        self._dead = m.counter("dead_lettered")
        self._retried = m.counter("retried")
        self._split = m.counter("bisected")
        self._abandoned = m.counter("abandoned_on_revoke")
        self._commits = m.counter("commits")
        self._commit_failures = m.counter("commit_failures")
        self._pauses = m.counter("pauses")
        self._full = m.counter("pipeline_full")
        self._results = m.counter("results_produced")
        self._poll_sizes = m.histogram("poll_size", SIZE_BOUNDS)
        self._latency = m.histogram("produce_to_durable_s")
        # Levels (/metrics gauges): posts on our partitions not yet durable, paused 0/1, ...
        self._lag = m.gauge("lag")
        self._paused = m.gauge("paused")
        self._in_flight = m.gauge("in_flight")
        self._assigned = m.gauge("assigned_partitions")
        self._connected = m.gauge("connected")
        for gauge in (self._lag, self._paused, self._in_flight, self._assigned, self._connected):
            gauge.set(0)
        self._lag_due = 0.0
        self.context.start_soon(self._run)

    async def receive(self, message: StatusQuery) -> ReaderStatus:
        state = self._state
        return ReaderStatus(
            connected=state.connected,
            assigned=tuple(sorted((tp.topic, tp.partition)
                                  for tp in state.tracker.partitions())),
            paused=state.paused, outstanding=state.tracker.outstanding(),
            in_flight_submissions=len(state.flights))

    async def stopped(self) -> None:
        """Graceful end (stop, restart, crash): wait for in-flight posts within the deadline,
        commit what is durable, leave the group. Abandoned posts stay uncommitted."""
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        try:
            if consumer is not None and self._state.connected:
                with anyio.move_on_after(self._settings.shutdown_timeout_s):
                    for flight in list(self._state.flights):
                        try:
                            results = await flight.reply.wait()
                        except Exception:  # failed posts stay uncommitted
                            continue
                        await self._completed(flight, results, producer)
                with anyio.move_on_after(5.0):
                    await self._commit(consumer)
        finally:
            self._state.connected = False
            self._connected.set(0)
            self._paused.set(0)
            with anyio.move_on_after(10.0, shield=True):
                if consumer is not None:
                    await consumer.stop()
                if producer is not None:
                    await producer.stop()

    # -- connecting and polling ---------------------------------------------------------------

    async def _connect(self) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
        """Start the clients, retrying with backoff while the broker is unreachable (the node
        keeps serving its API meanwhile)."""
        s = self._settings
        delay = s.retry_backoff_initial_s
        while True:
            producer = clients.producer(s, client_id=self._client_id)
            consumer = clients.consumer(s, client_id=self._client_id)
            try:
                await producer.start()
                self._producer = producer
                consumer.subscribe(s.topics, listener=_Rebalance(self))
                await consumer.start()
                self._consumer = consumer
            except KafkaError as exc:
                log.warning("%s: cannot reach Kafka at %s (%s); retrying in %.1f s",
                            self.context.path, ",".join(s.bootstrap_servers), exc, delay)
                self._consumer = self._producer = None
                with anyio.move_on_after(5.0, shield=True):
                    await consumer.stop()
                    await producer.stop()
                await anyio.sleep(delay)
                delay = min(delay * 2, s.retry_backoff_max_s)
                continue
            self._state.connected = True
            self._connected.set(1)
            log.info("%s: consuming %s as group %r", self.context.path, s.topics, s.group_id)
            return consumer, producer

    async def _run(self) -> None:
        consumer, producer = await self._connect()
        self.context.start_soon(self._commit_loop, consumer)
        while True:
            await self._gate(consumer, producer)
            batch = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS,
                                           max_records=self._settings.max_poll_records)
            if batch:
                await self._handle(batch, producer)
            await self._measure(consumer)

    async def _gate(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        """Pause while too many posts are in flight; resume at half (hysteresis)."""
        state, limit = self._state, self._settings.max_in_flight_posts
        if state.tracker.outstanding() < limit:
            if state.paused:
                self._resume(consumer)
            return
        self._pause(consumer)
        while state.tracker.outstanding() > limit // 2:
            await self._wait_freed()
            self._pause(consumer)  # partitions assigned meanwhile are paused too
            # keeps the poll timer alive (max_poll_interval_ms); paused partitions return
            # nothing, so this only drains records of partitions assigned during the pause
            batch = await consumer.getmany(timeout_ms=0)
            if batch:
                await self._handle(batch, producer)
            await self._measure(consumer)
        self._resume(consumer)

    async def _measure(self, consumer: AIOKafkaConsumer) -> None:
        """Update the gauges. ``lag`` = posts on this reader's partitions not yet durable (or
        dead-lettered): the broker's end offset minus our position, plus what was fetched and
        is still in the pipeline. The end offsets are asked for (at most every
        ``LAG_INTERVAL_S``) rather than read from fetch responses, which stop while paused -
        exactly when the lag matters. A slow or failed answer keeps the last value."""
        state = self._state
        self._paused.set(state.paused)
        outstanding = state.tracker.outstanding()
        self._in_flight.set(outstanding)
        now = time.monotonic()
        if now < self._lag_due:
            return
        self._lag_due = now + LAG_INTERVAL_S
        assigned = list(consumer.assignment())
        self._assigned.set(len(assigned))
        # Only partitions fetched from at least once: their position is known, so asking for it
        # never waits (a partition just assigned counts from its first fetch, ~a poll later).
        fetched = [tp for tp in assigned if consumer.highwater(tp) is not None]
        behind = 0
        with anyio.move_on_after(LAG_TIMEOUT_S) as scope:
            try:
                ends = await consumer.end_offsets(fetched) if fetched else {}
                for tp in fetched:
                    behind += max(0, ends[tp] - await consumer.position(tp))
            except (KafkaError, KeyError) as exc:  # a rebalance in between: next time
                log.debug("%s: lag not measured (%r)", self.context.path, exc)
                return
        if not scope.cancelled_caught:
            self._lag.set(behind + state.tracker.outstanding())

    def _pause(self, consumer: AIOKafkaConsumer) -> None:
        if not self._state.paused:
            self._pauses.inc()
            log.debug("%s: pausing (%d posts in flight)", self.context.path,
                      self._state.tracker.outstanding())
        self._state.paused = True
        consumer.pause(*consumer.assignment())

    def _resume(self, consumer: AIOKafkaConsumer) -> None:
        self._state.paused = False
        consumer.resume(*consumer.assignment())

    async def _handle(self, batch: dict[TopicPartition, list[Any]],
                      producer: AIOKafkaProducer) -> None:
        tracker = self._state.tracker
        dead: list[_DeadItem] = []
        lanes: dict[Priority, list[_Item]] = defaultdict(list)
        count = 0
        for tp, records in batch.items():
            for rec in records:
                generation = tracker.fetched(tp, rec.offset)
                if generation is None:
                    continue
                count += 1
                where = RecordId(tp.topic, tp.partition, rec.offset)
                try:
                    request = parse_post(rec.value, where, limits=self._limits)
                except InvalidPostError as exc:
                    dead.append(_DeadItem(tp, rec.offset, generation, DeadLetter(
                        where, rec.value, rec.key, exc.kind, exc.detail)))
                    continue
                lanes[LANE[request.priority]].append(_Item(
                    tp, rec.offset, generation, request, rec.value, rec.key, rec.timestamp))
        self._consumed.inc(count)
        self._poll_sizes.observe(count)
        if dead:
            await self._dead_letter(dead, producer)
        for lane in _LANE_ORDER:
            if items := lanes.get(lane):
                await self._submit(tuple(items), lane, 0)

    # -- the pipeline -------------------------------------------------------------------------

    async def _submit(self, items: tuple[_Item, ...], lane: Priority, attempt: int) -> None:
        requests = [item.request for item in items]
        try:
            reply = await self._entry.submit(requests, lane=lane, offer_timeout=OFFER_TIMEOUT_S)
        except MailboxFull:
            self._full.inc()
            if self._consumer is not None:
                self._pause(self._consumer)
            reply = await self._entry.submit(requests, lane=lane)  # waits: backpressure
        self._submitted.inc(len(items))
        flight = _Flight(items, lane, reply, attempt)
        self._state.flights.add(flight)
        self.context.start_soon(self._settle, flight)

    async def _settle(self, flight: _Flight) -> None:
        try:
            results: tuple[ClassificationResult, ...] = await flight.reply.wait()
        except UnprocessablePostError as exc:
            self._state.flights.discard(flight)
            await self._unprocessable(flight, exc)
        except Exception as exc:  # PipelineError, or a stage's crash surfacing as another type
            self._state.flights.discard(flight)
            await self._retry(flight, exc)
        else:
            await self._completed(flight, results, self._producer)

    def _live(self, items: Sequence[_Item]) -> tuple[_Item, ...]:
        """The items whose partition is still ours, in the same assignment."""
        tracker = self._state.tracker
        return tuple(i for i in items if tracker.generation(i.tp) == i.generation)

    async def _unprocessable(self, flight: _Flight, exc: PipelineError) -> None:
        items = self._live(flight.items)
        if len(items) > 1:  # find the post(s) the model fails on; the others go through
            self._split.inc()
            middle = len(items) // 2
            await self._submit(items[:middle], flight.lane, flight.attempt)
            await self._submit(items[middle:], flight.lane, flight.attempt)
        elif items:
            await self._dead_letter([self._dead_item(items[0], "unprocessable", exc,
                                                     flight.attempt + 1)], self._producer)

    async def _retry(self, flight: _Flight, exc: BaseException) -> None:
        s = self._settings
        items = self._live(flight.items)
        if not items:
            return
        ids = [i.request.request_id for i in items]
        if flight.attempt >= s.max_retries:
            log.warning("%s: %d posts failed %d times (%s); dead-lettering them",
                        self.context.path, len(items), flight.attempt + 1, exc,
                        extra=post_fields(ids, attempt=flight.attempt + 1))
            await self._dead_letter([self._dead_item(i, "pipeline", exc, flight.attempt + 1)
                                     for i in items], self._producer)
            return
        self._retried.inc(len(items))
        delay = min(s.retry_backoff_initial_s * 2 ** flight.attempt, s.retry_backoff_max_s)
        log.info("%s: %d posts failed (%s); retry %d in %.1f s", self.context.path, len(items),
                 exc, flight.attempt + 1, delay,
                 extra=post_fields(ids, attempt=flight.attempt + 1))
        await anyio.sleep(delay)
        if items := self._live(items):
            await self._submit(items, flight.lane, flight.attempt + 1)

    @staticmethod
    def _dead_item(item: _Item, kind: str, exc: BaseException, attempts: int) -> _DeadItem:
        where = RecordId(item.tp.topic, item.tp.partition, item.offset)
        return _DeadItem(item.tp, item.offset, item.generation, DeadLetter(
            where, item.value, item.key, kind, f"{type(exc).__name__}: {exc}", attempts),
            item.request.request_id)

    async def _completed(self, flight: _Flight, results: tuple[ClassificationResult, ...],
                         producer: AIOKafkaProducer | None) -> None:
        """The posts are durable: publish results (if configured), then mark them done."""
        topic = self._settings.results_topic
        if topic is not None and producer is not None:
            acks = [await producer.send(topic, value=result_value(ResultRecord(
                        request=item.request, result=result)),
                        key=item.request.request_id.encode())
                    for item, result in zip(flight.items, results, strict=True)]
            for ack in acks:
                await ack
            self._results.inc(len(acks))
        now_ms = time.time() * 1000
        tracker = self._state.tracker
        for item in flight.items:
            tracker.done(item.tp, item.offset, item.generation)
            if item.timestamp_ms > 0:
                self._latency.observe(max(0.0, now_ms - item.timestamp_ms) / 1000)
        self._durable.inc(len(flight.items))
        self._state.flights.discard(flight)
        self._notify_freed()

    async def _dead_letter(self, dead: list[_DeadItem], producer: AIOKafkaProducer | None) -> None:
        """Produce the dead letters and wait for the broker's acks; only then are their offsets
        done. A produce failure crashes the reader: the records are re-read after the restart."""
        if producer is None:
            raise PipelineError("dead-letter producer is not connected")
        topic = self._settings.dead_letter_topic
        acks = [await producer.send(topic, value=d.letter.value, key=d.letter.key,
                                    headers=d.letter.headers()) for d in dead]
        for ack in acks:
            await ack
        tracker = self._state.tracker
        for d in dead:
            tracker.done(d.tp, d.offset, d.generation)
            log.warning("%s: dead-lettered %s %s:%d:%d (%s: %s)", self.context.path,
                        d.request_id or "a record", d.tp.topic, d.tp.partition, d.offset,
                        d.letter.kind, d.letter.error, extra=post_fields(
                            [d.request_id] if d.request_id is not None else [],
                            kafka_topic=d.tp.topic, kafka_partition=d.tp.partition,
                            kafka_offset=d.offset, dead_letter_kind=d.letter.kind,
                            dead_letter_topic=topic))
        self._dead.inc(len(dead))
        self._notify_freed()

    # -- commits and rebalances ---------------------------------------------------------------

    async def _commit_loop(self, consumer: AIOKafkaConsumer) -> None:
        interval = self._settings.commit_interval_ms / 1000
        while True:
            await anyio.sleep(interval)
            await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer,
                      partitions: Sequence[TopicPartition] | None = None) -> None:
        async with self._commit_lock:
            tracker = self._state.tracker
            moved = tracker.to_commit(partitions)
            if not moved:
                return
            offsets = {tp: OffsetAndMetadata(position, "") for tp, (position, _) in moved.items()}
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # the group rebalanced: these partitions may be someone else's now; the new
                # owner re-reads from the last successful commit
                self._commit_failures.inc()
                log.info("%s: commit refused (%s)", self.context.path, exc)
                return
            except KafkaError as exc:
                self._commit_failures.inc()
                log.warning("%s: commit failed (%s); will retry", self.context.path, exc)
                return
            for tp, (position, generation) in moved.items():
                tracker.committed(tp, position, generation)
            self._commits.inc()

    def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        self._state.tracker.assign(assigned)
        log.info("%s: assigned %s", self.context.path,
                 sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))

    async def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        state, consumer = self._state, self._consumer
        owned = [tp for tp in revoked if state.tracker.generation(tp) is not None]
        with anyio.move_on_after(self._settings.revoke_timeout_s):
            while state.tracker.outstanding(owned) > 0:
                await self._wait_freed()
        if consumer is not None:
            await self._commit(consumer, owned)
        left = state.tracker.outstanding(owned)
        if left:
            self._abandoned.inc(left)
            log.warning("%s: %d in-flight posts of revoked partitions left uncommitted (the "
                        "new owner re-reads them)", self.context.path, left)
        state.tracker.revoke(owned)
        self._notify_freed()

    async def _wait_freed(self) -> None:
        """Until some posts are done (or a tick passes)."""
        event = self._state.freed
        with anyio.move_on_after(PAUSED_TICK_S):
            await event.wait()

    def _notify_freed(self) -> None:
        self._state.freed.set()
        self._state.freed = anyio.Event()
