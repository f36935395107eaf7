"""The recorder: reads a prefix's submission, decision, DLQ and visualization topics into a
:class:`~chaos.history.History` (the I/O shell around the pure checker).

One confluent-kafka consumer is *assigned* every partition from the beginning (no group, no
commits, ``isolation.level=read_committed``), so it sees exactly what a read-committed forum
back end would see, and it reads incrementally: call :meth:`HistoryRecorder.read` or one of
the deadline-bounded waits as often as needed.

Waiting, always with a deadline and never on a fixed sleep:

- :meth:`HistoryRecorder.wait_for_outcomes` — until every given submission has a decision or
  a dead letter (or a custom condition holds);
- :meth:`HistoryRecorder.wait_quiescent` — until the workers' consumer groups have committed
  to the end of the submission topics and the recorder has read the output topics to their
  end. At-least-once workers commit only after their outputs are acknowledged, and
  exactly-once workers commit offsets in the transaction that publishes them, so a history
  read after that point holds every output (including late duplicates).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, KafkaError
from confluent_kafka import TopicPartition as KafkaTP
from confluent_kafka.admin import AdminClient

from chaos.history import (
    DeadLetter,
    DecidedRecord,
    History,
    Position,
    SubmittedRecord,
    VisualizationRecordSeen,
    position_id,
)
from schemas.codec import decode_decision, decode_submission
from schemas.dlq import DeadLetterContext
from schemas.errors import ContractError
from schemas.queues import QueueClass
from schemas.topics import TopicNames

POLL_BATCH = 2000
POLL_TIMEOUT_S = 0.2


def class_group(names: TopicNames, queue_class: QueueClass) -> str:
    """The consumer group of a queue class's workers (``streams.session.group_id``)."""
    return f"{names.prefix}modq.{queue_class.value}"


class RecorderTimeoutError(TimeoutError):
    """A wait passed its deadline; the history read so far is attached."""

    def __init__(self, what: str, history: History) -> None:
        super().__init__(what)
        self.history = history


