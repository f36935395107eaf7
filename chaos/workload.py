"""Reproducible workloads for the scenarios, and a publisher that logs every acknowledged record.

:func:`mixed_workload` plans submissions over a fixed set of keys (posts over forum topics,
private messages over user pairs, new topics each with its own key), every one with a unique
``id`` and a per-key ``seq`` that increases in publish order. :func:`poison_workload` plans
records that must end in the DLQ. :class:`LoggingPublisher` sends planned records with the
contract's producer settings (idempotent, ``acks=all``, murmur2) and returns, from the
delivery reports, the :class:`~chaos.history.SubmittedRecord` log the checker takes as
ground truth. It uses confluent-kafka directly, not the publisher SDK, so the harness does
not share a bug with what it checks.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Producer

from chaos.history import Position, SubmittedRecord, position_id
from schemas.kafka_config import producer_config
from schemas.queues import pair_key
from schemas.settings import Settings
from schemas.topics import TopicNames

_SUBMITTED_AT = datetime(2025, 1, 1, tzinfo=UTC).isoformat()


@dataclass(frozen=True, slots=True)
class PlannedRecord:
    """One record to publish: where, what, and what the checker should know of it.

    ``kind`` is ``None`` for poison (it must be dead-lettered); ``id`` of a poison record is
    replaced by its position id once its offset is known.
    """

    kind_topic: str
    key: str
    value: bytes | None
    id: str
    seq: int | None
    kind: str | None
    private_body: str | None = None


def _value(fields: dict[str, Any]) -> bytes:
    return json.dumps({**fields, "submitted_at": _SUBMITTED_AT}).encode()


def post(run: str, topic_id: str, seq: int, body: str | None = None) -> PlannedRecord:
    """A valid post in forum topic ``topic_id`` with per-key ``seq``."""
    sid = f"{run}-p-{topic_id}-{seq}"
    text = body if body is not None else f"post {seq} in {topic_id}, nothing to see here"
    fields = {"id": sid, "kind": "post", "topic_id": topic_id, "author_id": "u1", "seq": seq}
    return PlannedRecord("post", topic_id, _value({**fields, "body": text}), sid, seq, "post")


def private_message(run: str, a: str, b: str, seq: int) -> PlannedRecord:
    """A valid private message from ``a`` to ``b``; its body is unique and searchable."""
    sid = f"{run}-m-{a}-{b}-{seq}"
    body = f"secret-{sid}-between {a} and {b}"
    fields = {"id": sid, "kind": "private_message", "sender_id": a, "recipient_id": b}
    value = _value({**fields, "body": body, "seq": seq})
    return PlannedRecord(
        "private_message", pair_key(a, b), value, sid, seq, "private_message", body
    )


def new_topic(run: str, topic_id: str) -> PlannedRecord:
    """A valid new-topic submission (its own key, ``seq`` 0)."""
    sid = f"{run}-t-{topic_id}"
    fields = {"id": sid, "kind": "topic", "topic_id": topic_id, "author_id": "u2", "seq": 0}
    value = _value({**fields, "title": f"topic {topic_id}", "body": "hello"})
    return PlannedRecord("topic", topic_id, value, sid, 0, "topic")


def mixed_workload(
    run: str,
    *,
    total: int = 2000,
    forum_topics: int = 100,
    pairs: int = 50,
    new_topics: int = 200,
    pm_share: float = 0.3,
    seed: int = 8,
) -> list[PlannedRecord]:
    """``total`` submissions: ``new_topics`` new topics, the rest posts and private messages
    (``pm_share`` of them PMs), keys drawn at random (seeded), ``seq`` per key in order."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not security
    seqs: dict[str, int] = {}
    topic_ids = [f"{run}-f{i}" for i in range(forum_topics)]
    user_pairs = [(f"{run}-ua{i}", f"{run}-ub{i}") for i in range(pairs)]
    plan: list[PlannedRecord] = []
    remaining_new = new_topics
    for i in range(total):
        left = total - i
        if remaining_new and rng.random() < remaining_new / left:
            plan.append(new_topic(run, f"{run}-n{new_topics - remaining_new}"))
            remaining_new -= 1
        elif rng.random() < pm_share:
            a, b = rng.choice(user_pairs)
            key = pair_key(a, b)
            seqs[key] = seqs.get(key, -1) + 1
            plan.append(private_message(run, a, b, seqs[key]))
        else:
            topic_id = rng.choice(topic_ids)
            seqs[topic_id] = seqs.get(topic_id, -1) + 1
            plan.append(post(run, topic_id, seqs[topic_id]))
    return plan


