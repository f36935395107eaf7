"""Scheduling consumed records onto concurrent lanes without breaking per-key order.

:class:`KeyedLanes`: records of one key are handed out strictly one at a time, in the order
they were put; different keys run concurrently, up to the number of lanes the worker runs
(``max_in_flight_keys``). Keys wait their turn in FIFO order, so no key starves.

:class:`Batches`: the ``global_topics`` shape — up to ``batch_size`` records at a time,
moderated together; a batch waits at most ``batch_wait`` for its last records, so a lone
submission is not stuck.

:class:`Scheduler`: one of the two, and the lane tasks that run its work through a handler.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

W = TypeVar("W")


class KeyedLanes(Generic[W]):
    """Per-key FIFO queues and a FIFO of keys that are ready (queued and not in flight).

    A key is *busy* from the moment a lane takes its head record until :meth:`done`; while
    busy it is not in the ready FIFO, so no two records of one key are ever in flight.
    """

    def __init__(self) -> None:
        self._queues: dict[Hashable, deque[W]] = {}
        self._ready: asyncio.Queue[Hashable] = asyncio.Queue()
        self._size = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        """Records queued or in flight."""
        return self._size

    @property
    def keys(self) -> int:
        """Keys with records queued or in flight."""
        return len(self._queues)

    def put(self, key: Hashable, work: W) -> None:
        """Queue ``work`` behind every earlier record of ``key``."""
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque([work])
            self._ready.put_nowait(key)
        else:
            queue.append(work)
        self._size += 1
        self._idle.clear()

    async def take(self) -> tuple[Hashable, W]:
        """The next ready key and its head record; the key stays busy until :meth:`done`."""
        key = await self._ready.get()
        return key, self._queues[key][0]

    def done(self, key: Hashable) -> None:
        """The head record of ``key`` finished; its next record (if any) becomes ready."""
        queue = self._queues[key]
        queue.popleft()
        self._size -= 1
        if queue:
            self._ready.put_nowait(key)
        else:
            del self._queues[key]
        if self._size == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once nothing is queued or in flight."""
        await self._idle.wait()


class Batches(Generic[W]):
    """Records grouped into batches of up to ``batch_size``, waiting ``batch_wait`` at most."""

    def __init__(self, batch_size: int, batch_wait: float) -> None:
        self._queue: asyncio.Queue[W] = asyncio.Queue()
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        """Records queued or in the current batch."""
        return self._queue.qsize() + self._in_flight

    def put(self, work: W) -> None:
        """Queue ``work`` for a coming batch."""
        self._queue.put_nowait(work)
        self._idle.clear()

    async def take(self) -> list[W]:
        """The next batch: blocks for the first record, then gathers up to the batch size."""
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_wait
        while len(batch) < self._batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        self._in_flight = len(batch)
        return batch

    def done(self) -> None:
        """The current batch finished."""
        self._in_flight = 0
        if self._queue.empty():
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once nothing is queued or in flight."""
        await self._idle.wait()


class Scheduler(Generic[W]):
    """Where a session's records wait for a lane, and the lanes that run them.

    Keyed (``batch_size`` is ``None``): ``lanes`` tasks take records from
    :class:`KeyedLanes`, so a key's records run one at a time, in order, and up to ``lanes``
    keys at once. Batched: one task takes :class:`Batches` and runs each batch's records
    concurrently. ``handle`` must not raise for a record (a session turns errors into its
    own failure); ``put`` never blocks: the caller bounds what it holds.
    """

    def __init__(
        self,
        handle: Callable[[W], Awaitable[None]],
        *,
        lanes: int,
        key_of: Callable[[W], Hashable],
        batch_size: int | None = None,
        batch_wait: float = 0.0,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._handle = handle
        self._lanes = lanes
        self._key_of = key_of
        self._keyed: KeyedLanes[W] | None = None if batch_size else KeyedLanes()
        self._batches = Batches[W](batch_size, batch_wait) if batch_size else None
        self._on_batch = on_batch

    def put(self, work: W) -> None:
        """Queue ``work`` behind its key's earlier records (or into the next batch)."""
        if self._keyed is not None:
            self._keyed.put(self._key_of(work), work)
        else:
            assert self._batches is not None
            self._batches.put(work)

    def start(self, group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        """Start the lane tasks in ``group``; they run until cancelled."""
        if self._batches is not None:
            return [group.create_task(self._batch_lane(self._batches), name="batch-lane")]
        assert self._keyed is not None
        keyed = self._keyed
        return [
            group.create_task(self._key_lane(keyed), name=f"lane-{i}") for i in range(self._lanes)
        ]

    async def _key_lane(self, keyed: KeyedLanes[W]) -> None:
        while True:
            key, work = await keyed.take()
            try:
                await self._handle(work)
            finally:
                keyed.done(key)

    async def _batch_lane(self, batches: Batches[W]) -> None:
        while True:
            batch = await batches.take()
            try:
                self._on_batch(len(batch))
                await asyncio.gather(*(self._handle(w) for w in batch))
            finally:
                batches.done()
