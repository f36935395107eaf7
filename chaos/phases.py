"""Blocking steps the later slow scenarios are built from (run them with ``asyncio.to_thread``).

- :func:`publish_checked`: publish a plan with the logging publisher, after checking that every
  record the harness means to be valid decodes (a harness bug must not pass for a worker's);
- :func:`wait_outcomes` / :func:`quiescent_history`: wait until records are resolved, and until
  the workers' groups committed to the end (then the history is complete);
- :func:`timings_of`, :func:`throughput`: Kafka timestamps and the moderation throughput of a
  phase; :func:`end_offset`, :func:`publish_marker`: the visualization topic's end and a marker
  record on it; :func:`load_average`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTP

from chaos.history import History, SubmittedRecord
from chaos.recorder import HistoryRecorder
from chaos.scenarios import Timings, first_decisions, read_timings
from chaos.workload import LoggingPublisher, PlannedRecord
from schemas.codec import decode_submission, encode
from schemas.kafka_config import producer_config
from schemas.queues import QueueClass
from schemas.settings import Settings
from schemas.topics import TopicNames
from schemas.visualization import KeyQueueView, visualization_key


def names_of(s: Settings) -> TopicNames:
    return TopicNames.from_prefix(s.topic_prefix)


def publish_checked(
    s: Settings, plan: Sequence[PlannedRecord], rate: float | None = None
) -> list[SubmittedRecord]:
    """Publish ``plan`` (paced to ``rate``) and return the acknowledged log. A record planned
    as valid must decode first (raises ``ContractError``: e.g. an id over 64 characters)."""
    for record in plan:
        if record.kind is not None:
            decode_submission(record.value, max_bytes=s.max_record_bytes)
    with LoggingPublisher(s) as publisher:
        return publisher.publish(plan, rate_per_s=rate, flush_timeout_s=300)


def wait_outcomes(s: Settings, log: Sequence[SubmittedRecord], deadline_s: float = 600) -> None:
    """Until every record of ``log`` has a decision or a dead letter."""
    with HistoryRecorder(s.kafka_bootstrap_servers or "", names_of(s), visualization=False) as r:
        r.wait_for_outcomes(log, deadline_s)


def quiescent_history(s: Settings, log: Sequence[SubmittedRecord]) -> History:
    """Every outcome of ``log``, read after the groups committed to the end of every topic."""
    with HistoryRecorder(s.kafka_bootstrap_servers or "", names_of(s)) as recorder:
        recorder.wait_for_outcomes(log, 600)
        history = recorder.wait_quiescent(list(QueueClass), 120, submitted=log)
        if recorder.malformed:
            raise AssertionError(f"malformed output records: {recorder.malformed[:3]}")
        return history


def timings_of(s: Settings) -> Timings:
    return read_timings(s.kafka_bootstrap_servers or "", names_of(s))


def throughput(timings: Timings, log: Sequence[SubmittedRecord]) -> tuple[float, float]:
    """(records/s, seconds): ``log``'s valid records over the time from its first submission
    to its last first decision (Kafka timestamps)."""
    ids = {r.id for r in log if r.valid}
    first = first_decisions(timings.decisions)
    start = min(timings.submitted_ms[r.position] for r in log)
    end = max(first[i].at_ms for i in ids)
    seconds = (end - start) / 1000
    return len(ids) / seconds, seconds


def end_offset(s: Settings, topic: str) -> int:
    """The high watermark of ``topic``'s partition 0."""
    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap_servers, "group.id": "chaos-eo"})
    try:
        return int(consumer.get_watermark_offsets(KafkaTP(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def publish_marker(s: Settings, queue: str) -> None:
    """A key-queue view named ``queue`` on the visualization topic. No other process writes
    it, and the topic has one partition: a reader that shows it has read all before it."""
    now = datetime.now(UTC)
    view = KeyQueueView(
        queue=queue,
        queue_class=QueueClass.TOPIC_POSTS,
        pending=1,
        oldest_pending_at=now,
        updated_at=now,
    )
    producer = Producer(dict(producer_config(s)))
    producer.produce(
        names_of(s).visualization, key=visualization_key(view).encode(), value=encode(view)
    )
    if producer.flush(15):
        raise RuntimeError("marker not acknowledged")


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
