"""The publisher's librdkafka shell: one idempotent producer and its delivery-report thread.

The only module of the publisher SDK that imports confluent-kafka (its adapter). Reports run
in whichever thread polls; report handlers are thread-safe. Batches resolve one waiter per
batch, not one per record.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import Any, TypeAlias

from confluent_kafka import KafkaException, Producer

from schemas.kafka_config import bootstrap_servers, producer_config
from schemas.settings import Settings
from schemas.topics import TopicNames
from streams.publication import (
    BatchPublishError,
    Delivery,
    Outgoing,
    PublisherClosedError,
    PublisherOptions,
    PublishError,
    topics_by_kind,
)

_LOG = logging.getLogger("modq.publisher")


# --- the librdkafka shell --------------------------------------------------------------------

Result: TypeAlias = Delivery | PublishError
ReportCallback: TypeAlias = Callable[[Any, Any], None]


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
            self._reports[index] = delivery_failure(self._outs[index], err, self._hint)
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


INLINE_POLL_EVERY = 512
"""publish_many serves ready reports itself every this many records (see Engine)."""
