"""In-memory fan-out of state snapshots to the browsers following ``/events``.

One snapshot is serialised once and offered to every subscriber's bounded queue. A client
that falls ``queue_size`` snapshots behind is dropped (its stream ends; the browser's
EventSource reconnects and starts from the latest snapshot) rather than buffered forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType


class Subscription:
    """One client's queue of snapshots; iterate it to receive them until it is closed."""

    def __init__(self, owner: Broadcaster, queue_size: int) -> None:
        self._owner = owner
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_size)
        self.dropped = False
        """True when it ended because the client fell behind."""

    def offer(self, message: bytes) -> bool:
        """Queue ``message``; ``False`` (and closed) when the client is too far behind."""
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped = True
            self.close()
            return False
        return True

    def close(self) -> None:
        """End the iteration after nothing more (pending snapshots are discarded)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._queue.get()
            if message is None:
                return
            yield message

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._owner.unsubscribe(self)


class Broadcaster:
    """Async context manager: subscribers in, snapshots out; closes every stream on exit."""

    def __init__(self, queue_size: int = 16) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._closed = False
        self.dropped_total = 0
        self.published_total = 0

    async def __aenter__(self) -> Broadcaster:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.close()

    @property
    def clients(self) -> int:
        """Subscribers now."""
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        """A new subscription (use it as a ``with`` block so it unsubscribes)."""
        sub = Subscription(self, self._queue_size)
        if self._closed:
            sub.close()
        else:
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget ``sub`` (idempotent)."""
        self._subscribers.discard(sub)

    def publish(self, message: bytes) -> None:
        """Offer ``message`` to every subscriber; drop those that are too far behind."""
        self.published_total += 1
        for sub in list(self._subscribers):
            if not sub.offer(message):
                self.dropped_total += 1
                self._subscribers.discard(sub)

    def close(self) -> None:
        """End every subscriber's stream; later subscriptions end at once."""
        self._closed = True
        for sub in list(self._subscribers):
            sub.close()
        self._subscribers.clear()
