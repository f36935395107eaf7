"""Pure pieces of a class session: names, the unit of work, and the backpressure rule.

No Kafka client, no clock, no asyncio: :mod:`streams.session` does the I/O around these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from schemas.queues import QueueClass
from schemas.topics import TopicNames
from streams.kafka_io import Record

CONSUME_BATCH = 500
"""The most records one ``consume`` call asks for."""


def group_id(topics: TopicNames, queue_class: QueueClass) -> str:
    """The consumer group that serves ``queue_class`` (shared by every worker of that class)."""
    return f"{topics.prefix}modq.{queue_class.value}"


def class_topic(topics: TopicNames, queue_class: QueueClass) -> str:
    """The submission topic a queue class consumes."""
    return {
        QueueClass.GLOBAL_TOPICS: topics.submissions_topics,
        QueueClass.TOPIC_POSTS: topics.submissions_posts,
        QueueClass.PRIVATE_MESSAGES: topics.submissions_private_messages,
    }[queue_class]


def default_max_buffered(max_in_flight_keys: int) -> int:
    """How many consumed, uncommitted records a session holds at most by default.

    At least 5,000 records (~5 MiB of ~1 KiB records: small, and deep enough that draining
    a backlog never waits on a fetch round trip); 64 per key in flight up to 32,768 records;
    never fewer than 16 per key in flight. Records count until their partition's finished
    prefix is committed, so with many keys in flight a shallow bound fills with finished
    records waiting behind a slow key and the lanes run out of ready keys (``python -m
    bench.worker``, 256 keys in flight, 20 ms policy: 77 % of the concurrency bound at 16
    per key, 84 % at 64; docs/bench/worker.md).
    """
    per_key = min(max_in_flight_keys * 64, 32_768)
    return max(max_in_flight_keys * 16, per_key, 5000)


class Work(NamedTuple):
    """A consumed record and the ownership generation it was consumed under.

    The per-record value types of the hot path are named tuples: built in C, about a third
    of what a frozen dataclass costs (which sets every field through ``object.__setattr__``).
    """

    record: Record
    generation: int


@dataclass(slots=True)
class Backpressure:
    """Bounded memory: the records a session holds (consumed, not committed) stay ≤ ``limit``.

    Each ``consume`` asks for at most :meth:`batch_size` records: the room left under the
    bound. With no room the session does not consume at all until finished records are
    committed; librdkafka's own prefetch queue is bounded separately
    (``queued.max.messages.kbytes``), so memory stays flat whatever the backlog.

    Why not ``pause()``/``resume()``: librdkafka drops a paused partition's prefetched
    records, and the first fetch after a resume took ~0.8 s here, which capped a worker at
    ~1,000 records/s on a backlog. Holding off ``consume`` keeps the prefetch warm. The cost:
    rebalance callbacks (served inside ``consume``) wait while the bound is full — records
    keep finishing meanwhile, so that wait is short.
    """

    limit: int
    batch: int = CONSUME_BATCH
    holding: bool = False
    holds: int = 0
    """How many times the bound was reached (consumption held off)."""

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")

    def batch_size(self, buffered: int) -> int:
        """How many records the next ``consume`` may return (0: do not consume now)."""
        return max(0, min(self.batch, self.limit - buffered))

    def update(self, buffered: int) -> bool:
        """Whether to hold off consuming; counts each time the bound is reached."""
        full = buffered >= self.limit
        if full and not self.holding:
            self.holds += 1
        self.holding = full
        return full
