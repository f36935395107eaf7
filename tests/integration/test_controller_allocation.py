"""The controller against the real broker: it measures, moves workers, trips the breaker,
reallocates a dead worker's slot, and leaves the visualization topic as the current state.

Workers run in this process (``streams.worker.serve_worker``) except where a worker must die
for real (SIGKILL of a ``modq worker`` child). Thresholds are short: tick 0.5 s, heartbeat
0.5 s, breaker 3 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.controller.control_plane import ControlLog
from orchestrator.controller.kafka_io import read_log
from orchestrator.controller.runtime import Controller, TickReport
from orchestrator.policy import BreakerStatus, MoveRule
from schemas.codec import decode_visualization
from schemas.queues import QueueClass
from schemas.settings import Settings
from schemas.visualization import ClassQueueView, ControllerDecisionView, WorkerPoolView
from streams.moderation.testing import DelayPolicy
from streams.worker import Worker
from tests.integration.worker_support import (
    interleaved_posts,
    message,
    new_topic,
    publish_submissions,
    running_worker,
    spawn_worker,
    stop_process,
    topics_of,
    wait_for,
    with_,
)

POSTS = QueueClass.TOPIC_POSTS
PMS = QueueClass.PRIVATE_MESSAGES
GLOBAL = QueueClass.GLOBAL_TOPICS


def fast(settings: Settings, **changes: object) -> Settings:
    """The test's settings with short controller thresholds."""
    base: dict[str, object] = {
        "controller_tick_seconds": 0.5,
        "heartbeat_seconds": 0.5,
        "worker_timeout_seconds": 6.0,
        "cooldown_seconds": 1.0,
        "circuit_breaker_seconds": 60.0,
        "breaker_recovery_seconds": 2.0,
        "max_in_flight_keys": 4,
        "drain_timeout_seconds": 2.0,
    }
    return with_(settings, **{**base, **changes})


@contextlib.asynccontextmanager
async def running_controller(
    settings: Settings,
    controller_id: str = "c1",
    on_tick: Callable[[TickReport], None] = lambda _r: None,
) -> AsyncIterator[Controller]:
    """An in-process controller, acting (leading and caught up) before the body runs."""
    stop = asyncio.Event()
    controller = Controller(settings, controller_id, on_tick=on_tick)
    task = asyncio.create_task(controller.run(stop))
    try:
        await wait_for(lambda: controller.acting or task.done(), 30, "the controller to lead")
        if task.done():
            task.result()
        yield controller
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def serving(worker: Worker, queue_class: QueueClass | None) -> bool:
    session = worker.session
    return session is not None and session.queue_class is queue_class


