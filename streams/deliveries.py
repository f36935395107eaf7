"""At-least-once publishing: records finish in batches, once a barrier proves their output durable.

A record is finished (its offset may be committed) only when every message it produced has
been acknowledged by the broker (ARCHITECTURE.md #2). Proving that one message at a time
costs a Python callback per message, most of what at-least-once used to cost over
exactly-once. :class:`Deliveries` proves it per batch instead, the way Kafka Streams does
before it commits:

1. :meth:`Deliveries.send` produces a record's messages at once and notes the record as
   *sent*. The producer reports failures only (``delivery.report.only.error``).
2. :meth:`Deliveries.serve` runs barriers back to back: it takes every record sent so far
   and waits, in a thread, until the producer's queue is empty (``flush``: everything queued
   is acknowledged or failed). Records sent while a barrier waits are held back and
   produced right after it, so a barrier waits only for what it covers.
3. If the barrier saw no failure, its records are finished, in the order they were sent.
   The first failure stops the session instead: nothing sent after the last clean barrier
   is ever reported finished, so nothing past it is committed.

Ordering: messages are produced in the order :meth:`send` was called (held-back ones
first, before anything sent later), so a key's decisions keep their order. A barrier adds
about one broker round trip to when a record may be committed, not to when its decision is
visible.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from streams.kafka_io import TP, DataProducer, KafkaIOError
from streams.processing import OutMessage

Slot = tuple[TP, int, int]
"""(partition, offset, generation) of a record whose messages await acknowledgement."""

BARRIER_WAIT_S = 0.1
"""Longest single wait of a barrier thread before it checks for a failure or a close."""

IDLE_POLL_S = 1.0
"""How often an idle publisher polls its producer (error callbacks, logs)."""


class Deliveries:
    """Sends records' messages and reports records finished by barrier.

    Use from the event loop (``send``, ``serve``). Build the producer with
    :meth:`producer_for`, which routes its failed deliveries here.
    """

    def __init__(
        self,
        *,
        on_delivered: Callable[[list[Slot]], None],
        on_error: Callable[[KafkaIOError], None],
    ) -> None:
        self._producer: DataProducer | None = None
        self._on_delivered = on_delivered
        self._on_error = on_error
        self._sent: list[Slot] = []
        self._held: list[tuple[Slot, tuple[OutMessage, ...]]] = []
        self._in_barrier = False
        self._pending = asyncio.Event()
        self._closing = False
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="producer-barrier")
        # Appended by librdkafka's failure reports (barrier thread, or the loop's thread when a
        # full queue makes produce() poll); deque appends are thread-safe.
        self._failures: deque[KafkaIOError] = deque()

    def producer_for(self, factory: Callable[..., DataProducer]) -> DataProducer:
        """Build this publisher's producer with ``factory(on_failed_delivery=...)``."""
        self._producer = factory(on_failed_delivery=self._failures.append)
        return self._producer

    def send(self, slot: Slot, messages: tuple[OutMessage, ...]) -> None:
        """Produce ``messages`` in order; ``slot`` is among the ``on_delivered(slots)`` of the
        first barrier that covers them.

        Raises :class:`KafkaIOError` if the producer refuses a message.
        """
        if self._in_barrier:
            self._held.append((slot, messages))
        else:
            self._produce(slot, messages)
        if not self._pending.is_set():
            self._pending.set()

    def _produce(self, slot: Slot, messages: tuple[OutMessage, ...]) -> None:
        assert self._producer is not None, "producer_for() first"
        for message in messages:
            self._producer.produce(
                message.topic,
                key=message.key,
                value=message.value,
                headers=list(message.headers) if message.headers else None,
            )
        self._sent.append(slot)

    async def serve(self) -> None:
        """Run barriers until cancelled, or until the first failed delivery (then
        ``on_error`` is called and nothing more is reported finished)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(IDLE_POLL_S):
                    await self._pending.wait()
            except TimeoutError:
                # Idle: still serve the producer's error and log callbacks now and then.
                assert self._producer is not None
                await loop.run_in_executor(self._exec, self._producer.poll, 0)
                continue
            self._pending.clear()
            if not self._sent:
                continue
            covered, self._sent = self._sent, []
            self._in_barrier = True
            try:
                await loop.run_in_executor(self._exec, self._barrier)
            finally:
                self._in_barrier = False
            if self._failures:
                self._on_error(self._failures[0])
                return
            self._on_delivered(covered)
            held, self._held = self._held, []
            for slot, messages in held:
                self._produce(slot, messages)
            if self._sent:
                self._pending.set()

    def _barrier(self) -> None:
        """Wait until everything queued so far is acknowledged, or a delivery failed."""
        assert self._producer is not None
        while self._producer.flush(BARRIER_WAIT_S) > 0:
            if self._failures or self._closing:
                return

    def close(self) -> None:
        """Release the barrier thread (after :meth:`serve` was cancelled)."""
        self._closing = True
        self._exec.shutdown(wait=False)
