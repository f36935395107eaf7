"""A worker process: serves one queue class at a time, switches when told, stops gracefully.

Contract:
- Serves its assignment from the control topic (newest generation wins), else the class it
  was started with; with no controller alive it keeps serving its last assignment.
- Switching class: stop taking work, finish what is in flight, commit, leave the group, join
  the other (:class:`streams.session.ClassSession` does one membership).
- SIGTERM/SIGINT: the same drain, under one deadline, then exit 0. A second signal exits at
  once (status 130) without committing: the next owner re-reads the uncommitted records.
- A failure of the data path (a message that could not be delivered, a fatal client error)
  ends the process non-zero without committing past it; the supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from schemas.control import WorkerAssignment, WorkerHeartbeat, WorkerState
from schemas.queues import QueueClass
from schemas.settings import Settings
from schemas.topics import TopicNames
from streams.control_channel import ControlChannel
from streams.metrics import WorkerMetrics
from streams.moderation import Policy, aclose_policy, load_policy
from streams.processing import RecordProcessor, RetryPolicy
from streams.session import ClassSession

_LOG = logging.getLogger("modq.worker")


def utc_now() -> datetime:
    """The wall clock, timezone-aware (the only clock the data plane reads)."""
    return datetime.now(UTC)


class Worker:
    """One worker: a sequence of class sessions, heartbeats, and assignment handling."""

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str,
        initial_class: QueueClass | None,
        policy: Policy,
        metrics: WorkerMetrics | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        self.worker_id = worker_id
        self.desired: QueueClass | None = initial_class
        self.generation: int | None = None
        self._policy = policy
        self.metrics = metrics or WorkerMetrics(worker_id)
        self._clock = clock
        self._changed = asyncio.Event()
        self.state = WorkerState.STARTING
        self.session: ClassSession | None = None
        self.processed = 0
        self.last_progress_at: datetime | None = None
        self.switches = 0
        self._processor = RecordProcessor(
            policy=policy,
            topics=TopicNames.from_prefix(settings.topic_prefix),
            worker_id=worker_id,
            retry=RetryPolicy(settings.max_attempts, settings.retry_backoff_seconds),
            max_record_bytes=settings.max_record_bytes,
            clock=clock,
        )

    # --- control --------------------------------------------------------------------------

    def assign(self, assignment: WorkerAssignment) -> None:
        """Apply a controller assignment (the control channel calls this)."""
        self.generation = assignment.generation
        if assignment.queue_class != self.desired:
            _LOG.info(
                "assignment %d: %s -> %s (%s)",
                assignment.generation,
                self.desired,
                assignment.queue_class,
                assignment.reason,
            )
            self.desired = assignment.queue_class
            self._changed.set()

    def switch_to(self, queue_class: QueueClass | None) -> None:
        """Serve ``queue_class`` from now on (draining the current class first)."""
        if queue_class != self.desired:
            self.desired = queue_class
            self._changed.set()

    def heartbeat(self) -> WorkerHeartbeat:
        """This worker's current heartbeat message."""
        session = self.session
        return WorkerHeartbeat(
            worker_id=self.worker_id,
            queue_class=session.queue_class if session is not None else None,
            generation=self.generation,
            state=self.state,
            in_flight=session.buffered if session is not None else 0,
            processed=self.processed,
            last_progress_at=self.last_progress_at,
            sent_at=self._clock(),
            pid=os.getpid(),
            host=socket.gethostname()[:200] or "localhost",
        )

    def _progressed(self, records: int) -> None:
        self.processed += records
        self.last_progress_at = self._clock()

    # --- running --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; returns after a graceful drain and leave."""
        while not stop.is_set():
            queue_class = self.desired
            self._changed.clear()
            if queue_class is None:
                self.state = WorkerState.IDLE
                await _first(stop.wait(), self._changed.wait())
                continue
            session = ClassSession(
                self._settings,
                worker_id=self.worker_id,
                queue_class=queue_class,
                processor=self._processor,
                metrics=self.metrics,
                on_progress=self._progressed,
            )
            self.session = session
            self.metrics.serving(queue_class.value)
            self.state = WorkerState.SERVING
            serving = asyncio.create_task(session.serve(), name=f"serve-{queue_class.value}")
            await _first(stop.wait(), self._changed.wait(), serving)
            if not serving.done():
                self.state = WorkerState.DRAINING if stop.is_set() else WorkerState.SWITCHING
                session.request_stop()
            try:
                await serving  # raises if the session failed: the process exits non-zero
            finally:
                self.session = None
            if not stop.is_set():
                self.switches += 1
        self.state = WorkerState.STOPPING


async def _first(*aws: Awaitable[object]) -> None:
    """Wait until the first of ``aws`` completes; cancel the ones created here."""
    tasks: list[asyncio.Future[object]] = []
    owned: list[asyncio.Future[object]] = []
    for aw in aws:
        future: asyncio.Future[object] = asyncio.ensure_future(aw)
        tasks.append(future)
        if future is not aw:
            owned.append(future)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in owned:
            future.cancel()


async def _heartbeats(
    worker: Worker, control: ControlChannel, every: float, finished: asyncio.Event
) -> None:
    """A heartbeat every ``every`` seconds (draining included), and a last one once the
    worker has finished (it says ``stopping``)."""
    while not finished.is_set():
        await control.heartbeat(worker.heartbeat())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), timeout=every)
    await control.heartbeat(worker.heartbeat())


async def serve_worker(
    settings: Settings,
    *,
    worker_id: str,
    initial_class: QueueClass | None,
    stop: asyncio.Event,
    policy: Policy | None = None,
    on_ready: Callable[[Worker], None] = lambda _w: None,
) -> Worker:
    """Run a complete worker (control channel, heartbeats, sessions) until ``stop``."""
    policy = policy or load_policy(settings.policy)
    worker = Worker(settings, worker_id=worker_id, initial_class=initial_class, policy=policy)
    try:
        async with ControlChannel(settings, worker_id, worker.assign) as control:
            on_ready(worker)
            finished = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                beats = group.create_task(
                    _heartbeats(worker, control, settings.heartbeat_seconds, finished)
                )
                try:
                    await worker.run(stop)
                finally:
                    stop.set()
                    worker.state = WorkerState.STOPPING
                    finished.set()
                    await beats  # one last heartbeat says "stopping"
    finally:
        await aclose_policy(policy)
    return worker


def run_worker_process(
    settings: Settings, *, worker_id: str, initial_class: QueueClass | None, metrics_port: int
) -> int:
    """Entry point of `modq worker`: signals, metrics endpoint, exit status."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                _LOG.warning("second signal: exiting now without committing")
                os._exit(130)
            _LOG.info("draining (signal again to force)")
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)

        def ready(worker: Worker) -> None:
            if metrics_port:
                from prometheus_client import start_http_server

                start_http_server(metrics_port, addr="127.0.0.1", registry=worker.metrics.registry)

        await serve_worker(
            settings, worker_id=worker_id, initial_class=initial_class, stop=stop, on_ready=ready
        )

    try:
        asyncio.run(main())
    except Exception:
        _LOG.exception("worker %s failed", worker_id)
        return 1
    return 0
