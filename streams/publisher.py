"""The publisher SDK: how forum back ends put submissions on Kafka (and its confluent adapter).

Two front ends over one librdkafka producer, for back ends of either kind::

    async with Publisher(settings) as pub:
        delivery = await pub.publish(submission)          # Delivery(topic, partition, offset)

    with SyncPublisher(settings) as pub:
        deliveries = pub.publish_many(submissions)

Contract:

- **Validate, then send.** Every input (a model, a mapping, or JSON bytes/str) is checked
  with the contract's models first; an invalid one raises ``schemas.errors.ContractError``
  naming the field and is never sent. ``publish_many`` validates the whole batch before it
  sends any of it.
- **Keys and topics are derived here**, from the model (``.key``, ``kind``); callers never
  pass them. The producer is the contract's (``schemas.kafka_config.producer_config``):
  idempotent, ``acks=all``, ``partitioner=murmur2_random``, so a key lands on the partition
  the Java client and aiokafka would pick.
- **A returned Delivery is durable**: it is built in the delivery report, i.e. after every
  in-sync replica has the record. Anything else raises :class:`PublishError`.
- **Bounded memory.** At most ``max_buffered_messages`` / ``max_buffered_kbytes`` wait in
  librdkafka's queue; a publish that finds it full waits up to ``enqueue_timeout_s`` for room,
  then raises ``PublishError(code="_QUEUE_FULL", retriable=True)``. A record not acknowledged
  within ``delivery_timeout_s`` (broker unreachable, say) fails with ``_MSG_TIMED_OUT``.
- **close() flushes.** It waits for every queued record's report (each caller gets its
  Delivery or its error); whatever is still undelivered after the flush timeout is purged
  and fails with ``_PURGE_QUEUE``, so no caller waits forever. ``close`` is idempotent.

Threading: one daemon thread per publisher serves librdkafka's delivery reports
(``poll``); async futures are resolved through ``loop.call_soon_threadsafe``. Batches resolve
one future per batch, not one per record, and serve their own reports while they send (the
thread pauses meanwhile, sparing a GIL hand-off per chunk of reports), which keeps the hot
path cheap. confluent-kafka is imported only by :mod:`streams.producer_engine` (the
publisher's adapter).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Iterable
from functools import partial
from time import monotonic as _monotonic
from types import TracebackType
from typing import Any, Self

from schemas.settings import Settings
from schemas.submissions import (
    SubmissionKind,
)
from streams.producer_engine import (
    Batch,
    Engine,
    ReportCallback,
    Result,
    delivery_result,
)
from streams.publication import (
    BatchPublishError,
    Deliveries,
    Delivery,
    Outgoing,
    PublisherClosedError,
    PublisherOptions,
    PublishError,
    SubmissionInput,
    prepare,
    prepare_many,
    topics_by_kind,
)

__all__ = [
    "BatchPublishError",
    "Deliveries",
    "Delivery",
    "Outgoing",
    "PublishError",
    "Publisher",
    "PublisherClosedError",
    "PublisherOptions",
    "SubmissionInput",
    "SyncPublisher",
    "prepare",
    "topics_by_kind",
]

_LOG = logging.getLogger("modq.publisher")


# --- asyncio front end -------------------------------------------------------------------------


class Publisher:
    """The asyncio publisher: ``async with Publisher(settings) as pub``.

    ``start``/``close`` are idempotent; ``close`` flushes (see the module docstring).
    """

    def __init__(self, settings: Settings, options: PublisherOptions | None = None) -> None:
        self._settings = settings
        self._options = options or PublisherOptions()
        self._engine: Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handoff: _Handoff | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Create the producer and its report thread (no network round trip yet)."""
        if self._engine is None:
            self._loop = asyncio.get_running_loop()
            self._handoff = _Handoff(self._loop)
            self._engine = Engine(self._settings, self._options)

    async def close(self) -> None:
        """Flush and stop; records still unacknowledged after the timeout fail."""
        if self._engine is not None and not self._engine.closed:
            await asyncio.to_thread(self._engine.close)

    def _open(self) -> tuple[Engine, asyncio.AbstractEventLoop, _Handoff]:
        if (
            self._engine is None
            or self._loop is None
            or self._handoff is None
            or self._engine.closed
        ):
            raise PublisherClosedError()
        return self._engine, self._loop, self._handoff

    async def publish(self, submission: SubmissionInput) -> Delivery:
        """Validate, send and wait for the acknowledgement of one submission.

        Raises ``ContractError`` (nothing sent) or :class:`PublishError`.
        """
        engine, loop, handoff = self._open()
        out = prepare(submission, engine.topics, engine.max_bytes)
        future: asyncio.Future[Result] = loop.create_future()

        def on_report(err: Any, msg: Any) -> None:
            handoff.give(future, delivery_result(out, err, msg, engine.timeout_hint))

        if not engine.try_produce(out, on_report):  # the buffer is full: wait for room
            await self._enqueue(engine, out, on_report)
        result = await future
        if isinstance(result, PublishError):
            raise result
        return result

    async def publish_many(self, submissions: Iterable[SubmissionInput]) -> Deliveries:
        """Validate all, then send all, and wait for every acknowledgement.

        Returns the :class:`Deliveries` (a sequence of Delivery) in input order; per key,
        records are written in input order.
        If one input is invalid, ``ContractError`` is raised and nothing is sent. If some
        records fail, :class:`BatchPublishError` says which.
        """
        engine, loop, handoff = self._open()
        future: asyncio.Future[None] = loop.create_future()
        batch = Batch(
            prepare_many(submissions, engine.topics, engine.max_bytes),
            engine.timeout_hint,
            partial(handoff.give, future, None),
        )
        if not batch:
            return batch.outcome()
        with engine.serving_here():
            # No suspension per record; the loop yields only while the buffer is full.
            for wait in engine.send_batch(batch):
                engine.serve()
                await asyncio.sleep(wait)
        await future  # the serving thread serves the rest of the reports
        return batch.outcome()

    async def flush(self) -> int:
        """Wait (up to the options' flush timeout) until everything queued has its report.

        Returns how many records are still queued.
        """
        engine, _, _ = self._open()
        return await asyncio.to_thread(engine.flush, self._options.flush_timeout_s)

    @staticmethod
    async def _enqueue(engine: Engine, out: Outgoing, on_report: ReportCallback) -> None:
        """Queue ``out``; when the buffer is full, yield to the loop and retry until timeout."""
        deadline = _monotonic() + engine.options.enqueue_timeout_s
        delay = 0.001
        while not engine.try_produce(out, on_report):
            if _monotonic() >= deadline:
                raise engine.queue_full(out)
            # Backpressure: the report thread frees room; a short, growing pause keeps the
            # event loop responsive instead of blocking it in librdkafka.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


