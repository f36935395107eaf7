"""KeyedLanes (per-key FIFO, one record of a key at a time, fair) and Batches."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pytest

from streams.lanes import Batches, KeyedLanes


async def test_records_of_a_key_come_out_in_order_one_at_a_time() -> None:
    lanes: KeyedLanes[str] = KeyedLanes()
    for work in ("a1", "a2", "b1"):
        lanes.put(work[0], work)
    assert len(lanes) == 3
    assert lanes.keys == 2
    assert await lanes.take() == ("a", "a1")
    assert await lanes.take() == ("b", "b1")
    with pytest.raises(TimeoutError):  # a is busy: a2 must not be handed out yet
        await asyncio.wait_for(lanes.take(), timeout=0.05)
    lanes.done("a")
    assert await lanes.take() == ("a", "a2")
    lanes.done("a")
    lanes.done("b")
    assert len(lanes) == 0
    assert lanes.keys == 0
    await asyncio.wait_for(lanes.wait_idle(), timeout=1)


async def test_keys_take_turns_so_a_long_queue_does_not_starve_others() -> None:
    lanes: KeyedLanes[str] = KeyedLanes()
    for work in ("a1", "a2", "a3", "b1", "c1", "b2"):
        lanes.put(work[0], work)
    served = []
    while len(lanes):
        key, work = await lanes.take()
        served.append(work)
        lanes.done(key)
    assert served == ["a1", "b1", "c1", "a2", "b2", "a3"]


async def test_concurrent_lanes_keep_key_order_and_never_overlap_a_key() -> None:
    rng = random.Random(3)
    lanes: KeyedLanes[tuple[str, int]] = KeyedLanes()
    keys = [f"k{i}" for i in range(20)]
    for seq in range(10):
        for key in keys:
            lanes.put(key, (key, seq))
    active: Counter[str] = Counter()
    seen: dict[str, list[int]] = {key: [] for key in keys}
    overlap = 0
    busy = 0
    peak = 0

    async def lane() -> None:
        nonlocal overlap, busy, peak
        while True:
            key, (wkey, seq) = await lanes.take()
            assert key == wkey
            active[key] += 1
            busy += 1
            peak = max(peak, busy)
            overlap = max(overlap, active[key])
            seen[key].append(seq)
            await asyncio.sleep(rng.uniform(0, 0.002))
            active[key] -= 1
            busy -= 1
            lanes.done(key)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(lane()) for _ in range(6)]
        await asyncio.wait_for(lanes.wait_idle(), timeout=10)
        for task in tasks:
            task.cancel()
    assert overlap == 1
    assert peak == 6
    assert all(seqs == list(range(10)) for seqs in seen.values())


async def test_batches_fill_up_to_the_batch_size_at_once() -> None:
    batches: Batches[int] = Batches(batch_size=5, batch_wait=10.0)
    for i in range(12):
        batches.put(i)
    started = time.monotonic()
    assert await batches.take() == [0, 1, 2, 3, 4]
    assert time.monotonic() - started < 1.0  # a full batch does not wait
    assert len(batches) == 12
    batches.done()
    assert await batches.take() == [5, 6, 7, 8, 9]
    batches.done()
    assert len(batches) == 2


async def test_a_lone_record_is_released_after_the_batch_wait() -> None:
    batches: Batches[str] = Batches(batch_size=5, batch_wait=0.2)
    batches.put("lonely")
    started = time.monotonic()
    assert await batches.take() == ["lonely"]
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 1.0
    batches.done()
    await asyncio.wait_for(batches.wait_idle(), timeout=1)


async def test_records_arriving_during_the_wait_join_the_batch() -> None:
    batches: Batches[int] = Batches(batch_size=5, batch_wait=5.0)
    batches.put(0)
    taking = asyncio.create_task(batches.take())
    await asyncio.sleep(0)  # let take() hold the first record
    for i in range(1, 5):
        batches.put(i)
    assert await asyncio.wait_for(taking, timeout=1) == [0, 1, 2, 3, 4]
