"""Serving one queue class: one consumer-group membership, from join to a graceful leave.

Life of a session (an async context manager driven by :meth:`ClassSession.serve`):
join the class's group → consume in batches → schedule records onto key lanes (posts,
private messages) or batches of five (new topics) → publish outcomes → commit finished
prefixes. On :meth:`ClassSession.request_stop` it stops taking work, finishes what it
holds under one deadline, commits, and leaves the group.

Threads: librdkafka's consumer is driven from one dedicated thread
(:class:`streams.session_clients.SessionClients` owns it and the producers); its rebalance
callbacks run there and hand work to the event loop with ``run_coroutine_threadsafe``. On revocation
the callback waits until the revoked partitions' records are finished, commits them, and
only then lets the partitions go (commit-on-revoke). Under at-least-once, records are
reported finished in batches by producer barriers (:mod:`streams.deliveries`), never one
delivery callback per message.

Bounded memory: at most ``max_buffered`` records are held (consumed, not committed); at the
bound the session stops consuming until finished records are committed
(:class:`streams.flow.Backpressure`).

Failure: a data-path error (undeliverable message, fatal client error, a bug in a lane)
stops the session; it commits only finished prefixes, never past an unfinished record, and
:meth:`ClassSession.serve` re-raises the error. If the session dies abnormally (an exception
or cancellation), the revocation on close neither drains nor commits: whatever is not
committed is re-read by the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings
from schemas.topics import TopicNames
from streams import offset_map
from streams.deliveries import Slot
from streams.flow import (
    Backpressure,
    Work,
    class_topic,
    default_max_buffered,
    group_id,
)
from streams.kafka_io import TP, KafkaIOError
from streams.lanes import Scheduler
from streams.metrics import WorkerMetrics
from streams.offsets import OffsetTracker, Release
from streams.processing import Outcome, OutMessage, RecordProcessor
from streams.session_clients import SessionClients, SessionHooks

__all__ = ["ClassSession", "Work", "class_topic", "group_id"]

_LOG = logging.getLogger("modq.worker")
T = TypeVar("T")
CONSUME_TIMEOUT_S = 0.05
COMMIT_INTERVAL_S = 0.1
CALLBACK_SLACK_S = 30.0
"""How much longer than the drain deadline a rebalance callback waits for the loop."""


def _lane_key(work: Work) -> Hashable:
    """Records of one key share a lane; keyless ones share their partition's."""
    record = work.record
    return record.key if record.key is not None else record.tp


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
        on_progress: Callable[[int], None] = lambda records: None,
        max_buffered: int | None = None,
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
        batched = queue_class is QueueClass.GLOBAL_TOPICS
        self._schedule: Scheduler[Work] = Scheduler(
            self._handle,
            lanes=settings.max_in_flight_keys,
            key_of=_lane_key,
            batch_size=settings.batch_size if batched else None,
            batch_wait=settings.batch_wait_seconds,
            on_batch=metrics.batch_size.observe,
        )
        self._flow = Backpressure(max_buffered or default_max_buffered(settings.max_in_flight_keys))
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        self._failure: BaseException | None = None
        self._abandon = False
        # Set by the rebalance callbacks (consumer thread, inside consume()); read by the pump
        # after that consume() returned: partitions newly assigned need no wake-up.
        self._rebalanced = False
        self._fresh: set[TP] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients = SessionClients(
            settings,
            client_id=f"{worker_id}-{queue_class.value}",
            group_id=group_id(self._topics, queue_class),
            topic=class_topic(self._topics, queue_class),
            transactional_prefix=self._topics.prefix,
            hooks=SessionHooks(
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
                on_delivered=self._finish_delivered,
                on_error=self._fail,
            ),
        )
        self.in_flight = 0
        self.processed = 0
        self.peak_buffered = 0
        """The most records held at once (never above ``max_buffered`` + late assignments)."""
        self.skipped = 0
        """Records skipped because a previous owner had finished them (at-least-once)."""

    # --- public ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop taking work; :meth:`serve` then drains, commits, leaves and returns.

        Records already started finish, and so does every record before them in their
        partition; later ones are left to the next owner. So the final commit covers every
        decided record: a graceful stop or switch re-decides nothing.
        """
        self._stop.set()
        self._tracker.seal()

    @property
    def buffered(self) -> int:
        """Records consumed and not yet committed."""
        return self._tracker.buffered()

    @property
    def assigned(self) -> list[TP]:
        """Partitions this session owns now."""
        return self._tracker.partitions

    @property
    def max_buffered(self) -> int:
        """The bound on :attr:`buffered` (consumption is held off there)."""
        return self._flow.limit

    @property
    def pauses(self) -> int:
        """How many times the bound was reached and consumption held off."""
        return self._flow.holds

    async def serve(self) -> None:
        """Run until :meth:`request_stop`; always leaves the group before returning.

        A graceful stop finishes the records it started (and those before them), under the
        drain deadline, and commits. Raises the data-path error that stopped it, if any.
        """
        self._loop = asyncio.get_running_loop()
        try:
            await self._clients.open()
            async with asyncio.TaskGroup() as group:
                helpers = self._schedule.start(group)
                deliveries = self._clients.deliveries
                if deliveries is not None:
                    helpers.append(group.create_task(deliveries.serve(), name="deliveries"))
                await self._pump()
                self._tracker.seal()
                await self._drain(deadline=self._settings.drain_timeout_seconds)
                await self._commit()
                await self._clients.leave()  # the revoke callback commits the rest
                for task in helpers:
                    task.cancel()
        except BaseException:
            self._abandon = True
            raise
        finally:
            # Not ``async with``: a failed session must be marked abandoned before the close
            # runs the revoke callback, which would otherwise drain and commit.
            await self._clients.close()
        if self._failure is not None:
            raise self._failure

    # --- consuming ------------------------------------------------------------------------

    async def _pump(self) -> None:
        consumer = self._clients.consumer
        assert consumer is not None
        next_commit = time.monotonic() + COMMIT_INTERVAL_S
        while not self._stop.is_set() and self._failure is None:
            if self._flow.update(self._tracker.buffered()):
                # Bound full. Finished records count until committed, so commit them now
                # rather than at the next interval (waiting for it idled the lanes: measured
                # ~20% of a backlog drain); if none has finished yet, wait for one.
                if self._tracker.committable():
                    await self._commit()
                    next_commit = time.monotonic() + COMMIT_INTERVAL_S
                else:
                    await self._await_progress(COMMIT_INTERVAL_S)
            else:
                batch = self._flow.batch_size(self._tracker.buffered())
                records = await self._clients.in_consumer(
                    consumer.consume, batch, CONSUME_TIMEOUT_S
                )
                if self._rebalanced:
                    await self._wake_kept_partitions()
                for record in records:
                    if not self._tracker.expects(record.tp, record.offset):
                        continue  # not owned (revoked meanwhile), or already registered
                    generation = self._tracker.register(record.tp, record.offset)
                    if self._tracker.completed_earlier(record.tp, record.offset):
                        self.skipped += 1  # finished by the previous owner (commit metadata)
                        continue
                    self._schedule.put(Work(record, generation))
            buffered = self._tracker.buffered()
            self.peak_buffered = max(self.peak_buffered, buffered)
            self._metrics.buffered.set(buffered)
            self._metrics.in_flight.set(self.in_flight)
            if time.monotonic() >= next_commit:
                await self._commit()
                next_commit = time.monotonic() + COMMIT_INTERVAL_S

    async def _wake_kept_partitions(self) -> None:
        """After a rebalance, get the partitions this member kept fetching again at once (see
        :meth:`DataConsumer.wake_fetchers`). Newly assigned ones start by themselves, and
        waking them would only delay their first fetch (measured: reallocation p50
        0.08 -> 0.23 s when they were included)."""
        assert self._clients.consumer is not None
        self._rebalanced = False
        kept = [tp for tp in self._tracker.partitions if tp not in self._fresh]
        self._fresh.clear()
        if kept:
            await self._clients.in_consumer(self._clients.consumer.wake_fetchers, kept)

    async def _await_progress(self, within: float) -> None:
        self._progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), timeout=within)

    async def _handle(self, work: Work) -> None:
        """Moderate one record and hand its messages on; data-path errors fail the session."""
        record = work.record
        if self._failure is not None or not self._tracker.start(
            record.tp, record.offset, work.generation
        ):
            return  # failed, revoked, or past a sealed partition's limit: left to the next owner
        self.in_flight += 1  # the gauge follows in the pump loop: no lock per record
        started = time.perf_counter()
        try:
            outcome = await self._processor.process(work.record)
        except Exception as exc:  # a bug, not bad input: stop without committing past it
            self._fail(exc)
            return
        finally:
            self.in_flight -= 1
        waited = None
        if outcome.submitted_at is not None:
            waited = time.time() - outcome.submitted_at.timestamp()
        self._metrics.observe(outcome, time.perf_counter() - started, waited)
        try:
            self._complete(work, outcome)
        except KafkaIOError as exc:
            self._fail(exc)

    def _complete(self, work: Work, outcome: Outcome) -> None:
        record = work.record
        deliveries = self._clients.deliveries
        if deliveries is None or not outcome.messages:
            self._finish(record.tp, record.offset, work.generation, outcome.messages)
            return
        deliveries.send((record.tp, record.offset, work.generation), outcome.messages)

    def _finish(
        self, tp: TP, offset: int, generation: int, result: tuple[OutMessage, ...] | None
    ) -> None:
        done = self._tracker.finish(tp, offset, generation, result if self._eos else None)
        self._progressed(int(done))

    def _finish_delivered(self, slots: list[Slot]) -> None:
        """:meth:`_finish` for the records one delivery barrier covered (progress reported
        once for all of them)."""
        finish = self._tracker.finish
        self._progressed(
            sum(finish(tp, offset, generation, None) for tp, offset, generation in slots)
        )

    def _progressed(self, done: int) -> None:
        """``done`` records just finished (0: ownership had moved on); wake the waiters."""
        if done:
            self.processed += done
            self._on_progress(done)
        self._progress.set()

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            _LOG.error("worker session failed: %s: %s", type(error).__name__, error)
            self._failure = error
        self._stop.set()
        self._progress.set()

    # --- committing -----------------------------------------------------------------------

    async def _commit(self) -> None:
        """Commit every finished prefix (and, under exactly-once, publish its results)."""
        assert self._clients.offsets is not None
        release = self._tracker.take_committable()
        if not await self._clients.in_consumer(self._clients.offsets.commit, release):
            await self._rewind(release.starts)

    async def _rewind(self, starts: dict[TP, int]) -> None:
        """After a failed transaction: re-read from the first uncommitted record."""
        assert self._clients.consumer is not None
        owned = {tp: pos for tp, pos in starts.items() if self._tracker.generation(tp) is not None}
        self._tracker.assign(owned)  # new generation: queued work of the old one is skipped
        for tp, pos in owned.items():
            await self._clients.in_consumer(self._clients.consumer.seek, tp, pos)

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
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=self._settings.drain_timeout_seconds + CALLBACK_SLACK_S)

    def _on_assign(self, tps: list[TP]) -> None:
        self._fresh.update(tps)
        self._rebalanced = True
        completed: dict[TP, frozenset[int]] = {}
        consumer, offsets = self._clients.consumer, self._clients.offsets
        if not self._eos and consumer is not None and offsets is not None:
            # At-least-once: skip what a previous owner finished past its committed offset.
            try:
                committed = consumer.committed(tps)
            except Exception as exc:
                _LOG.warning("could not read committed offsets on assignment: %s", exc)
                committed = {}
            for tp, (offset, metadata) in committed.items():
                offsets.seed(tp, offset, metadata)
                completed[tp] = offset_map.decode(offset, metadata)

        async def assign() -> None:
            self._tracker.assign(tps, completed)

        self._call_in_loop(assign())
        _LOG.info("assigned %s", tps)

    def _on_revoke(self, tps: list[TP]) -> None:
        """Commit-on-revoke: seal the revoked partitions, finish what was started in them
        (and every record before it), commit them, then let them go. If that commit fails,
        the new owner re-reads from the last committed offset."""
        assert self._clients.offsets is not None
        self._rebalanced = True
        began = time.perf_counter()
        drained = began
        if not self._abandon:

            async def drain_and_release() -> Release[tuple[OutMessage, ...]]:
                self._tracker.seal(tps)
                await self._drain(self._settings.drain_timeout_seconds, tps)
                return self._tracker.take_committable(tps)

            release = self._call_in_loop(drain_and_release())
            drained = time.perf_counter()
            if not self._clients.offsets.commit(release):
                _LOG.warning("commit on revoke failed; the new owner re-reads %s", tps)
        self._forget(tps)
        ended = time.perf_counter()
        _LOG.info(
            "revoked %s%s in %.0f ms (drain %.0f ms, commit %.0f ms)",
            tps,
            " (abandoned: not committed)" if self._abandon else "",
            (ended - began) * 1000,
            (drained - began) * 1000,
            (ended - drained) * 1000,
        )

    def _on_lost(self, tps: list[TP]) -> None:
        _LOG.warning("partitions lost (session expired): %s", tps)
        self._forget(tps)

    def _forget(self, tps: list[TP]) -> None:
        async def forget() -> None:
            self._tracker.revoke(tps)

        if self._clients.offsets is not None:
            self._clients.offsets.forget(tps)
        self._call_in_loop(forget())
