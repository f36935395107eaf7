"""The controller's tick loop (the I/O shell): measure → allocate → actuate → publish views.

Every ``controller_tick_seconds`` the acting leader (:mod:`~orchestrator.controller.leadership`)

1. reads the class topics' offsets, the class groups' committed offsets and the timestamps of
   the oldest and newest pending records (:class:`~orchestrator.controller.kafka_io.OffsetsReader`,
   in a worker thread), and turns them into per-class metrics
   (:func:`~orchestrator.controller.measurement.measure`);
2. runs the pure policy :func:`orchestrator.policy.allocate` on those metrics and the workers
   known from the control topic (alive: a heartbeat within ``worker_timeout_seconds``);
3. publishes a :class:`~schemas.control.WorkerAssignment` (next generation) to
   ``assign:{id}`` for every move of an alive worker, waiting for the broker's ack;
4. publishes the visualization records that changed (:mod:`~orchestrator.controller.views`).

A standby only keeps its group membership. A tick whose Kafka reads fail is skipped (logged);
a failure to publish ends the process non-zero (the supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from orchestrator.controller.kafka_io import (
    ClassSource,
    ControllerIOError,
    OffsetsReader,
    Publisher,
    PublishError,
)
from orchestrator.controller.leadership import Leadership
from orchestrator.controller.measurement import (
    MeasurementState,
    Position,
    measure,
    timestamp_positions,
)
from orchestrator.controller.views import class_views, decision_view, pool_view, to_publish
from orchestrator.policy import AllocationResult, ControllerState, allocate
from orchestrator.pool import pool_config
from schemas.codec import encode
from schemas.control import assignment_key
from schemas.queues import QueueClass
from schemas.settings import Settings
from schemas.topics import TopicNames
from schemas.visualization import ControllerDecisionView, VisualizationRecord, visualization_key

_LOG = logging.getLogger("modq.controller")


def utc_now() -> datetime:
    """The wall clock, timezone-aware (the only clock the controller reads)."""
    return datetime.now(UTC)


def class_sources(topics: TopicNames) -> tuple[ClassSource, ...]:
    """Each class's submission topic and consumer group (the workers' naming)."""
    topic_of = {
        QueueClass.GLOBAL_TOPICS: topics.submissions_topics,
        QueueClass.TOPIC_POSTS: topics.submissions_posts,
        QueueClass.PRIVATE_MESSAGES: topics.submissions_private_messages,
    }
    return tuple(
        ClassSource(cls, topic_of[cls], f"{topics.prefix}modq.{cls.value}") for cls in QueueClass
    )


@dataclass
class TickReport:
    """What one acting tick did (for logs, tests and the benchmark)."""

    at: datetime
    result: AllocationResult
    published_assignments: int
    published_views: int


class Controller:
    """One controller process's logic: run :meth:`run` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        controller_id: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_tick: Callable[[TickReport], None] = lambda _r: None,
    ) -> None:
        self._settings = settings
        self.controller_id = controller_id
        self._topics = TopicNames.from_prefix(settings.topic_prefix)
        self._config = pool_config(settings)
        self._clock = clock
        self._on_tick = on_tick
        self._forget_seconds = max(60.0, 6 * settings.worker_timeout_seconds)
        self._measurement = MeasurementState()
        self._policy: ControllerState | None = None
        self._epoch = 0
        self._timestamps: dict[Position, datetime] = {}
        self.published: dict[str, VisualizationRecord] = {}
        self.leadership: Leadership | None = None
        self.ticks = 0

    @property
    def acting(self) -> bool:
        """Whether this controller leads and acts now."""
        return self.leadership is not None and self.leadership.acting

    async def run(self, stop: asyncio.Event) -> None:
        """Join the controllers, follow the control topic and tick while leading."""
        executor = ThreadPoolExecutor(1, thread_name_prefix="controller-offsets")
        reader = OffsetsReader(self._settings, class_sources(self._topics))
        try:
            async with (
                Leadership(self._settings, self.controller_id) as leadership,
                Publisher(self._settings, f"controller-{self.controller_id}") as publisher,
            ):
                self.leadership = leadership
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._follow(leadership, stop), name="control-follow")
                    await self._ticks(leadership, reader, publisher, executor, stop)
        finally:
            self.leadership = None
            await asyncio.get_running_loop().run_in_executor(executor, reader.close)
            executor.shutdown(wait=False)

    async def _follow(self, leadership: Leadership, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await leadership.follow_once()

    async def _ticks(
        self,
        leadership: Leadership,
        reader: OffsetsReader,
        publisher: Publisher,
        executor: ThreadPoolExecutor,
        stop: asyncio.Event,
    ) -> None:
        loop = asyncio.get_running_loop()
        period = self._settings.controller_tick_seconds
        while not stop.is_set():
            started = loop.time()
            if leadership.acting:
                try:
                    await self.tick(leadership, reader, publisher, executor)
                except PublishError:
                    raise
                except ControllerIOError as exc:
                    _LOG.warning("tick skipped: %s", exc)
            else:
                self._policy = None  # standing by (or catching up): start afresh when acting
                self.published.clear()
            left = period - (loop.time() - started)
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=left)

    async def tick(
        self,
        leadership: Leadership,
        reader: OffsetsReader,
        publisher: Publisher,
        executor: ThreadPoolExecutor,
    ) -> TickReport:
        """One acting tick (see the module docstring)."""
        loop = asyncio.get_running_loop()
        settings, log = self._settings, leadership.log
        offsets = await loop.run_in_executor(executor, reader.snapshot)
        wanted = timestamp_positions(offsets.values())
        self._timestamps = {p: t for p, t in self._timestamps.items() if p in wanted}
        missing = wanted - self._timestamps.keys()
        if missing:
            self._timestamps.update(
                await loop.run_in_executor(executor, reader.timestamps, missing)
            )
        now = self._clock()
        timeout = settings.worker_timeout_seconds
        self._measurement, metrics = measure(
            self._measurement,
            offsets,
            self._timestamps,
            now,
            heartbeat_progress=log.heartbeat_progress(now, timeout),
        )
        if self._policy is None or self._epoch != leadership.epoch:
            self._epoch = leadership.epoch
            self._policy = log.seed_state(log.workers(now, timeout, self._forget_seconds))
            self.published.clear()
        workers = log.workers(now, timeout, self._forget_seconds, self._policy.assignments)
        previous_breakers = {c: b.status for c, b in self._policy.breakers.items()}
        result = allocate(self._config, metrics, workers, self._policy, now)
        alive = {w.worker_id: w.alive for w in workers}
        sent = []
        for move in result.moves:  # one new generation per move, in order
            if not alive.get(move.worker_id, False):
                continue  # a lost worker keeps its last assignment until it is seen again
            assignment = log.assignment_for(move, now, self.controller_id)
            await publisher.send_all(
                self._topics.control,
                [(assignment_key(assignment.worker_id), encode(assignment))],
            )
            log.record(assignment)
            sent.append(assignment)
            _LOG.info(
                "assignment %d: %s -> %s (%s)",
                assignment.generation,
                assignment.worker_id,
                assignment.queue_class,
                assignment.reason,
            )
        self._policy = result.next_state
        breakers_changed = any(
            previous_breakers.get(c) is not b.status for c, b in result.breakers.items()
        )
        previous = self.published.get("controller")
        records: list[VisualizationRecord] = [
            *class_views(result, metrics, self._config, now),
            pool_view(
                log.known(now, self._forget_seconds),
                alive,
                result.assignments,
                now,
            ),
            decision_view(
                previous if isinstance(previous, ControllerDecisionView) else None,
                result,
                self.controller_id,
                now,
                breakers_changed=breakers_changed,
            ),
        ]
        changed = to_publish(self.published, records, now)
        if changed:
            await publisher.send_all(
                self._topics.visualization,
                [(visualization_key(r), encode(r)) for r in changed],
            )
            for record in changed:
                self.published[visualization_key(record)] = record
        self.ticks += 1
        report = TickReport(now, result, len(sent), len(changed))
        self._on_tick(report)
        return report
