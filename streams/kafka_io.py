"""The data plane's adapter to confluent-kafka (untyped; quarantined in this module).

Typed wrappers over librdkafka's Consumer and Producer with the contract's settings
(:mod:`schemas.kafka_config`), and one small exception type that carries librdkafka's
classification as attributes (retriable, fatal, abortable), so callers decide by attribute,
never by message text.

Threading: a :class:`DataConsumer` must be used from one thread at a time (the worker gives
it a dedicated thread); a :class:`DataProducer` is thread-safe.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from schemas.kafka_config import consumer_config, producer_config
from schemas.settings import Settings

TP = tuple[str, int]
Headers = list[tuple[str, bytes]]
_LOG = logging.getLogger("modq.kafka")


class KafkaIOError(Exception):
    """A Kafka operation failed. Attributes say what to do; ``code`` is librdkafka's name."""

    def __init__(
        self,
        operation: str,
        code: str,
        message: str,
        *,
        retriable: bool = False,
        fatal: bool = False,
        abortable: bool = False,
    ) -> None:
        super().__init__(f"{operation} failed: {code}: {message}")
        self.operation = operation
        self.code = code
        self.retriable = retriable
        self.fatal = fatal
        self.abortable = abortable

    @property
    def fenced(self) -> bool:
        """This client lost its right to commit (a newer instance or generation took over)."""
        return self.code in _FENCING_CODES


_FENCING_CODES = frozenset(
    {
        "_FENCED",
        "PRODUCER_FENCED",
        "INVALID_PRODUCER_EPOCH",
        "UNKNOWN_MEMBER_ID",
        "ILLEGAL_GENERATION",
        "FENCED_INSTANCE_ID",
        "STALE_MEMBER_EPOCH",
        "FENCED_MEMBER_EPOCH",
        "_ASSIGNMENT_LOST",
    }
)


def _wrap(operation: str, exc: KafkaException) -> KafkaIOError:
    err = exc.args[0]
    if not isinstance(err, KafkaError):
        return KafkaIOError(operation, "UNKNOWN", str(err))
    return KafkaIOError(
        operation,
        err.name(),
        err.str(),
        retriable=bool(err.retriable()),
        fatal=bool(err.fatal()),
        abortable=bool(err.txn_requires_abort()),
    )


class Record(NamedTuple):
    """One consumed record, decoupled from librdkafka's Message (a named tuple: one is
    built per consumed record, in C)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @property
    def tp(self) -> TP:
        """The record's topic-partition."""
        return (self.topic, self.partition)


def _record(msg: Any) -> Record:
    ts_type, ts = msg.timestamp()
    raw_headers = msg.headers()
    return Record(
        msg.topic(),
        msg.partition(),
        msg.offset(),
        msg.key(),
        msg.value(),
        tuple([(k, v or b"") for k, v in raw_headers]) if raw_headers else (),
        int(ts) if ts_type != 0 else 0,
    )


RebalanceCallback = Callable[[list[TP]], None]


