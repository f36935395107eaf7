"""The Kafka clients of one class session, opened and closed together.

- One consumer, driven from one dedicated thread (:meth:`SessionClients.in_consumer`):
  librdkafka runs rebalance callbacks in the thread that polls, and the session's callbacks
  block that thread while the event loop drains the revoked partitions.
- The producer the guarantee needs. At-least-once: one producer whose deliveries are proven
  by barriers (:class:`streams.deliveries.Deliveries`). Exactly-once: a transactional
  producer and its committer (:class:`streams.transactions.TransactionalCommitter`), which
  rebuilds the producer after a fatal transaction error.
- The offset committer over both (:class:`streams.transactions.OffsetCommitter`).

:meth:`close` is idempotent and safe after a failed :meth:`open`. There is no ``async with``
form on purpose: the session must mark a failed session abandoned *before* the close runs the
revoke callback (which would otherwise drain and commit), so it calls the two itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from schemas.settings import ProcessingGuarantee, Settings
from streams.deliveries import Deliveries, Slot
from streams.kafka_io import TP, DataConsumer, DataProducer
from streams.transactions import OffsetCommitter, TransactionalCommitter

_LOG = logging.getLogger("modq.worker")
T = TypeVar("T")
FLUSH_ON_CLOSE_S = 10.0


@dataclass(frozen=True, slots=True)
class SessionHooks:
    """What the clients call back into the session (see :class:`ClassSession`)."""

    on_assign: Callable[[list[TP]], None]
    on_revoke: Callable[[list[TP]], None]
    on_lost: Callable[[list[TP]], None]
    on_delivered: Callable[[list[Slot]], None]
    """At-least-once: the records one delivery barrier proved durable."""
    on_error: Callable[[BaseException], None]
    """At-least-once: a delivery failed."""


class SessionClients:
    """One consumer-group member's consumer, producer and committers."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        group_id: str,
        topic: str,
        transactional_prefix: str,
        hooks: SessionHooks,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self._group_id = group_id
        self._topic = topic
        self._txn_prefix = transactional_prefix
        self._hooks = hooks
        self.eos = settings.processing_guarantee is ProcessingGuarantee.EXACTLY_ONCE
        self._cexec = ThreadPoolExecutor(1, thread_name_prefix=f"consumer-{client_id}")
        self.consumer: DataConsumer | None = None
        self.producer: DataProducer | None = None
        self.committer: TransactionalCommitter | None = None
        self.offsets: OffsetCommitter | None = None
        self.deliveries: Deliveries | None = None
        """At-least-once only."""
        self._closed = False

    async def open(self) -> None:
        """Create the producer side, then the consumer, and subscribe (joins the group at
        the first poll)."""
        client = self._client_id
        if self.eos:
            self.producer = self._new_producer(client)
            self.committer = TransactionalCommitter(self.producer, self._new_producer, client)
            await self.in_consumer(self.committer.start)
        else:
            self.deliveries = Deliveries(
                on_delivered=self._hooks.on_delivered, on_error=self._hooks.on_error
            )
            self.producer = self.deliveries.producer_for(
                lambda **kw: DataProducer(self._settings, client_id=client, **kw)
            )
        self.consumer = DataConsumer(
            self._settings,
            group_id=self._group_id,
            client_id=client,
            on_assign=self._hooks.on_assign,
            on_revoke=self._hooks.on_revoke,
            on_lost=self._hooks.on_lost,
        )
        self.offsets = OffsetCommitter(self.consumer, self.committer)
        self.consumer.subscribe([self._topic])

    def _new_producer(self, client: str) -> DataProducer:
        txn_id = f"{self._txn_prefix}modq.{client}" if self.eos else None
        return DataProducer(self._settings, client_id=client, transactional_id=txn_id)

    async def in_consumer(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the consumer's thread (every consumer call goes there)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._cexec, fn, *args)

    async def leave(self) -> None:
        """Leave the group (the revoke callback runs meanwhile). Idempotent; never raises."""
        if self.consumer is not None and not self.consumer.closed:
            try:
                await self.in_consumer(self.consumer.close)
            except Exception as exc:
                _LOG.warning("leaving the group failed: %s: %s", type(exc).__name__, exc)

    async def close(self) -> None:
        """Leave, flush the producer, stop the delivery barriers and the consumer thread."""
        if self._closed:
            return
        self._closed = True
        await self.leave()
        producer = self.committer.producer if self.committer is not None else self.producer
        if producer is not None:
            await self.in_consumer(producer.flush, FLUSH_ON_CLOSE_S)
        if self.deliveries is not None:
            self.deliveries.close()
        self._cexec.shutdown(wait=False)
