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
one future per batch, not one per record, which keeps the hot path cheap. Only this module
imports confluent-kafka for the publisher (it is the publisher's adapter).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from time import monotonic as _monotonic
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeAlias

import pydantic_core
from confluent_kafka import KafkaException, Producer

from schemas.codec import decode_submission, encode
from schemas.errors import WHOLE_RECORD, ContractError, ErrorType
from schemas.kafka_config import ConfigValue, bootstrap_servers, producer_config
from schemas.settings import Settings
from schemas.submissions import (
    PostSubmission,
    PrivateMessageSubmission,
    SubmissionKind,
    SubmissionModel,
    TopicSubmission,
)
from schemas.topics import TopicNames

_LOG = logging.getLogger("modq.publisher")
_MODELS = (TopicSubmission, PostSubmission, PrivateMessageSubmission)

SubmissionInput: TypeAlias = SubmissionModel | Mapping[str, Any] | bytes | str
"""What ``publish`` accepts: a model, a mapping of its fields, or its JSON text."""


# --- values and errors ------------------------------------------------------------------------


class Delivery(NamedTuple):
    """Where an acknowledged record now lives (a tuple: cheap to build per record)."""

    topic: str
    partition: int
    offset: int
    key: str
    submission_id: str


class PublishError(Exception):
    """A record was not (or may not have been) written.

    ``code`` is librdkafka's error name (``_MSG_TIMED_OUT``, ``_QUEUE_FULL``,
    ``_PURGE_QUEUE``, ``TOPIC_AUTHORIZATION_FAILED``, ...); ``retriable`` says whether sending
    the same submission again may succeed (its ``id`` makes a retry idempotent downstream).
    """

    def __init__(
        self,
        topic: str,
        key: str | None,
        code: str,
        reason: str,
        *,
        retriable: bool = False,
        fatal: bool = False,
        submission_id: str | None = None,
    ) -> None:
        where = f"{topic} (key {key!r})" if key is not None else topic
        super().__init__(f"publish to {where} failed: {code}: {reason}")
        self.topic = topic
        self.key = key
        self.code = code
        self.reason = reason
        self.retriable = retriable
        self.fatal = fatal
        self.submission_id = submission_id


class PublisherClosedError(PublishError):
    """``publish`` after ``close`` (or before ``start``)."""

    def __init__(self, topic: str = "", key: str | None = None) -> None:
        super().__init__(topic or "?", key, "_STATE", "the publisher is not open")


class BatchPublishError(PublishError):
    """Some records of a ``publish_many`` batch failed; the others were delivered.

    ``results`` holds, in input order, a :class:`Delivery` or a :class:`PublishError` per
    record; the exception's own attributes are those of the first failure.
    """

    def __init__(self, results: tuple[Delivery | PublishError, ...]) -> None:
        self.results = results
        self.errors = tuple(r for r in results if isinstance(r, PublishError))
        first = self.errors[0]
        super().__init__(
            first.topic,
            first.key,
            first.code,
            f"{first.reason} ({len(self.errors)} of {len(results)} records failed)",
            retriable=all(e.retriable for e in self.errors),
            fatal=any(e.fatal for e in self.errors),
            submission_id=first.submission_id,
        )


@dataclass(frozen=True, slots=True)
class PublisherOptions:
    """Buffering and timeouts. Durations in seconds, sizes as named."""

    delivery_timeout_s: float = 30.0
    """How long librdkafka keeps trying to deliver one record (``message.timeout.ms``)."""
    enqueue_timeout_s: float = 5.0
    """How long a publish waits for room when the local buffer is full."""
    max_buffered_messages: int = 100_000
    """Records waiting in the local buffer, at most (``queue.buffering.max.messages``)."""
    max_buffered_kbytes: int = 65_536
    """KiB waiting in the local buffer, at most (``queue.buffering.max.kbytes``)."""
    close_timeout_s: float | None = None
    """How long ``close`` flushes before purging; default ``delivery_timeout_s`` + 5."""
    client_id: str = "modq-publisher"
    extra: Mapping[str, ConfigValue] = field(default_factory=dict)
    """Further librdkafka settings (cannot weaken idempotence, acks or the partitioner)."""

    def __post_init__(self) -> None:
        for name in ("delivery_timeout_s", "enqueue_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive")
        if self.max_buffered_messages < 1 or self.max_buffered_kbytes < 1:
            raise ValueError("max_buffered_messages/max_buffered_kbytes: must be at least 1")
        protected = {"enable.idempotence", "acks", "partitioner"} & set(self.extra)
        if protected:
            raise ValueError(f"extra: {sorted(protected)} are fixed by the contract")

    @property
    def flush_timeout_s(self) -> float:
        """How long ``close`` waits for outstanding reports."""
        if self.close_timeout_s is not None:
            return self.close_timeout_s
        return self.delivery_timeout_s + 5.0


# --- validation (pure) -----------------------------------------------------------------------


class Outgoing(NamedTuple):
    """A validated record, ready for the wire."""

    topic: str
    key: str
    value: bytes
    submission_id: str


def topics_by_kind(names: TopicNames) -> dict[str, str]:
    """The submission topic of each ``kind`` value (a plain dict: looked up per record)."""
    return {kind.value: names.submission_topic(kind) for kind in SubmissionKind}


def prepare(submission: SubmissionInput, topics: Mapping[str, str], max_bytes: int) -> Outgoing:
    """Validate ``submission`` and derive its topic (from ``topics_by_kind``), key and value.

    Models are valid by construction (they are frozen and validated by pydantic), so only
    their size is checked; mappings and JSON go through ``decode_submission``, exactly what a
    worker will run on the bytes. Raises ``ContractError`` naming the field.
    """
    if isinstance(submission, _MODELS):
        model: SubmissionModel = submission
        # The model's own serializer, as schemas.codec.encode uses it, minus a str round
        # trip: the same bytes (a unit test pins that), ~40% cheaper on the hot path.
        value = model.__pydantic_serializer__.to_json(model)
        if len(value) > max_bytes:
            raise ContractError(
                WHOLE_RECORD, f"{len(value)} bytes, more than {max_bytes}", ErrorType.OVERSIZE
            )
    else:
        if isinstance(submission, str):
            raw = submission.encode("utf-8")
        elif isinstance(submission, bytes):
            raw = submission
        elif isinstance(submission, Mapping):
            try:
                raw = pydantic_core.to_json(dict(submission))
            except pydantic_core.PydanticSerializationError:
                raise ContractError(
                    WHOLE_RECORD, "not JSON-serialisable", ErrorType.INVALID_JSON
                ) from None
        else:
            raise TypeError(f"cannot publish a {type(submission).__name__}")
        model = decode_submission(raw, max_bytes=max_bytes)
        value = encode(model)
    return Outgoing(topics[model.kind], model.key, value, model.id)


# --- the librdkafka shell --------------------------------------------------------------------

Result: TypeAlias = Delivery | PublishError
ReportCallback: TypeAlias = Callable[[Any, Any], None]


def _result(out: Outgoing, err: Any, msg: Any, timeout_hint: str) -> Result:
    """The delivery report of ``out`` as a value (runs in the thread serving reports)."""
    if err is None:
        return Delivery(out.topic, msg.partition(), msg.offset(), out.key, out.submission_id)
    return _failure(out, err, timeout_hint)


def _failure(out: Outgoing, err: Any, timeout_hint: str) -> PublishError:
    """A failed delivery report (``err`` is librdkafka's KafkaError) as an exception."""
    code = str(err.name())
    reason = str(err.str())
    if code == "_MSG_TIMED_OUT":
        reason = f"{reason}; {timeout_hint}"
    return PublishError(
        out.topic,
        out.key,
        code,
        reason,
        retriable=bool(err.retriable()) or code in {"_MSG_TIMED_OUT", "_PURGE_QUEUE"},
        fatal=bool(err.fatal()),
        submission_id=out.submission_id,
    )


class _Engine:
    """One idempotent librdkafka producer and the thread that serves its delivery reports.

    Reports run in whichever thread polls: the serving thread, a ``publish_many`` caller
    (:meth:`serve_ready` between records, which spares a GIL hand-off per report on the hot
    path) or :meth:`close`. Report handlers are therefore thread-safe.
    """

    def __init__(self, settings: Settings, options: PublisherOptions) -> None:
        config: dict[str, Any] = dict(producer_config(settings))
        config.update(options.extra)
        config.update(
            {
                "client.id": options.client_id,
                "message.timeout.ms": int(options.delivery_timeout_s * 1000),
                "queue.buffering.max.messages": options.max_buffered_messages,
                "queue.buffering.max.kbytes": options.max_buffered_kbytes,
                "logger": _LOG,
                "error_cb": self._on_error,
            }
        )
        self.options = options
        self.topics = topics_by_kind(TopicNames.from_prefix(settings.topic_prefix))
        self.max_bytes = settings.max_record_bytes
        self.timeout_hint = (
            f"not acknowledged within {options.delivery_timeout_s:g}s "
            f"(is the broker at {bootstrap_servers(settings)} reachable?)"
        )
        self.fatal_error: PublishError | None = None
        self.room = threading.Event()
        self._producer = Producer(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="modq-publisher", daemon=True)
        self._thread.start()
        self.closed = False

    def _on_error(self, err: Any) -> None:
        _LOG.warning("publisher: %s", err)
        if err.fatal():
            self.fatal_error = PublishError("*", None, str(err.name()), str(err.str()), fatal=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if self._producer.poll(0.1):
                    self.room.set()
            except Exception:  # a report handler bug must not stop reports for everyone
                _LOG.exception("publisher: delivery report handler failed")

    def serve_ready(self) -> None:
        """Run the reports that are ready now, in the calling thread (never blocks)."""
        if not self.closed and self._producer.poll(0):
            self.room.set()

    def try_produce(self, out: Outgoing, on_report: ReportCallback) -> bool:
        """Queue ``out``; ``False`` when the local buffer is full (nothing was queued)."""
        if self.closed:
            raise PublisherClosedError(out.topic, out.key)
        if self.fatal_error is not None:
            raise self.fatal_error
        try:
            self._producer.produce(out.topic, value=out.value, key=out.key, on_delivery=on_report)
        except BufferError:
            return False
        except KafkaException as exc:
            err = exc.args[0]
            raise PublishError(
                out.topic,
                out.key,
                str(err.name()),
                str(err.str()),
                retriable=bool(err.retriable()),
                fatal=bool(err.fatal()),
                submission_id=out.submission_id,
            ) from None
        return True

    def produce_blocking(self, out: Outgoing, on_report: ReportCallback) -> None:
        """Queue ``out``, waiting up to ``enqueue_timeout_s`` for room in the buffer."""
        deadline = _monotonic() + self.options.enqueue_timeout_s
        while True:
            self.room.clear()
            if self.try_produce(out, on_report):
                return
            left = deadline - _monotonic()
            if left <= 0:
                raise self.queue_full(out)
            self.room.wait(min(left, 0.1))

    def queue_full(self, out: Outgoing) -> PublishError:
        """The error a publish gets when the buffer stayed full for ``enqueue_timeout_s``."""
        o = self.options
        return PublishError(
            out.topic,
            out.key,
            "_QUEUE_FULL",
            f"local buffer full ({o.max_buffered_messages} records / {o.max_buffered_kbytes} "
            f"KiB) for {o.enqueue_timeout_s:g}s: the broker is slow or unreachable",
            retriable=True,
            submission_id=out.submission_id,
        )

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s until the buffer is empty; returns records still queued.

        Reports keep being served by the serving thread meanwhile.
        """
        deadline = _monotonic() + timeout
        while len(self._producer) > 0:
            left = deadline - _monotonic()
            if left <= 0:
                break
            self.room.clear()
            self.room.wait(min(left, 0.05))
        return len(self._producer)

    def close(self) -> int:
        """Flush, stop serving, purge what is left (failing its callers). Idempotent.

        Returns how many records had to be purged.
        """
        if self.closed:
            return 0
        self.closed = True
        self._stop.set()
        self._thread.join()
        left = int(self._producer.flush(self.options.flush_timeout_s))
        if left:
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            self._producer.poll(0)  # run the purged records' reports: their callers fail
        return left


# --- batches: one waiter per batch, not per record ---------------------------------------------


class _Batch:
    """Collects a batch's delivery reports and calls ``on_done()`` once, after the last.

    ``report`` runs once per record in whichever thread serves reports, so it only stores
    (error, partition, offset) and counts; Delivery objects are built by the waiting caller.
    ``itertools.count`` makes the count atomic without a lock.
    """

    def __init__(self, outs: list[Outgoing], hint: str, on_done: Callable[[], None]) -> None:
        self._outs = outs
        self._hint = hint
        self._on_done = on_done
        self._reports: list[tuple[Any, int, int] | PublishError | None] = [None] * len(outs)
        self._reported = itertools.count(1)

    def report(self, index: int, err: Any, msg: Any) -> None:
        if err is None:
            self._reports[index] = (None, msg.partition(), msg.offset())
        else:
            self._reports[index] = _failure(self._outs[index], err, self._hint)
        if next(self._reported) == len(self._outs):
            self._on_done()

    def abandon_from(self, index: int, error: PublishError) -> None:
        """Records ``index`` and later were never queued: fail them with ``error``."""
        for i in range(index, len(self._outs)):
            self._reports[i] = error
            if next(self._reported) == len(self._outs):
                self._on_done()

    def outcome(self) -> list[Delivery]:
        """The deliveries in input order, or :class:`BatchPublishError` if any failed."""
        results: list[Result] = []
        failed = False
        for out, report in zip(self._outs, self._reports, strict=True):
            if isinstance(report, tuple):
                _, partition, offset = report
                results.append(Delivery(out.topic, partition, offset, out.key, out.submission_id))
            else:
                assert report is not None, "outcome() before the last report"
                results.append(report)
                failed = True
        if failed:
            raise BatchPublishError(tuple(results))
        return [r for r in results if isinstance(r, Delivery)]


_INLINE_POLL_EVERY = 512
"""publish_many serves ready reports itself every this many records (see _Engine)."""


# --- asyncio front end -------------------------------------------------------------------------


class Publisher:
    """The asyncio publisher: ``async with Publisher(settings) as pub``.

    ``start``/``close`` are idempotent; ``close`` flushes (see the module docstring).
    """

    def __init__(self, settings: Settings, options: PublisherOptions | None = None) -> None:
        self._settings = settings
        self._options = options or PublisherOptions()
        self._engine: _Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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
            self._engine = _Engine(self._settings, self._options)

    async def close(self) -> None:
        """Flush and stop; records still unacknowledged after the timeout fail."""
        if self._engine is not None and not self._engine.closed:
            await asyncio.to_thread(self._engine.close)

    def _open(self) -> tuple[_Engine, asyncio.AbstractEventLoop]:
        if self._engine is None or self._loop is None or self._engine.closed:
            raise PublisherClosedError()
        return self._engine, self._loop

    async def publish(self, submission: SubmissionInput) -> Delivery:
        """Validate, send and wait for the acknowledgement of one submission.

        Raises ``ContractError`` (nothing sent) or :class:`PublishError`.
        """
        engine, loop = self._open()
        out = prepare(submission, engine.topics, engine.max_bytes)
        future: asyncio.Future[Result] = loop.create_future()

        def on_report(err: Any, msg: Any) -> None:
            _resolve_threadsafe(loop, future, _result(out, err, msg, engine.timeout_hint))

        await self._enqueue(engine, out, on_report)
        result = await future
        if isinstance(result, PublishError):
            raise result
        return result

    async def publish_many(self, submissions: Iterable[SubmissionInput]) -> list[Delivery]:
        """Validate all, then send all, and wait for every acknowledgement.

        Deliveries come back in input order; per key, records are written in input order.
        If one input is invalid, ``ContractError`` is raised and nothing is sent. If some
        records fail, :class:`BatchPublishError` says which.
        """
        engine, loop = self._open()
        outs = [prepare(s, engine.topics, engine.max_bytes) for s in submissions]
        if not outs:
            return []
        future: asyncio.Future[None] = loop.create_future()
        batch = _Batch(outs, engine.timeout_hint, partial(_resolve_threadsafe, loop, future, None))
        for index, out in enumerate(outs):
            callback = partial(batch.report, index)
            try:
                # Fast path: no suspension per record; await only when the buffer is full.
                if not engine.try_produce(out, callback):
                    await self._enqueue(engine, out, callback)
            except PublishError as exc:
                batch.abandon_from(index, exc)
                break
            if index % _INLINE_POLL_EVERY == 0:
                engine.serve_ready()
        await future
        return batch.outcome()

    async def flush(self) -> int:
        """Wait (up to the options' flush timeout) until everything queued has its report.

        Returns how many records are still queued.
        """
        engine, _ = self._open()
        return await asyncio.to_thread(engine.flush, self._options.flush_timeout_s)

    @staticmethod
    async def _enqueue(engine: _Engine, out: Outgoing, on_report: ReportCallback) -> None:
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


def _resolve_threadsafe(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any
) -> None:
    """Hand ``value`` to ``future`` on its loop (called from the report thread)."""
    try:
        loop.call_soon_threadsafe(_set_result, future, value)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        _LOG.debug("publisher: report after the event loop closed")


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # the caller may have been cancelled meanwhile
        future.set_result(value)


# --- synchronous front end ---------------------------------------------------------------------


class SyncPublisher:
    """The blocking publisher: ``with SyncPublisher(settings) as pub``. Thread-safe."""

    def __init__(self, settings: Settings, options: PublisherOptions | None = None) -> None:
        self._settings = settings
        self._options = options or PublisherOptions()
        self._engine: _Engine | None = None
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
                self._engine = _Engine(self._settings, self._options)

    def close(self) -> int:
        """Flush and stop. Idempotent. Returns how many records were purged unacknowledged."""
        with self._lock:
            if self._engine is None:
                return 0
            return self._engine.close()

    def _open(self) -> _Engine:
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

    def _send(self, engine: _Engine, out: Outgoing) -> concurrent.futures.Future[Delivery]:
        future: concurrent.futures.Future[Delivery] = concurrent.futures.Future()

        def on_report(err: Any, msg: Any) -> None:
            result = _result(out, err, msg, engine.timeout_hint)
            if isinstance(result, PublishError):
                future.set_exception(result)
            else:
                future.set_result(result)

        engine.produce_blocking(out, on_report)
        return future

    def publish(self, submission: SubmissionInput) -> Delivery:
        """Validate, send and wait for the acknowledgement of one submission."""
        return self._wait(self.send(submission))

    def publish_many(self, submissions: Iterable[SubmissionInput]) -> list[Delivery]:
        """Validate all, send all, wait for all; see :meth:`Publisher.publish_many`."""
        engine = self._open()
        outs = [prepare(s, engine.topics, engine.max_bytes) for s in submissions]
        if not outs:
            return []
        done = threading.Event()
        batch = _Batch(outs, engine.timeout_hint, done.set)
        for index, out in enumerate(outs):
            callback = partial(batch.report, index)
            try:
                if not engine.try_produce(out, callback):
                    engine.produce_blocking(out, callback)
            except PublishError as exc:
                batch.abandon_from(index, exc)
                break
            if index % _INLINE_POLL_EVERY == 0:
                engine.serve_ready()
        # librdkafka reports every queued record within delivery_timeout_s; close() purges.
        done.wait()
        return batch.outcome()

    def flush(self, timeout: float | None = None) -> int:
        """Wait until everything queued has its report; returns records still queued."""
        limit = self._options.flush_timeout_s if timeout is None else timeout
        return self._open().flush(limit)

    def _wait(self, future: concurrent.futures.Future[Delivery]) -> Delivery:
        # The report arrives within delivery_timeout_s (librdkafka's message timeout).
        return future.result()