class DataConsumer:
    """A manually committing group member. Rebalance callbacks run inside :meth:`consume`."""

    def __init__(
        self,
        settings: Settings,
        *,
        group_id: str,
        client_id: str,
        on_assign: RebalanceCallback,
        on_revoke: RebalanceCallback,
        on_lost: RebalanceCallback,
        extra: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        config: dict[str, Any] = dict(consumer_config(settings, group_id=group_id))
        config.update(
            {
                "client.id": client_id,
                "error_cb": self._on_error,
                "logger": _LOG,
                # bounded prefetch: librdkafka's queue per partition stays small
                "queued.max.messages.kbytes": 8192,
                "fetch.wait.max.ms": 50,
                "fetch.queue.backoff.ms": 10,
                "fetch.error.backoff.ms": 50,
            }
        )
        config.update(extra or {})
        self._consumer = Consumer(config)
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost
        self.errors: list[KafkaIOError] = []
        self.closed = False

    def _on_error(self, err: Any) -> None:
        _LOG.warning("consumer error: %s", err)
        if err.fatal():
            self.errors.append(KafkaIOError("consumer", err.name(), err.str(), fatal=True))

    def subscribe(self, topics: Sequence[str]) -> None:
        """Join the group for ``topics``."""
        self._consumer.subscribe(
            list(topics),
            on_assign=lambda _c, parts: self._on_assign([(p.topic, p.partition) for p in parts]),
            on_revoke=lambda _c, parts: self._on_revoke([(p.topic, p.partition) for p in parts]),
            on_lost=lambda _c, parts: self._on_lost([(p.topic, p.partition) for p in parts]),
        )

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` records (a batch; never one poll per message).

        Returns as soon as any record is there, with everything else already fetched (up to
        ``max_records``), or after ``timeout`` with none. librdkafka's ``consume(n, t)``
        alone waits for ``n`` records or the full timeout, which added up to ``timeout`` of
        latency to every record whenever traffic ran below ``n`` per ``timeout``."""
        msgs = self._consumer.consume(num_messages=max_records, timeout=0)
        if not msgs:
            first = self._consumer.poll(timeout)
            if first is None:
                return []
            msgs = [first]
            if max_records > 1:
                msgs.extend(self._consumer.consume(num_messages=max_records - 1, timeout=0))
        out: list[Record] = []
        for msg in msgs:
            err = msg.error()
            if err is None:
                out.append(_record(msg))
            elif err.code() != KafkaError._PARTITION_EOF:
                _LOG.warning("consume error: %s", err)
                if err.fatal():
                    raise KafkaIOError("consume", err.name(), err.str(), fatal=True)
        return out

    def commit(self, offsets: Mapping[TP, int], metadata: Mapping[TP, str] | None = None) -> None:
        """Synchronously commit ``offsets`` (next offset to read, per partition), each with
        its optional ``metadata`` string."""
        if not offsets:
            return
        meta = metadata or {}
        try:
            self._consumer.commit(
                offsets=[
                    TopicPartition(t, p, o, metadata=meta[(t, p)])
                    if meta.get((t, p))
                    else TopicPartition(t, p, o)
                    for (t, p), o in offsets.items()
                ],
                asynchronous=False,
            )
        except KafkaException as exc:
            raise _wrap("commit", exc) from None

    def committed(self, tps: Sequence[TP], timeout: float = 10.0) -> dict[TP, tuple[int, str]]:
        """The group's committed (offset, metadata) of ``tps`` (missing when none)."""
        parts = self._consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=timeout)
        return {
            (p.topic, p.partition): (p.offset, p.metadata or "") for p in parts if p.offset >= 0
        }

    def seek(self, tp: TP, offset: int) -> None:
        """Make the next fetch of ``tp`` start at ``offset``."""
        self._consumer.seek(TopicPartition(tp[0], tp[1], offset))

    def wake_fetchers(self, tps: Sequence[TP], timeout: float = 0.5) -> None:
        """Get fetching of ``tps`` going again at once after a rebalance.

        librdkafka pauses every assigned partition while a rebalance callback runs and
        resumes them afterwards, but the resume only takes effect when the leader's broker
        thread next wakes up, which it does at least once a second: so the partitions a
        member *kept* stopped flowing for up to ~1 s after every rebalance (measured: 0.9 to
        1.0 s with nothing fetched, then the backlog at once). Any request to the leader wakes
        its thread; a watermark query (ListOffsets) is the cheapest. One per partition, so
        every leader is reached. It is only a nudge: the first failure (a broker that does
        not answer within ``timeout``, e.g. during an outage) ends it, so an outage holds the
        consumer thread for one ``timeout`` at most.
        """
        for topic, partition in tps:
            try:
                self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout, cached=False
                )
            except KafkaException:
                return

    def pause(self, tps: Sequence[TP]) -> None:
        """Stop fetching ``tps`` (backpressure) without leaving the group."""
        if tps:
            self._consumer.pause([TopicPartition(t, p) for t, p in tps])

    def resume(self, tps: Sequence[TP]) -> None:
        """Fetch ``tps`` again."""
        if tps:
            self._consumer.resume([TopicPartition(t, p) for t, p in tps])

    def assignment(self) -> list[TP]:
        """Partitions currently assigned to this member."""
        return [(p.topic, p.partition) for p in self._consumer.assignment()]

    def group_metadata(self) -> Any:
        """Opaque group metadata for ``send_offsets_to_transaction`` (zombie fencing)."""
        return self._consumer.consumer_group_metadata()

    def close(self) -> None:
        """Leave the group (revocation callbacks run first). Idempotent."""
        if not self.closed:
            self.closed = True
            self._consumer.close()


def _delivery_error(err: Any) -> KafkaIOError:
    return KafkaIOError("deliver", err.name(), err.str(), fatal=bool(err.fatal()))


def _report_failure(on_failed: Callable[[KafkaIOError], None], err: Any, _msg: Any) -> None:
    if err is not None:  # with delivery.report.only.error, librdkafka reports nothing else
        on_failed(_delivery_error(err))


DeliveryCallback = Callable[[KafkaIOError | None, str, int, int], None]
"""Called with (error or None, topic, partition, offset) once a message is acknowledged."""


class DataProducer:
    """An idempotent (optionally transactional) producer with the contract's settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        transactional_id: str | None = None,
        extra: Mapping[str, str | int | float | bool] | None = None,
        on_failed_delivery: Callable[[KafkaIOError], None] | None = None,
    ) -> None:
        """``on_failed_delivery``: report *only* failed deliveries, all of them to this
        callback (``delivery.report.only.error``); a successful delivery then costs no
        Python at all, and per-message ``on_delivery`` callbacks also see failures only."""
        config: dict[str, Any] = dict(producer_config(settings, transactional_id=transactional_id))
        config.update({"client.id": client_id, "logger": _LOG, "error_cb": self._on_error})
        if on_failed_delivery is not None:
            config["delivery.report.only.error"] = True
            config["on_delivery"] = functools.partial(_report_failure, on_failed_delivery)
        if transactional_id is not None:
            config["transaction.timeout.ms"] = 60_000
        config.update(extra or {})
        self._producer = Producer(config)
        self.transactional = transactional_id is not None
        self.fatal_error: KafkaIOError | None = None

    def _on_error(self, err: Any) -> None:
        _LOG.warning("producer error: %s", err)
        if err.fatal():
            self.fatal_error = KafkaIOError("producer", err.name(), err.str(), fatal=True)

    def produce(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue one message; ``on_delivery`` runs in the thread that calls :meth:`poll`.

        Without ``on_delivery`` the message has no Python work left after this call (or
        goes to the producer's ``on_failed_delivery``, if it has one, should it fail).
        """
        report: Callable[[Any, Any], None] | None = None
        if on_delivery is not None:
            callback = on_delivery

            def report(err: Any, msg: Any) -> None:
                if err is not None:
                    callback(_delivery_error(err), msg.topic(), -1, -1)
                else:
                    callback(None, msg.topic(), msg.partition(), msg.offset())

        self._send(topic, key, value, headers, report)

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        report: Callable[[Any, Any], None] | None,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, key=key, value=value, headers=cast(Any, headers), on_delivery=report
                )
                return
            except BufferError:
                # The local queue is full (bounded memory): serve callbacks, then retry.
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise _wrap("produce", exc) from None

    def poll(self, timeout: float) -> int:
        """Serve delivery callbacks for up to ``timeout`` seconds."""
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float) -> int:
        """Wait for outstanding messages; returns how many are still undelivered."""
        return int(self._producer.flush(timeout))

    def __len__(self) -> int:
        return len(self._producer)

    # --- transactions -------------------------------------------------------------------

    def _txn(self, operation: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except KafkaException as exc:
            raise _wrap(operation, exc) from None

    def init_transactions(self, timeout: float = 30.0) -> None:
        """Register the transactional id, fencing any older instance with the same id."""
        self._txn("init_transactions", lambda: self._producer.init_transactions(timeout))

    def begin(self) -> None:
        """Open a transaction."""
        self._txn("begin_transaction", self._producer.begin_transaction)

    def send_offsets(self, offsets: Mapping[TP, int], group_metadata: Any, timeout: float) -> None:
        """Add consumed offsets to the open transaction (committed atomically with it)."""
        parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        self._txn(
            "send_offsets_to_transaction",
            lambda: self._producer.send_offsets_to_transaction(parts, group_metadata, timeout),
        )

    def commit(self, timeout: float) -> None:
        """Commit the open transaction."""
        self._txn("commit_transaction", lambda: self._producer.commit_transaction(timeout))

    def abort(self, timeout: float) -> None:
        """Abort the open transaction."""
        self._txn("abort_transaction", lambda: self._producer.abort_transaction(timeout))