class _Handoff:
    """Results handed from the report thread to futures on one event loop, a chunk at a time.

    librdkafka serves reports in chunks (all that one poll finds ready). The first result of a
    chunk wakes the loop; the rest ride along. That is one ``call_soon_threadsafe`` (a
    self-pipe write and a GIL hand-off) per chunk instead of one per record.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[asyncio.Future[Any], Any]] = []

    def give(self, future: asyncio.Future[Any], value: Any) -> None:
        """Set ``future``'s result to ``value`` on the loop, soon (call from any thread)."""
        with self._lock:
            self._items.append((future, value))
            first = len(self._items) == 1
        if first:
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                _LOG.debug("publisher: report after the event loop closed")

    def _deliver(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for future, value in items:
            if not future.done():  # the caller may have been cancelled meanwhile
                future.set_result(value)


# --- synchronous front end ---------------------------------------------------------------------


class SyncPublisher:
    """The blocking publisher: ``with SyncPublisher(settings) as pub``. Thread-safe."""

    def __init__(self, settings: Settings, options: PublisherOptions | None = None) -> None:
        self._settings = settings
        self._options = options or PublisherOptions()
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Create the producer and its report thread. Idempotent."""
        with self._lock:
            if self._engine is None:
                self._engine = Engine(self._settings, self._options)

    def close(self) -> int:
        """Flush and stop. Idempotent. Returns how many records were purged unacknowledged."""
        with self._lock:
            if self._engine is None:
                return 0
            return self._engine.close()

    def _open(self) -> Engine:
        if self._engine is None or self._engine.closed:
            raise PublisherClosedError()
        return self._engine

    def send(self, submission: SubmissionInput) -> concurrent.futures.Future[Delivery]:
        """Validate and queue one submission; the future resolves on acknowledgement.

        Raises ``ContractError`` at once for invalid input; delivery failures surface as
        the future's exception (:class:`PublishError`).
        """
        engine = self._open()
        return self._send(engine, prepare(submission, engine.topics, engine.max_bytes))

    def send_unchecked(
        self, kind: SubmissionKind, key: str, value: bytes, label: str = "unchecked"
    ) -> concurrent.futures.Future[Delivery]:
        """Queue raw bytes on ``kind``'s topic **without validation**.

        For load generation and tests that need deliberately broken records (they end in
        the DLQ). Forum back ends use :meth:`send`/:meth:`publish`.
        """
        engine = self._open()
        out = Outgoing(engine.topics[kind.value], key, value, label)
        return self._send(engine, out)

    def _send(self, engine: Engine, out: Outgoing) -> concurrent.futures.Future[Delivery]:
        future: concurrent.futures.Future[Delivery] = concurrent.futures.Future()

        def on_report(err: Any, msg: Any) -> None:
            result = delivery_result(out, err, msg, engine.timeout_hint)
            if isinstance(result, PublishError):
                future.set_exception(result)
            else:
                future.set_result(result)

        engine.produce_blocking(out, on_report)
        return future

    def publish(self, submission: SubmissionInput) -> Delivery:
        """Validate, send and wait for the acknowledgement of one submission."""
        return self._wait(self.send(submission))

    def publish_many(self, submissions: Iterable[SubmissionInput]) -> Deliveries:
        """Validate all, send all, wait for all; see :meth:`Publisher.publish_many`."""
        engine = self._open()
        done = threading.Event()
        batch = Batch(
            prepare_many(submissions, engine.topics, engine.max_bytes),
            engine.timeout_hint,
            done.set,
        )
        if not batch:
            return batch.outcome()
        with engine.serving_here():
            for wait in engine.send_batch(batch):
                engine.serve(wait)
            # librdkafka reports every queued record within delivery_timeout_s; close()
            # purges what is left and serves the purged records' reports.
            while not done.is_set():
                engine.serve(0.05)
        return batch.outcome()

    def flush(self, timeout: float | None = None) -> int:
        """Wait until everything queued has its report; returns records still queued."""
        limit = self._options.flush_timeout_s if timeout is None else timeout
        return self._open().flush(limit)

    def _wait(self, future: concurrent.futures.Future[Delivery]) -> Delivery:
        # The report arrives within delivery_timeout_s (librdkafka's message timeout).
        return future.result()
