"""The controller's adapter to Kafka (confluent-kafka and aiokafka are untyped: quarantined here).

Three small clients, all built from the settings and :mod:`schemas.kafka_config`:

- :class:`OffsetsReader` (librdkafka ``AdminClient`` + one group-less ``Consumer``, sync, use
  from one thread): log-start/log-end offsets of the class topics, committed offsets of the
  class groups ``{prefix}modq.{class}``, and the timestamps of records at given offsets.
- :class:`ControlMember` (aiokafka, asyncio): membership of the consumer group
  ``{prefix}modq.controllers`` on the single-partition control topic. The member that owns
  partition 0 is the leader (see :mod:`orchestrator.controller.leadership`); it reads the
  control topic from the beginning each time it gains the partition.
- :class:`Publisher` (aiokafka, asyncio): idempotent ``acks=all`` producer for assignments and
  visualization records; murmur2 keys (aiokafka's default partitioner is Java-compatible).

:func:`read_log` reads a compacted topic from the beginning to its end (``modq status``, tests).
Every failure surfaces as :class:`ControllerIOError`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioTP
from aiokafka.abc import ConsumerRebalanceListener
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from orchestrator.controller.measurement import ClassOffsets, PartitionOffsets, Position
from schemas.kafka_config import aiokafka_config, client_config
from schemas.queues import QueueClass
from schemas.settings import Settings

_LOG = logging.getLogger("modq.controller.kafka")

LEADER_SESSION_TIMEOUT_MS = 3000
"""Controller group session timeout: a dead leader is replaced about this long after it dies.
Brokers must allow it (``group.min.session.timeout.ms`` ≤ 3000; Kafka's default is 6000, in
which case the broker's minimum is used instead)."""


class ControllerIOError(RuntimeError):
    """A Kafka request of the controller failed (usually transient: the tick is skipped)."""


class PublishError(ControllerIOError):
    """A record the controller must publish was not acknowledged (the process stops)."""


@dataclass(frozen=True, slots=True)
class ClassSource:
    """Where one queue class's backlog lives: its submission topic and its consumer group."""

    queue_class: QueueClass
    topic: str
    group: str


Record = tuple[bytes | None, bytes | None]
"""(key, value) of a consumed record; ``None`` value is a tombstone."""


def _admin(settings: Settings) -> Any:
    """An AdminClient (librdkafka logs go to Python logging)."""
    return AdminClient(cast(Any, {**client_config(settings), "logger": _LOG}))


def _consumer(settings: Settings, **extra: Any) -> Any:
    """A group-less reading Consumer (it never subscribes or commits)."""
    config: dict[str, Any] = {
        **client_config(settings),
        "group.id": f"modq-controller-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "logger": _LOG,
        **extra,
    }
    return Consumer(cast(Any, config))


class OffsetsReader:
    """Sync offset and timestamp queries (librdkafka). Not thread-safe: one thread at a time."""

    def __init__(self, settings: Settings, sources: Sequence[ClassSource], timeout: float = 5.0):
        self._admin = _admin(settings)
        self._peek: Any = _consumer(
            settings, **{"fetch.wait.max.ms": 10, "max.partition.fetch.bytes": 65536}
        )
        self._sources = tuple(sources)
        self._timeout = timeout
        self._partitions: dict[str, int] = {}

    def close(self) -> None:
        """Release the clients. Idempotent."""
        if self._peek is not None:
            self._peek.close()
            self._peek = None

    def _partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            md = self._admin.list_topics(topic, timeout=self._timeout)
            meta = md.topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise ControllerIOError(f"topic {topic} is missing")
            count = len(meta.partitions)
            self._partitions[topic] = count
        return count

    def snapshot(self) -> dict[QueueClass, ClassOffsets]:
        """Offsets of every class topic partition and its group's committed position."""
        try:
            return self._snapshot()
        except KafkaException as exc:
            raise ControllerIOError(f"offsets: {exc.args[0]}") from None

    def _snapshot(self) -> dict[QueueClass, ClassOffsets]:
        tps = [
            TopicPartition(s.topic, p)
            for s in self._sources
            for p in range(self._partition_count(s.topic))
        ]
        ends = self._list_offsets(tps, cast(Any, OffsetSpec).latest())
        starts = self._list_offsets(tps, cast(Any, OffsetSpec).earliest())
        futures = {
            s.queue_class: self._admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(s.group)], request_timeout=self._timeout
            )[s.group]
            for s in self._sources
        }
        result: dict[QueueClass, ClassOffsets] = {}
        for s in self._sources:
            group = futures[s.queue_class].result(timeout=self._timeout)
            committed = {
                tp.partition: tp.offset
                for tp in group.topic_partitions or []
                if tp.topic == s.topic and tp.offset >= 0
            }
            parts = tuple(
                PartitionOffsets(
                    partition=p,
                    log_start=starts[(s.topic, p)],
                    log_end=ends[(s.topic, p)],
                    committed=committed.get(p),
                )
                for p in range(self._partition_count(s.topic))
            )
            result[s.queue_class] = ClassOffsets(s.queue_class, s.topic, s.group, parts)
        return result

    def _list_offsets(self, tps: list[Any], spec: Any) -> dict[tuple[str, int], int]:
        futures = self._admin.list_offsets({tp: spec for tp in tps}, request_timeout=self._timeout)
        return {
            (tp.topic, tp.partition): int(fut.result(timeout=self._timeout).offset)
            for tp, fut in futures.items()
        }

    def timestamps(
        self, positions: Iterable[Position], budget: float = 1.0
    ) -> dict[Position, datetime]:
        """Timestamps of the records at ``positions`` (topic, partition, offset), read within
        ``budget`` seconds. A position holding no record (a transaction marker, a compacted
        gap) gets the timestamp of the next record; positions not read in time are left out.

        Each round reads the lowest still-wanted offset of every partition at once, so two
        positions per partition (oldest and newest pending record) take two rounds."""
        wanted: dict[tuple[str, int], set[int]] = {}
        for topic, partition, offset in positions:
            wanted.setdefault((topic, partition), set()).add(offset)
        found: dict[Position, datetime] = {}
        if self._peek is None:
            return found
        deadline = time.monotonic() + budget
        try:
            while wanted and time.monotonic() < deadline:
                heads = {tp: min(offsets) for tp, offsets in wanted.items()}
                self._peek.assign([TopicPartition(t, p, o) for (t, p), o in heads.items()])
                got: set[tuple[str, int]] = set()
                while len(got) < len(heads) and time.monotonic() < deadline:
                    for msg in self._peek.consume(num_messages=500, timeout=0.05):
                        tp = (msg.topic(), msg.partition())
                        if msg.error() is not None or tp not in heads:
                            continue
                        stamp = _ms_to_datetime(msg.timestamp())
                        if tp not in got:
                            got.add(tp)
                            found[(tp[0], tp[1], heads[tp])] = stamp
                        if msg.offset() in wanted[tp]:
                            found[(tp[0], tp[1], msg.offset())] = stamp
                wanted = {
                    tp: rest
                    for tp in got
                    if (rest := {o for o in wanted[tp] if (tp[0], tp[1], o) not in found})
                }
        except KafkaException as exc:
            raise ControllerIOError(f"timestamps: {exc.args[0]}") from None
        finally:
            self._peek.unassign()
        return found


