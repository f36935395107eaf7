"""The publisher's librdkafka shell: one idempotent producer and its delivery-report thread.

The only module of the publisher SDK that imports confluent-kafka (its adapter). Reports run
in whichever thread polls; report handlers are thread-safe. Batches resolve one waiter per
batch, not one per record, and serve their own reports while they send (see
:meth:`Engine.serving_here`).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from time import monotonic as _monotonic
from typing import Any, TypeAlias

from confluent_kafka import KafkaException, Producer
from pydantic_core import PydanticSerializationError

from schemas.codec import encode
from schemas.kafka_config import bootstrap_servers, producer_config
from schemas.settings import Settings
from schemas.topics import TopicNames
from streams.publication import (
    BatchPublishError,
    Deliveries,
    Delivery,
    Outgoing,
    PreparedBatch,
    PublisherClosedError,
    PublisherOptions,
    PublishError,
    topics_by_kind,
)

_LOG = logging.getLogger("modq.publisher")


# --- the librdkafka shell --------------------------------------------------------------------

Result: TypeAlias = Delivery | PublishError
ReportCallback: TypeAlias = Callable[[Any, Any], None]

INLINE_POLL_EVERY = 512
"""A sending batch serves the reports that are ready every this many records."""


def delivery_result(out: Outgoing, err: Any, msg: Any, timeout_hint: str) -> Result:
    """The delivery report of ``out`` as a value (runs in the thread serving reports)."""
    if err is None:
        return Delivery(out.topic, msg.partition(), msg.offset(), out.key, out.submission_id)
    return delivery_failure(out, err, timeout_hint)


def delivery_failure(out: Outgoing, err: Any, timeout_hint: str) -> PublishError:
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


class Engine:
    """One idempotent librdkafka producer and the thread that serves its delivery reports.

    Reports run in whichever thread polls: the serving thread, a batch's caller inside
    :meth:`serving_here` (:meth:`serve`), or :meth:`close`. Report handlers are therefore
    thread-safe.
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
        self._inline = 0
        self._inline_lock = threading.Lock()
        self._thread_may_serve = threading.Event()
        self._thread_may_serve.set()
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
            if not self._thread_may_serve.wait(0.1):
                continue  # a batch's caller serves reports meanwhile (serving_here)
            try:
                if self._producer.poll(0.1):
                    self.room.set()
            except Exception:  # a report handler bug must not stop reports for everyone
                _LOG.exception("publisher: delivery report handler failed")

    def serve(self, timeout: float = 0.0) -> None:
        """Run the reports that are ready, in the calling thread, waiting up to ``timeout``
        s for the first one."""
        if self._producer.poll(timeout):
            self.room.set()

    @contextmanager
    def serving_here(self) -> Iterator[None]:
        """While inside, the serving thread stops polling: the caller serves reports itself.

        Why: two threads serving one producer's reports fight for the GIL on every chunk of
        reports; on a 2-core machine that was a large share of a sending batch's time
        (seen while profiling ``publish_many``).
        Whoever is inside must call :meth:`serve` until it stops sending (other callers'
        reports are served by it meanwhile). Re-entrant across threads: the thread resumes
        when the last caller leaves.
        """
        with self._inline_lock:
            self._inline += 1
            self._thread_may_serve.clear()
        try:
            yield
        finally:
            with self._inline_lock:
                self._inline -= 1
                if self._inline == 0:
                    self._thread_may_serve.set()

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
            raise _produce_error(out, exc) from None
        return True

    def send_batch(self, batch: Batch) -> Iterator[float]:
        """Queue the batch's records in order, with ``batch.report`` as their report handler.

        A generator, so that one loop serves both front ends: each time the local buffer is
        full it yields how long to wait (s); the caller serves reports for up to that long
        (blocking or awaiting), then resumes it. Every ``INLINE_POLL_EVERY`` records it
        serves the reports that are ready itself, so call it inside :meth:`serving_here`.
        A record that stays refused for ``enqueue_timeout_s``, a closed publisher, a fatal
        producer error or a deferred model that cannot be serialised (possible only for one
        built without validation, e.g. ``model_construct``) fails that record and every later
        one (``batch.abandon_from``); the records before it were sent.
        """
        produce = self._producer.produce
        report = batch.report
        records = batch.records
        topics, keys, values, models = records.topics, records.keys, records.values, records.models
        count = len(batch)
        index = 0
        error: PublishError | None = None
        stuck_at, deadline, delay = -1, 0.0, 0.001
        while index < count:
            if self.closed:
                error = PublisherClosedError(topics[index], keys[index])
            error = self.fatal_error or error
            if error is not None:
                break
            try:
                # The hot loop: a produce per record, nothing else but a poll now and then.
                # Arguments by position (topic, value, key, partition, on_delivery; partition
                # -1 = the partitioner's choice): keyword parsing cost 0.25 us per record.
                while index < count:
                    value = values[index]
                    if value is None:  # a model of bounded size, encoded as it is sent
                        value = encode(models[index])  # type: ignore[arg-type]
                    produce(topics[index], value, keys[index], -1, partial(report, index))
                    index += 1
                    if not index % INLINE_POLL_EVERY:
                        self.serve()
                        break  # re-check closed and fatal once per chunk
                continue
            except BufferError:
                pass
            except KafkaException as exc:
                error = _produce_error(records.outgoing(index), exc)
                break
            except PydanticSerializationError as exc:  # a model built without validation
                error = PublishError(
                    topics[index],
                    keys[index],
                    "_SERIALIZATION",
                    str(exc),
                    submission_id=records.submission_ids[index],
                )
                break
            now = _monotonic()
            if stuck_at != index:
                stuck_at, deadline, delay = index, now + self.options.enqueue_timeout_s, 0.001
            elif now >= deadline:
                error = self.queue_full(records.outgoing(index))
                break
            yield min(delay, deadline - now)
            delay = min(delay * 2, 0.05)
        if index < count:
            batch.abandon_from(index, error or self.queue_full(records.outgoing(index)))

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
        try:
            left = int(self._producer.flush(self.options.flush_timeout_s))
        except KafkaException:  # a fatal producer (e.g. fenced, not authorised) cannot flush
            left = len(self._producer)
        if left:
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            self._producer.poll(0)  # run the purged records' reports: their callers fail
        return left


