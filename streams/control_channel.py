"""A worker's side of the control topic (aiokafka): heartbeats out, assignments in.

The control topic is compacted and single-partition. On start the channel reads it from the
beginning to its end, so a restarted worker finds its last assignment even while no
controller runs (ARCHITECTURE.md invariant 4); afterwards it follows new assignments.
Assignments are applied only when their generation is newer than the one held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from schemas.codec import decode_control, encode
from schemas.control import WorkerAssignment, WorkerHeartbeat, assignment_key, heartbeat_key
from schemas.errors import ContractError
from schemas.kafka_config import aiokafka_config, bootstrap_servers
from schemas.settings import Settings
from schemas.topics import TopicNames

_LOG = logging.getLogger("modq.worker.control")


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """aiokafka's spelling of the security settings (see ``schemas.kafka_config``)."""
    options = aiokafka_config(settings)
    del options["bootstrap_servers"]
    return options


class ControlChannel:
    """Async context manager: publish heartbeats, receive this worker's assignments."""

    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        on_assignment: Callable[[WorkerAssignment], None],
    ) -> None:
        self._worker_id = worker_id
        self._topic = TopicNames.from_prefix(settings.topic_prefix).control
        self._on_assignment = on_assignment
        common = {"bootstrap_servers": bootstrap_servers(settings), **aiokafka_security(settings)}
        self._producer = AIOKafkaProducer(
            acks="all", enable_idempotence=True, client_id=f"{worker_id}-control", **common
        )
        self._consumer = AIOKafkaConsumer(
            enable_auto_commit=False, client_id=f"{worker_id}-control-reader", **common
        )
        self._generation = -1
        self._task: asyncio.Task[None] | None = None
        self.latest: WorkerAssignment | None = None

    async def __aenter__(self) -> ControlChannel:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect, read the topic to its end, then follow it in the background.

        If start-up fails, whatever was opened is closed again before the error propagates.
        """
        try:
            await self._catch_up()
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(self._follow(), name="control-follow")

    async def _catch_up(self) -> None:
        await self._producer.start()
        await self._consumer.start()
        tp = TopicPartition(self._topic, 0)
        self._consumer.assign([tp])
        await self._consumer.seek_to_beginning(tp)
        end = (await self._consumer.end_offsets([tp]))[tp]
        while await self._consumer.position(tp) < end:
            await self._read_batch(timeout_ms=500)

    async def stop(self) -> None:
        """Stop following and close both clients. Idempotent."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._consumer.stop()
        await self._producer.stop()

    async def heartbeat(self, beat: WorkerHeartbeat) -> None:
        """Publish ``beat`` under ``hb:{worker_id}``; errors are logged, never fatal."""
        try:
            await self._producer.send(
                self._topic, key=heartbeat_key(self._worker_id).encode(), value=encode(beat)
            )
        except Exception as exc:
            _LOG.warning("heartbeat not sent: %s", exc)

    async def _follow(self) -> None:
        """Follow new assignments until stopped; a failing read is logged and retried, so
        the worker keeps serving its last assignment (ARCHITECTURE.md invariant 4)."""
        while True:
            try:
                await self._read_batch(timeout_ms=1000)
            except Exception as exc:
                _LOG.warning("reading the control topic failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    async def _read_batch(self, timeout_ms: int) -> None:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=1000)
        mine = assignment_key(self._worker_id).encode()
        for records in batches.values():
            for record in records:
                if record.key != mine or record.value is None:
                    continue
                try:
                    message = decode_control(record.value)
                except (ContractError, ValidationError) as exc:
                    _LOG.warning("ignoring malformed control record: %s", exc)
                    continue
                if isinstance(message, WorkerAssignment) and message.generation > self._generation:
                    self._generation = message.generation
                    self.latest = message
                    self._on_assignment(message)