def _ms_to_datetime(stamp: tuple[int, int]) -> datetime:
    _kind, ms = stamp
    return datetime.fromtimestamp(max(0, ms) / 1000.0, UTC)


def _aio_common(settings: Settings) -> dict[str, Any]:
    """aiokafka's spelling of the connection and security settings."""
    return aiokafka_config(settings)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, member: ControlMember) -> None:
        self._member = member

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._member._revoked()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._member._assigned(list(assigned))


class ControlMember:
    """Member of ``{prefix}modq.controllers`` reading the control topic while it leads.

    ``on_gain()`` runs when this member gains partition 0 (before the topic is re-read from
    the beginning); ``on_loss()`` when it loses it. ``caught_up`` turns true once the records
    present at the moment of the gain have been fetched.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        topic: str,
        group: str,
        controller_id: str,
        on_gain: Callable[[], None],
        on_loss: Callable[[], None],
    ) -> None:
        self._topic = topic
        self._tp = AioTP(topic, 0)
        self._on_gain = on_gain
        self._on_loss = on_loss
        self._consumer = AIOKafkaConsumer(
            group_id=group,
            client_id=f"controller-{controller_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=LEADER_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=500,
            rebalance_timeout_ms=10_000,
            **_aio_common(settings),
        )
        self.leading = False
        self._end = 0
        self.caught_up = False
        self._started = False

    async def __aenter__(self) -> ControlMember:
        if not self._started:
            await self._consumer.start()
            self._consumer.subscribe([self._topic], listener=_Listener(self))
            self._started = True
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._started:
            self._started = False
            self.leading = False
            await self._consumer.stop()  # leaves the group: a standby takes over at once

    async def _assigned(self, tps: list[Any]) -> None:
        if self._tp not in tps:
            return
        self._on_gain()
        self.leading = True
        self.caught_up = False
        await self._consumer.seek_to_beginning(self._tp)
        self._end = int((await self._consumer.end_offsets([self._tp]))[self._tp])
        _LOG.info("leading: re-reading %d control record(s)", self._end)

    async def _revoked(self) -> None:
        if self.leading:
            self.leading = False
            self.caught_up = False
            self._on_loss()

    async def fetch(self, timeout_ms: int) -> list[Record]:
        """The next control records (empty while standing by); keeps the membership alive."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=2000)
        records = [(r.key, r.value) for part in batches.values() for r in part]
        if self.leading and not self.caught_up:
            position = await self._consumer.position(self._tp)
            self.caught_up = position >= self._end
        return records


