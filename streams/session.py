"""Serving one queue class: one consumer-group membership, from join to a graceful leave.

Life of a session (an async context manager driven by :meth:`ClassSession.serve`):
join the class's group → consume in batches → schedule records onto key lanes (posts,
private messages) or batches of five (new topics) → publish outcomes → commit finished
prefixes. On :meth:`ClassSession.request_stop` it stops taking work, finishes what it
holds under one deadline, commits, and leaves the group.

Threads: librdkafka's consumer is driven from one dedicated thread; its rebalance callbacks
run there and hand work to the event loop with ``run_coroutine_threadsafe``. On revocation
the callback waits until the revoked partitions' records are finished, commits them, and
only then lets the partitions go (commit-on-revoke). Delivery acknowledgements arrive on a
producer thread and are relayed to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings
from schemas.topics import TopicNames
from streams.kafka_io import TP, DataConsumer, DataProducer, KafkaIOError, Record
from streams.lanes import Batches, KeyedLanes
from streams.metrics import WorkerMetrics
from streams.offsets import OffsetTracker
from streams.processing import Outcome, OutMessage, RecordProcessor
from streams.transactions import TransactionalCommitter

_LOG = logging.getLogger("modq.worker")
T = TypeVar("T")
CONSUME_BATCH = 500
CONSUME_TIMEOUT_S = 0.05
COMMIT_INTERVAL_S = 0.1


def group_id(topics: TopicNames, queue_class: QueueClass) -> str:
    """The consumer group that serves ``queue_class`` (shared by every worker of that class)."""
    return f"{topics.prefix}modq.{queue_class.value}"


def class_topic(topics: TopicNames, queue_class: QueueClass) -> str:
    """The submission topic a queue class consumes."""
    return {
        QueueClass.GLOBAL_TOPICS: topics.submissions_topics,
        QueueClass.TOPIC_POSTS: topics.submissions_posts,
        QueueClass.PRIVATE_MESSAGES: topics.submissions_private_messages,
    }[queue_class]


@dataclass(frozen=True, slots=True)
class Work:
    """A consumed record and the ownership generation it was consumed under."""

    record: Record
    generation: int


class ClassSession:
    """One worker's membership in one queue class's consumer group."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str,
        queue_class: QueueClass,
        processor: RecordProcessor,
        metrics: WorkerMetrics,
        on_progress: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._worker_id = worker_id
        self.queue_class = queue_class
        self._topics = TopicNames.from_prefix(settings.topic_prefix)
        self._processor = processor
        self._metrics = metrics
        self._on_progress = on_progress
        self._eos = settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE
        self._tracker: OffsetTracker[tuple[OutMessage, ...]] = OffsetTracker()
        self._lanes: KeyedLanes[Work] = KeyedLanes()
        self._batches: Batches[Work] = Batches(settings.batch_size, settings.batch_wait_seconds)
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        self._to_commit: dict[TP, int] = {}
        self._failure: BaseException | None = None
        self._unacked: dict[tuple[TP, int], int] = {}
        self._cexec = ThreadPoolExecutor(1, thread_name_prefix=f"consumer-{queue_class.value}")
        self._pexec = ThreadPoolExecutor(1, thread_name_prefix="producer-poll")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: DataConsumer | None = None
        self._producer: DataProducer | None = None
        self._committer: TransactionalCommitter | None = None
        self._paused = False
        self.in_flight = 0
        self.processed = 0

    # --- public ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop taking work; :meth:`serve` then drains, commits, leaves and returns."""
        self._stop.set()

    @property
    def buffered(self) -> int:
        """Records consumed and not yet committed."""
        return self._tracker.buffered()

    async def serve(self) -> None:
        """Run until :meth:`request_stop`; always leaves the group cleanly before returning."""
        self._loop = asyncio.get_running_loop()
        client = f"{self._worker_id}-{self.queue_class.value}"
        self._producer = self._new_producer(client)
        if self._eos:
            self._committer = TransactionalCommitter(self._producer, self._new_producer, client)
            await self._in_consumer(self._committer.start)
        self._consumer = DataConsumer(
            self._settings,
            group_id=group_id(self._topics, self.queue_class),
            client_id=client,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._consumer.subscribe([class_topic(self._topics, self.queue_class)])
        try:
            async with asyncio.TaskGroup() as group:
                lanes = self._start_lanes(group)
                poller = None if self._eos else group.create_task(self._poll_deliveries())
                await self._pump()
                await self._drain(deadline=self._settings.drain_timeout_seconds)
                await self._commit()
                await self._in_consumer(self._consumer.close)  # revoke callback commits the rest
                for task in lanes:
                    task.cancel()
                if poller is not None:
                    poller.cancel()
        finally:
            await self._close_clients()
        if self._failure is not None:
            raise self._failure

    # --- consuming ------------------------------------------------------------------------

    def _new_producer(self, client: str) -> DataProducer:
        txn_id = f"{self._topics.prefix}modq.{client}" if self._eos else None
        return DataProducer(self._settings, client_id=client, transactional_id=txn_id)

    async def _in_consumer(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._cexec, fn, *args)

    async def _pump(self) -> None:
        assert self._consumer is not None
        high = max(self._settings.max_in_flight_keys * 8, 1000)
        next_commit = time.monotonic() + COMMIT_INTERVAL_S
        while not self._stop.is_set() and self._failure is None:
            await self._backpressure(high)
            records = await self._in_consumer(
                self._consumer.consume, CONSUME_BATCH, CONSUME_TIMEOUT_S
            )
            for record in records:
                generation = self._tracker.generation(record.tp)
                if generation is None:
                    continue  # consumed just before a revocation; the new owner reads it
                self._tracker.register(record.tp, record.offset)
                self._dispatch(Work(record, generation))
            if time.monotonic() >= next_commit:
                await self._commit()
                next_commit = time.monotonic() + COMMIT_INTERVAL_S
            self._metrics.buffered.set(self._tracker.buffered())

    async def _backpressure(self, high: int) -> None:
        assert self._consumer is not None
        buffered = self._tracker.buffered()
        if not self._paused and buffered >= high:
            self._paused = True
            await self._in_consumer(self._consumer.pause, self._tracker.partitions)
        elif self._paused and buffered <= high // 2:
            self._paused = False
            await self._in_consumer(self._consumer.resume, self._tracker.partitions)

    def _dispatch(self, work: Work) -> None:
        if self.queue_class is QueueClass.GLOBAL_TOPICS:
            self._batches.put(work)
            return
        key: Hashable = work.record.key if work.record.key is not None else work.record.tp
        self._lanes.put(key, work)

    def _start_lanes(self, group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        if self.queue_class is QueueClass.GLOBAL_TOPICS:
            return [group.create_task(self._batch_lane(), name="batch-lane")]
        return [
            group.create_task(self._key_lane(), name=f"lane-{i}")
            for i in range(self._settings.max_in_flight_keys)
        ]

    async def _key_lane(self) -> None:
        while True:
            key, work = await self._lanes.take()
            try:
                await self._handle(work)
            finally:
                self._lanes.done(key)

    async def _batch_lane(self) -> None:
        while True:
            batch = await self._batches.take()
            try:
                self._metrics.batch_size.observe(len(batch))
                await asyncio.gather(*(self._handle(w) for w in batch))
            finally:
                self._batches.done()

    async def _handle(self, work: Work) -> None:
        if not self._tracker.owns(work.record.tp, work.generation):
            return  # revoked meanwhile: the partition's new owner processes it
        self.in_flight += 1
        self._metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            outcome = await self._processor.process(work.record)
        finally:
            self.in_flight -= 1
            self._metrics.in_flight.dec()
        waited = None
        if outcome.submitted_at is not None:
            waited = time.time() - outcome.submitted_at.timestamp()
        self._metrics.observe(outcome, time.perf_counter() - started, waited)
        await self._complete(work, outcome)

    async def _complete(self, work: Work, outcome: Outcome) -> None:
        record = work.record
        if self._eos:
            self._finish(record.tp, record.offset, work.generation, outcome.messages)
            return
        assert self._producer is not None
        slot = (record.tp, record.offset)
        self._unacked[slot] = len(outcome.messages)
        for message in outcome.messages:
            self._producer.produce(
                message.topic,
                key=message.key,
                value=message.value,
                headers=list(message.headers),
                on_delivery=lambda err, *_a, s=slot, g=work.generation: self._relay(s, g, err),
            )

    def _relay(self, slot: tuple[TP, int], generation: int, err: KafkaIOError | None) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._delivered, slot, generation, err)

    def _delivered(self, slot: tuple[TP, int], generation: int, err: KafkaIOError | None) -> None:
        if err is not None:
            self._fail(err)
            return
        left = self._unacked.get(slot, 0) - 1
        if left > 0:
            self._unacked[slot] = left
            return
        self._unacked.pop(slot, None)
        self._finish(slot[0], slot[1], generation, None)

    def _finish(
        self, tp: TP, offset: int, generation: int, result: tuple[OutMessage, ...] | None
    ) -> None:
        if self._tracker.finish(tp, offset, generation, result):
            self.processed += 1
            self._on_progress()
        self._progress.set()

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            _LOG.error("worker session failed: %s", error)
            self._failure = error
        self._stop.set()

    async def _poll_deliveries(self) -> None:
        assert self._producer is not None
        loop = asyncio.get_running_loop()
        while True:
            await loop.run_in_executor(self._pexec, self._producer.poll, 0.05)

    # --- committing -----------------------------------------------------------------------

    async def _commit(self) -> None:
        """Commit every finished prefix (and, under exactly-once, publish its results)."""
        assert self._consumer is not None
        release = self._tracker.take_committable()
        if self._committer is not None:
            if release.offsets:
                ok = await self._in_consumer(
                    self._committer.commit, release, self._consumer.group_metadata()
                )
                if not ok:
                    await self._rewind(release.starts)
            return
        self._to_commit.update(release.offsets)
        if not self._to_commit:
            return
        pending = dict(self._to_commit)
        try:
            await self._in_consumer(self._consumer.commit, pending)
        except KafkaIOError as exc:
            if exc.fenced:
                self._to_commit.clear()  # not ours any more; the new owner re-reads
            _LOG.warning("commit failed (will retry): %s", exc)
            return
        for tp, offset in pending.items():
            if self._to_commit.get(tp) == offset:
                del self._to_commit[tp]

    async def _rewind(self, starts: dict[TP, int]) -> None:
        """After a failed transaction: re-read from the first uncommitted record."""
        assert self._consumer is not None
        owned = {tp: pos for tp, pos in starts.items() if self._tracker.generation(tp) is not None}
        self._tracker.assign(owned)  # new generation: queued work of the old one is skipped
        for tp, pos in owned.items():
            await self._in_consumer(self._consumer.seek, tp, pos)

    async def _drain(self, deadline: float, tps: list[TP] | None = None) -> None:
        """Wait until the given (or all) partitions hold no unfinished record, or time out."""
        end = time.monotonic() + deadline

        def busy() -> bool:
            if tps is None:
                return self._tracker.pending() > 0
            return any(self._tracker.pending(tp) > 0 for tp in tps)

        while busy() and self._failure is None:
            left = end - time.monotonic()
            if left <= 0:
                _LOG.warning(
                    "drain deadline passed with %d record(s) unfinished", self._tracker.pending()
                )
                return
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), timeout=min(left, 0.5))

    # --- rebalance callbacks (consumer thread) --------------------------------------------

    def _call_in_loop(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _on_assign(self, tps: list[TP]) -> None:
        async def assign() -> None:
            self._tracker.assign(tps)

        self._call_in_loop(assign())
        _LOG.info("assigned %s", tps)

    def _on_revoke(self, tps: list[TP]) -> None:
        assert self._consumer is not None

        async def drain_and_release() -> Any:
            await self._drain(self._settings.drain_timeout_seconds, tps)
            return self._tracker.take_committable()

        release = self._call_in_loop(drain_and_release())
        if self._committer is not None:
            if release.offsets:
                self._committer.commit(release, self._consumer.group_metadata())
        else:
            offsets = {**self._to_commit, **release.offsets}
            try:
                self._consumer.commit(offsets)
                self._to_commit.clear()
            except KafkaIOError as exc:
                _LOG.warning("commit on revoke failed: %s", exc)
        self._forget(tps)
        _LOG.info("revoked %s", tps)

    def _on_lost(self, tps: list[TP]) -> None:
        _LOG.warning("partitions lost (session expired): %s", tps)
        self._forget(tps)

    def _forget(self, tps: list[TP]) -> None:
        async def forget() -> None:
            self._tracker.revoke(tps)
            for tp in tps:
                self._to_commit.pop(tp, None)

        self._call_in_loop(forget())

    async def _close_clients(self) -> None:
        loop = asyncio.get_running_loop()
        if self._consumer is not None and not self._consumer.closed:
            await loop.run_in_executor(self._cexec, self._consumer.close)
        producer = self._committer.producer if self._committer is not None else self._producer
        if producer is not None:
            await loop.run_in_executor(self._pexec, producer.flush, 10.0)
        self._cexec.shutdown(wait=False)
        self._pexec.shutdown(wait=False)
