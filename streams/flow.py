"""Pure pieces of a class session: names, the unit of work, and the backpressure rule.

No Kafka client, no clock, no asyncio: :mod:`streams.session` does the I/O around these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from schemas.queues import QueueClass
from schemas.topics import TopicNames
from streams.kafka_io import TP, Record

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
    """How many consumed, uncommitted records a session holds at most by default."""
    return max(max_in_flight_keys * 8, 1000)


@dataclass(frozen=True, slots=True)
class Work:
    """A consumed record and the ownership generation it was consumed under."""

    record: Record
    generation: int


class FlowAction(Enum):
    """What :meth:`Backpressure.update` asks the consumer to do."""

    NONE = "none"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(slots=True)
class Backpressure:
    """Bounded memory: the records a session holds (consumed, not committed) stay ≤ ``limit``.

    Each ``consume`` asks for at most :meth:`batch_size` records (the room left, and at least
    one so that rebalance callbacks are still served). At the limit every owned partition is
    paused; once the held records fall to half the limit they are resumed. A partition
    assigned while paused is paused before the next consume (:meth:`to_pause`), so the bound
    is exceeded by at most one record per partition assigned during a pause.

    Why resume only at half: librdkafka's pause drops the partition's pre-fetched records,
    and after a resume the first fetch can take up to about a second, so each pause costs a
    refill; the hysteresis keeps half the bound's records to work on meanwhile.
    """

    limit: int
    batch: int = CONSUME_BATCH
    paused: bool = False
    paused_tps: set[TP] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")

    def batch_size(self, buffered: int) -> int:
        """How many records the next ``consume`` may return."""
        return max(1, min(self.batch, self.limit - buffered))

    def update(self, buffered: int) -> FlowAction:
        """Pause at the limit, resume at half of it (hysteresis), else nothing."""
        if not self.paused and buffered >= self.limit:
            self.paused = True
            return FlowAction.PAUSE
        if self.paused and buffered <= self.limit // 2:
            self.paused = False
            self.paused_tps.clear()
            return FlowAction.RESUME
        return FlowAction.NONE

    def forget(self, tps: list[TP]) -> None:
        """``tps`` were revoked: if assigned again they start unpaused in the client."""
        self.paused_tps.difference_update(tps)

    def to_pause(self, owned: list[TP]) -> list[TP]:
        """While paused: owned partitions not paused yet (marks them paused)."""
        if not self.paused:
            return []
        self.paused_tps.intersection_update(owned)
        fresh = [tp for tp in owned if tp not in self.paused_tps]
        self.paused_tps.update(fresh)
        return fresh