class Publisher:
    """Idempotent ``acks=all`` producer; :meth:`send` returns once the broker has the record."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        self._producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            client_id=client_id,
            linger_ms=5,
            **_aio_common(settings),
        )
        self._started = False

    async def __aenter__(self) -> Publisher:
        if not self._started:
            await self._producer.start()
            self._started = True
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._started:
            self._started = False
            await self._producer.stop()

    async def send_all(self, topic: str, records: Sequence[tuple[str, bytes | None]]) -> None:
        """Publish (key, value) records to ``topic`` in order and wait for every ack."""
        try:
            futures: list[Awaitable[Any]] = [
                await self._producer.send(topic, key=key.encode(), value=value)
                for key, value in records
            ]
            await asyncio.gather(*futures)
        except Exception as exc:
            raise PublishError(f"publish to {topic}: {exc}") from exc


def read_log(settings: Settings, topic: str, timeout: float = 10.0) -> list[Record]:
    """Every record of partition 0 of ``topic`` from its beginning to its current end."""
    consumer = _consumer(settings)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
        consumer.assign([TopicPartition(topic, 0, low)])
        records: list[Record] = []
        position = low
        deadline = time.monotonic() + timeout
        while position < high and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                if msg.error() is None:
                    records.append((msg.key(), msg.value()))
                    position = msg.offset() + 1
        return records
    except KafkaException as exc:
        raise ControllerIOError(f"read {topic}: {exc.args[0]}") from None
    finally:
        consumer.close()


def controller_members(
    settings: Settings, group: str, topic: str, timeout: float = 5.0
) -> dict[str, bool]:
    """Client ids of the controllers' group members, each with whether it owns ``topic``'s
    partition 0 (leads). Empty when the group is unknown or unreachable."""
    admin = _admin(settings)
    try:
        desc = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(
            timeout=timeout
        )
    except KafkaException:
        return {}
    members: dict[str, bool] = {}
    for member in desc.members:
        parts = member.assignment.topic_partitions if member.assignment else []
        owns = any(tp.topic == topic and tp.partition == 0 for tp in parts)
        members[str(member.client_id)] = members.get(str(member.client_id), False) or owns
    return members


def describe_leader(settings: Settings, group: str, topic: str, timeout: float = 5.0) -> str | None:
    """The client id of the controllers' group member that owns ``topic``'s partition 0."""
    members = controller_members(settings, group, topic, timeout)
    return next((client for client, owns in members.items() if owns), None)