class HistoryRecorder:
    """Reads one topic prefix into a history. Context manager; used from one thread."""

    def __init__(self, bootstrap: str, names: TopicNames, *, visualization: bool = True) -> None:
        self._bootstrap = bootstrap
        self._names = names
        self._topics = [*names.submission_topics(), names.decisions, names.dlq]
        if visualization:
            self._topics.append(names.visualization)
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"chaos-recorder-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 50,
            }
        )
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._partitions: list[KafkaTP] = []
        self.stored: list[SubmittedRecord] = []
        self.decided: list[DecidedRecord] = []
        self.dead_letters: list[DeadLetter] = []
        self.visualization: list[VisualizationRecordSeen] = []
        self.decided_ids: set[str] = set()
        self.dead_sources: set[Position] = set()
        self.malformed: list[str] = []
        """Output records the recorder could not parse (a finding in itself)."""

    def __enter__(self) -> HistoryRecorder:
        metadata = self._consumer.list_topics(timeout=10)
        for topic in self._topics:
            for partition in sorted(metadata.topics[topic].partitions):
                self._partitions.append(KafkaTP(topic, partition, OFFSET_BEGINNING))
        self._consumer.assign(self._partitions)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._consumer.close()

    # --- reading --------------------------------------------------------------------------

    def read(self, timeout_s: float = POLL_TIMEOUT_S) -> int:
        """Read what is available now (waiting at most ``timeout_s`` for the first batch)."""
        total = 0
        while True:
            batch = self._consumer.consume(POLL_BATCH, timeout_s if total == 0 else 0)
            for msg in batch:
                error = msg.error()
                if error is None:
                    self._take(msg)
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"recorder: {error}")
            total += len(batch)
            if len(batch) < POLL_BATCH:
                return total

    def _take(self, msg: Any) -> None:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        key = (msg.key() or b"").decode("utf-8", "replace")
        value = msg.value()
        if topic == self._names.decisions:
            try:
                d = decode_decision(value)
            except ContractError as exc:
                self.malformed.append(f"decision {partition}/{offset}: {exc}")
                return
            src = d.source
            self.decided.append(
                DecidedRecord(
                    d.submission_id,
                    key,
                    d.verdict.value,
                    Position(src.topic, src.partition, src.offset),
                    d.worker_id,
                    partition,
                    offset,
                    d.reasons,
                )
            )
            self.decided_ids.add(d.submission_id)
        elif topic == self._names.dlq:
            try:
                ctx = DeadLetterContext.from_headers(msg.headers())
            except ContractError as exc:
                self.malformed.append(f"dead letter {partition}/{offset}: {exc}")
                return
            origin = Position(ctx.source.topic, ctx.source.partition, ctx.source.offset)
            self.dead_letters.append(
                DeadLetter(key, origin, ctx.error_type.value, ctx.worker_id, partition, offset)
            )
            self.dead_sources.add(origin)
        elif topic == self._names.visualization:
            text = None if value is None else value.decode("utf-8", "replace")
            self.visualization.append(VisualizationRecordSeen(key, offset, text))
        else:
            self.stored.append(self._submitted(topic, partition, offset, key, value))

    def _submitted(
        self, topic: str, partition: int, offset: int, key: str, value: bytes | None
    ) -> SubmittedRecord:
        position = Position(topic, partition, offset)
        kind = self._names.kind_of_topic(topic)
        try:
            s = decode_submission(value, max_bytes=2**31, kind=kind)
        except ContractError:
            return SubmittedRecord(position_id(position), key, None, *position, None)
        body = s.body if s.kind == "private_message" else None
        return SubmittedRecord(s.id, key, s.seq, *position, s.kind, body)

    # --- history --------------------------------------------------------------------------

    def history(self, submitted: Iterable[SubmittedRecord] | None = None) -> History:
        """The history so far. ``submitted``: the publisher's log (ground truth, enables the
        ``lost`` count); without it, the records read back from the submission topics."""
        stored = tuple(self.stored)
        return History(
            submitted=tuple(submitted) if submitted is not None else stored,
            decided=tuple(self.decided),
            dead_letters=tuple(self.dead_letters),
            visualization=tuple(self.visualization),
            stored=frozenset(s.position for s in stored) if submitted is not None else None,
        )

    def resolved(self, record: SubmittedRecord) -> bool:
        """Whether ``record`` has a decision (by id) or a dead letter (by position)."""
        return record.id in self.decided_ids or record.position in self.dead_sources

    # --- waiting --------------------------------------------------------------------------

    def wait_for_outcomes(
        self,
        expected: Collection[SubmittedRecord],
        deadline_s: float,
        *,
        until: Callable[[HistoryRecorder], bool] | None = None,
    ) -> None:
        """Read until every ``expected`` record is resolved (or ``until(self)`` holds).

        Raises :class:`RecorderTimeoutError` (with the history so far) after ``deadline_s``.
        """
        end = time.monotonic() + deadline_s
        pending = list(expected)
        while True:
            self.read()
            pending = [r for r in pending if not self.resolved(r)]
            if until(self) if until is not None else not pending:
                return
            if time.monotonic() > end:
                raise RecorderTimeoutError(
                    f"{len(pending)} of {len(expected)} records still without an outcome "
                    f"after {deadline_s:.0f} s (e.g. {[r.id for r in pending[:3]]})",
                    self.history(expected),
                )

    def wait_quiescent(
        self,
        classes: Collection[QueueClass],
        deadline_s: float,
        *,
        submitted: Collection[SubmittedRecord] = (),
    ) -> History:
        """Wait until the groups of ``classes`` committed to the end of their topics and the
        recorder has read every topic to its end; return the history (with ``submitted`` as
        ground truth when given). Raises :class:`RecorderTimeoutError` after ``deadline_s``."""
        end = time.monotonic() + deadline_s
        while True:
            self.read()
            if self._groups_done(classes) and self._read_to_end():
                return self.history(submitted or None)
            if time.monotonic() > end:
                raise RecorderTimeoutError(
                    f"not quiescent after {deadline_s:.0f} s", self.history(submitted or None)
                )

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermark of each partition of ``topic``."""
        ends: dict[int, int] = {}
        for tp in self._partitions:
            if tp.topic == topic:
                _low, high = self._consumer.get_watermark_offsets(
                    KafkaTP(topic, tp.partition), timeout=5, cached=False
                )
                ends[tp.partition] = high
        return ends

    def _groups_done(self, classes: Collection[QueueClass]) -> bool:
        topic_of = {
            QueueClass.GLOBAL_TOPICS: self._names.submissions_topics,
            QueueClass.TOPIC_POSTS: self._names.submissions_posts,
            QueueClass.PRIVATE_MESSAGES: self._names.submissions_private_messages,
        }
        for queue_class in classes:
            topic = topic_of[queue_class]
            ends = self.end_offsets(topic)
            tps = [KafkaTP(topic, p) for p in ends]
            request = ConsumerGroupTopicPartitions(class_group(self._names, queue_class), tps)
            future = self._admin.list_consumer_group_offsets([request])[request.group_id]
            committed = {
                tp.partition: tp.offset for tp in future.result(timeout=10).topic_partitions
            }
            if any(committed.get(p, -1) < end for p, end in ends.items() if end > 0):
                return False
        return True

    def _read_to_end(self) -> bool:
        """Whether every assigned partition's position reached its high watermark."""
        positions = self._consumer.position(
            [KafkaTP(tp.topic, tp.partition) for tp in self._partitions]
        )
        for tp in positions:
            _low, high = self._consumer.get_watermark_offsets(
                KafkaTP(tp.topic, tp.partition), timeout=5, cached=False
            )
            if high > 0 and tp.offset < high:
                return False
        return True
