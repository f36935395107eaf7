"""At-least-once publishing: a record finishes once every message it produced is acknowledged.

The producer is polled on its own thread; acknowledgements are collected there and handed to
the event loop in batches (one loop wake-up per poll, not per message), where
:class:`Deliveries` counts them per record and reports the record finished (or the
first delivery error, which stops the session: nothing past it is committed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from streams.kafka_io import TP, DataProducer, KafkaIOError
from streams.processing import OutMessage

Slot = tuple[TP, int, int]
"""(partition, offset, generation) of a record whose messages await acknowledgement."""

POLL_TIMEOUT_S = 0.05


class Deliveries:
    """Counts acknowledgements per record. Use from the event loop (``send``, ``serve``)."""

    def __init__(
        self,
        producer: DataProducer,
        *,
        on_delivered: Callable[[Slot], None],
        on_error: Callable[[KafkaIOError], None],
    ) -> None:
        self._producer = producer
        self._on_delivered = on_delivered
        self._on_error = on_error
        self._unacked: dict[Slot, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="producer-poll")
        # Filled by librdkafka callbacks (on the poll thread, or on the loop thread when a
        # full queue makes produce() poll); deque appends and pops are thread-safe.
        self._acks: deque[tuple[Slot, KafkaIOError | None]] = deque()

    def send(self, slot: Slot, messages: tuple[OutMessage, ...]) -> None:
        """Produce ``messages`` in order; ``on_delivered(slot)`` once all are acknowledged.

        Raises :class:`KafkaIOError` if the producer refuses a message.
        """
        self._loop = asyncio.get_running_loop()
        self._unacked[slot] = len(messages)
        ack = partial(self._relay, slot)
        for message in messages:
            self._producer.produce_acked(
                message.topic,
                key=message.key,
                value=message.value,
                headers=list(message.headers) if message.headers else None,
                ack=ack,
            )

    async def serve(self) -> None:
        """Serve delivery callbacks until cancelled."""
        self._loop = asyncio.get_running_loop()
        while True:
            acks = await self._loop.run_in_executor(self._exec, self._poll)
            for slot, err in acks:
                self._delivered(slot, err)

    def _poll(self) -> list[tuple[Slot, KafkaIOError | None]]:
        self._producer.poll(POLL_TIMEOUT_S)
        acks: list[tuple[Slot, KafkaIOError | None]] = []
        while self._acks:
            acks.append(self._acks.popleft())
        return acks

    def close(self) -> None:
        """Release the polling thread (after :meth:`serve` was cancelled)."""
        self._exec.shutdown(wait=False)

    def _relay(self, slot: Slot, err: KafkaIOError | None) -> None:
        self._acks.append((slot, err))

    def _delivered(self, slot: Slot, err: KafkaIOError | None) -> None:
        if err is not None:
            self._on_error(err)
            return
        left = self._unacked.get(slot, 0) - 1
        if left > 0:
            self._unacked[slot] = left
            return
        self._unacked.pop(slot, None)
        self._on_delivered(slot)