# --- batches: one waiter per batch, not per record ---------------------------------------------


class Batch:
    """A prepared batch's delivery reports; calls ``on_done()`` once, after the last.

    ``report`` runs once per record in whichever thread serves reports, so it only stores the
    partition and offset (or the error) and counts; the caller reads them as
    :class:`Deliveries`. Plain int lists, like the batch's columns, give the garbage collector
    nothing to track per record. ``itertools.count`` makes the count atomic without a lock.
    """

    __slots__ = (
        "_count",
        "_errors",
        "_hint",
        "_offsets",
        "_on_done",
        "_partitions",
        "_reported",
        "records",
    )

    def __init__(self, records: PreparedBatch, hint: str, on_done: Callable[[], None]) -> None:
        self.records = records
        self._count = len(records)
        self._hint = hint
        self._on_done = on_done
        self._partitions = [-1] * self._count
        self._offsets = [-1] * self._count
        self._errors: dict[int, PublishError] = {}
        self._reported = itertools.count(1)

    def __len__(self) -> int:
        return self._count

    def report(self, index: int, err: Any, msg: Any) -> None:
        if err is None:
            self._partitions[index] = msg.partition()
            self._offsets[index] = msg.offset()
        else:
            self._errors[index] = delivery_failure(self.records.outgoing(index), err, self._hint)
        if next(self._reported) == self._count:
            self._on_done()

    def abandon_from(self, index: int, error: PublishError) -> None:
        """Records ``index`` and later were never queued: fail ``index`` with ``error`` and
        each later one with the same failure naming that record."""
        records = self.records
        for i in range(index, self._count):
            self._errors[i] = (
                error
                if i == index
                else error.for_record(records.topics[i], records.keys[i], records.submission_ids[i])
            )
            if next(self._reported) == self._count:
                self._on_done()

    def outcome(self) -> Deliveries:
        """The deliveries in input order, or :class:`BatchPublishError` if any failed.

        Call it after ``on_done``."""
        records = self.records
        deliveries = Deliveries(
            records.topics, self._partitions, self._offsets, records.keys, records.submission_ids
        )
        if self._errors:
            errors = self._errors
            raise BatchPublishError(tuple(errors.get(i) or d for i, d in enumerate(deliveries)))
        return deliveries


def _produce_error(out: Outgoing, exc: KafkaException) -> PublishError:
    """``produce`` refused ``out`` (unknown topic, record too large, fatal producer...)."""
    err = exc.args[0]
    return PublishError(
        out.topic,
        out.key,
        str(err.name()),
        str(err.str()),
        retriable=bool(err.retriable()),
        fatal=bool(err.fatal()),
        submission_id=out.submission_id,
    )