def poison_workload(run: str, *, oversize_bytes: int) -> list[PlannedRecord]:
    """Records every worker must dead-letter: not JSON, not UTF-8, a null value, larger than
    ``oversize_bytes``, schema violations, and a post on the private-message topic."""
    valid_pm = json.loads(private_message(run, "x1", "x2", 0).value or b"{}")
    bad: list[tuple[str, str, bytes | None]] = [
        ("post", "poison-a", b"{not json"),
        ("post", "poison-b", b'{"id": "\xff\xfe", "kind": "post"}'),
        ("post", "poison-c", None),
        ("post", "poison-d", b"[1, 2, 3]"),
        ("post", "poison-e", _value({"id": f"{run}-big", "kind": "post", "topic_id": "t",
                                     "author_id": "u", "body": "x" * oversize_bytes})),
        ("post", "poison-f", _value({"id": f"{run}-nobody", "kind": "post", "topic_id": "t",
                                     "author_id": "u"})),
        ("topic", "poison-g", _value({"id": f"{run}-badkind", "kind": "poll"})),
        ("private_message", "x1:x1",
         _value({**valid_pm, "id": f"{run}-self", "recipient_id": "x1", "sender_id": "x1"})),
        ("private_message", "poison-h", post(run, "poison-h", 0).value),
    ]  # fmt: skip
    return [PlannedRecord(kind, key, value, "", None, None) for kind, key, value in bad]


class PublishFailedError(RuntimeError):
    """A record was not acknowledged; the publish log would be incomplete."""


class LoggingPublisher:
    """Publishes planned records and logs each acknowledgement as a ``SubmittedRecord``.

    Context manager; :meth:`publish` may be called many times, :attr:`log` grows in
    acknowledgement order. Raises :class:`PublishFailedError` on any delivery error (the harness
    never loses track of what it sent).
    """

    def __init__(self, settings: Settings, *, bootstrap: str | None = None) -> None:
        self._names = TopicNames.from_prefix(settings.topic_prefix)
        config: dict[str, Any] = dict(producer_config(settings, bootstrap=bootstrap))
        config["message.max.bytes"] = 2_000_000
        self._producer = Producer(config)
        self.log: list[SubmittedRecord] = []
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def __enter__(self) -> LoggingPublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._producer.flush(30)

    def publish(
        self,
        plan: Iterable[PlannedRecord],
        *,
        rate_per_s: float | None = None,
        flush_timeout_s: float = 60.0,
    ) -> list[SubmittedRecord]:
        """Send ``plan`` (paced to ``rate_per_s`` when given), wait for every ack, return the
        records acknowledged by this call."""
        start = len(self.log)
        began = time.monotonic()
        for i, planned in enumerate(plan):
            if rate_per_s:
                ahead = i / rate_per_s - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)  # pacing the workload, not synchronisation
            self._send(planned)
        left = self._producer.flush(flush_timeout_s)
        if left or self._errors:
            raise PublishFailedError(f"{left} unacknowledged, errors: {self._errors[:3]}")
        with self._lock:
            return self.log[start:]

    def _send(self, planned: PlannedRecord) -> None:
        topic = self._names.submission_topic(planned.kind_topic)

        def delivered(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                self._errors.append(str(err))
                return
            position = Position(msg.topic(), msg.partition(), msg.offset())
            record = SubmittedRecord(
                id=planned.id if planned.kind is not None else position_id(position),
                key=planned.key,
                seq=planned.seq,
                topic=position.topic,
                partition=position.partition,
                offset=position.offset,
                kind=planned.kind,
                private_body=planned.private_body,
            )
            with self._lock:
                self.log.append(record)

        while True:
            try:
                self._producer.produce(
                    topic, key=planned.key.encode(), value=planned.value, on_delivery=delivered
                )
                break
            except BufferError:
                self._producer.poll(0.1)  # local queue full: serve reports, then retry
        self._producer.poll(0)


def expected_dead(log: Sequence[SubmittedRecord]) -> Iterator[Position]:
    """Positions of the logged records that are poison (must end in the DLQ)."""
    return (r.position for r in log if not r.valid)