def pms(count: int, tag: str = "a") -> list[object]:
    return [message(f"{tag}{i % 5}", f"b{i % 5}", i // 5) for i in range(count)]


async def publish(settings: Settings, items: Sequence[object]) -> None:
    await asyncio.to_thread(publish_submissions, settings, items)


async def test_after_a_posts_burst_the_floating_worker_moves_to_private_messages(
    settings: Settings, artifacts_dir: Path
) -> None:
    s = fast(settings)
    ticks: list[TickReport] = []
    async with (
        running_controller(s, on_tick=ticks.append),
        running_worker(s, "w1", GLOBAL, DelayPolicy(0.0)) as w1,
        running_worker(s, "w2", None, DelayPolicy(0.005)) as w2,
    ):
        await publish(s, interleaved_posts(10, 10, "t"))
        await wait_for(lambda: serving(w2, POSTS), 20, "w2 to serve the posts burst")
        await wait_for(lambda: w2.processed >= 100, 30, "the posts burst to be processed")
        assert serving(w1, GLOBAL), "global_topics keeps its one worker"

        started = time.monotonic()
        await publish(s, pms(20))
        await wait_for(lambda: serving(w2, PMS), 20, "w2 to move to private messages")
        moved_after = time.monotonic() - started
        await wait_for(lambda: w2.processed >= 120, 20, "the private messages to be processed")
        done_after = time.monotonic() - started

    move = next(
        m
        for t in ticks
        for m in t.result.moves
        if m.worker_id == "w2" and m.from_class is POSTS and m.to_class is PMS
    )
    assert move.rule in (MoveRule.IDLE_RELEASE, MoveRule.PRIORITY)
    log = ControlLog()
    for key, value in read_log(s, topics_of(s).control):
        log.apply(key, value)
    latest = log.assignments["w2"]
    assert latest.queue_class is PMS
    assert latest.controller_id == "c1"
    assert latest.generation == log.max_generation >= 1
    assert moved_after < 10.0, f"the move took {moved_after:.1f} s"
    (artifacts_dir / "controller_move.json").write_text(
        json.dumps({"move_seconds": moved_after, "drained_seconds": done_after}), "utf-8"
    )
    print(f"time to move: {moved_after:.2f} s; private messages done after {done_after:.2f} s")


async def test_breaker_opens_on_a_starved_class_and_its_records_get_processed(
    settings: Settings,
) -> None:
    threshold = 3.0
    s = fast(settings, circuit_breaker_seconds=threshold, max_in_flight_keys=1)
    ticks: list[TickReport] = []
    async with (
        running_controller(s, on_tick=ticks.append),
        running_worker(s, "w1", GLOBAL, DelayPolicy(0.0)),
        running_worker(s, "w2", None, DelayPolicy(0.1)) as w2,
    ):
        await publish(s, interleaved_posts(4, 150, "flood"))  # ~60 s of work at 10/s
        await wait_for(lambda: serving(w2, POSTS) and w2.processed > 0, 20, "w2 on the flood")
        before = w2.processed
        sent_at = time.monotonic()
        sent_wall = datetime.now(UTC)
        await publish(s, pms(5))
        await wait_for(lambda: serving(w2, PMS), threshold + 10, "the breaker to move w2")
        await wait_for(lambda: w2.processed >= before + 5, 20, "the private messages")
        served_after = time.monotonic() - sent_at
        views = {
            (k or b"").decode(): decode_visualization(v)
            for k, v in read_log(s, topics_of(s).visualization)
        }

    opened = next(t for t in ticks if t.result.breakers[PMS].status is not BreakerStatus.CLOSED)
    waited = (opened.at - sent_wall).total_seconds()
    assert threshold <= waited < threshold + 3.0, f"opened after {waited:.1f} s"
    move = next(m for m in opened.result.moves if m.worker_id == "w2")
    assert move.rule is MoveRule.CIRCUIT_BREAKER
    assert move.to_class is PMS
    assert move.from_class is POSTS
    assert any("breaker private_messages: closed -> open" in r for r in opened.result.reasons)
    assert threshold <= served_after < threshold + 15
    posts_view = views[POSTS.value]
    assert isinstance(posts_view, ClassQueueView)
    assert posts_view.length > 0, "the flood never drained"
    print(f"breaker opened {waited:.1f} s after the private messages arrived; processed")
    print(f"private messages processed {served_after:.1f} s after they arrived")


async def test_a_killed_workers_slot_goes_to_the_spare(settings: Settings, tmp_path: Path) -> None:
    s = fast(settings, worker_timeout_seconds=4.0)
    ticks: list[TickReport] = []
    env = {"MODQ_HEARTBEAT_SECONDS": "0.5"}
    async with running_controller(s, on_tick=ticks.append) as controller:
        proc = spawn_worker(s, "w2", PMS, tmp_path / "w2.log", env)
        try:
            async with running_worker(s, "w1", GLOBAL, DelayPolicy(0.0)):
                assert controller.leadership is not None
                log = controller.leadership.log
                await wait_for(
                    lambda: log.is_alive("w2", _now(), 4.0) and log.class_of("w2") is not None,
                    30,
                    "the w2 child to be placed",
                )
                held = log.class_of("w2")
                assert held is not None
                async with running_worker(s, "w3", None, DelayPolicy(0.0)) as w3:
                    await wait_for(lambda: log.is_alive("w3", _now(), 4.0), 10, "w3 heard")
                    await wait_for(lambda: _last_tick_has(ticks, "w3"), 10, "a tick with w3")
                    assert ticks[-1].result.assignments["w3"] is None, "w3 starts as spare"
                    killed = time.monotonic()
                    stop_process(proc, signal.SIGKILL, 10)
                    await wait_for(lambda: serving(w3, held), 25, "w3 to take w2 slot")
                    took = time.monotonic() - killed
                    items: Sequence[object] = (
                        pms(5) if held is PMS else interleaved_posts(2, 3, "k")
                    )
                    await publish(s, items)
                    await wait_for(lambda: w3.processed >= 5, 20, "w3 to process w2's class")
                    # The scenario ends here: during the teardown w3 and w1 stop while the
                    # controller still ticks, and a stopped worker's slot is freed too.
                    during = list(ticks)
        finally:
            if proc.poll() is None:
                stop_process(proc, signal.SIGKILL, 10)
    lost = [m for t in during for m in t.result.moves if m.rule is MoveRule.WORKER_LOST]
    assert [m.worker_id for m in lost] == ["w2"]
    assert 1.0 <= took < 15.0, f"reallocated after {took:.1f} s"
    print(f"w2's slot reallocated to w3 {took:.1f} s after SIGKILL")


async def test_visualization_topic_read_from_the_beginning_is_the_current_state(
    settings: Settings,
) -> None:
    s = fast(settings)
    async with (
        running_controller(s) as controller,
        running_worker(s, "w1", GLOBAL, DelayPolicy(0.0)) as w1,
        running_worker(s, "w2", None, DelayPolicy(0.0)) as w2,
    ):
        await publish(s, [new_topic(f"n{i}") for i in range(5)] + pms(5))
        await wait_for(lambda: w1.processed + w2.processed >= 10, 30, "everything processed")

        def settled() -> bool:
            views = controller.published
            lengths = [v.length for v in views.values() if isinstance(v, ClassQueueView)]
            pool = views.get("workers")
            return (
                len(lengths) == 3
                and not any(lengths)
                and isinstance(pool, WorkerPoolView)
                and {e.worker_id for e in pool.workers if e.alive} == {"w1", "w2"}
            )

        await wait_for(settled, 20, "the controller to publish the drained state")
        classes = {w.worker_id: (w.session.queue_class if w.session else None) for w in (w1, w2)}
    # the controller has stopped: what it published last is the current state
    folded: dict[str, object] = {}
    records = read_log(s, topics_of(s).visualization)
    for key, value in records:
        assert key is not None
        folded[key.decode()] = decode_visualization(value)
    assert folded == controller.published
    pool = folded["workers"]
    assert isinstance(pool, WorkerPoolView)
    assert {e.worker_id: e.queue_class for e in pool.workers} == classes
    decision = folded["controller"]
    assert isinstance(decision, ControllerDecisionView)
    assert decision.controller_id == "c1"
    assert decision.leader
    served = {w for ws in decision.allocation.values() for w in ws}
    assert served == {"w1", "w2"}
    assert len(records) <= 5 * controller.ticks, "at most one record per key per tick"


def _now() -> datetime:
    return datetime.now(UTC)


def _last_tick_has(ticks: list[TickReport], worker_id: str) -> bool:
    return bool(ticks) and worker_id in ticks[-1].result.assignments
