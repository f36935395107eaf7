"""Controller benchmarks: reallocation latency per group protocol, and the pure tick's cost.

Run: ``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.reallocation
[--moves 50] [--quick]``. Writes ``docs/bench/controller.md`` and ``docs/bench/controller.json``.

1. **Reallocation latency**, for ``group_protocol=consumer`` (KIP-848) and ``classic``: an
   in-process controller (tick 0.2 s, cooldown 0) and two in-process workers (w1 on
   ``global_topics``, w2 floating). Each move: while w2 serves one class (idle), 3 records
   arrive on the other; the controller moves w2 (``idle_release``). Latency = from the tick
   that decided the move (the ``now`` it allocated with) to w2 finishing its first record of
   the new class (the policy's return), in seconds. p50/p99 over ``--moves`` moves.
2. **Tick cost**: the controller's pure work per tick (measure + allocate + render views +
   choose what to publish) with 100 workers, 6 partitions per class and 10,000 per-key queue
   records already known (published), median and p99 over 2,000 ticks, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.checks import percentile
from bench.machine import machine_info, machine_line
from orchestrator.controller.control_plane import ControlLog
from orchestrator.controller.measurement import (
    ClassOffsets,
    MeasurementState,
    PartitionOffsets,
    measure,
)
from orchestrator.controller.runtime import Controller, TickReport
from orchestrator.controller.views import class_views, decision_view, pool_view, to_publish
from orchestrator.kafka_admin import delete_topics
from orchestrator.policy import ControllerState, allocate
from orchestrator.pool import pool_config
from orchestrator.provisioning import ensure_topics, topic_specs
from schemas.codec import encode
from schemas.control import WorkerHeartbeat, WorkerState
from schemas.queues import QueueClass
from schemas.settings import Settings
from schemas.submissions import PostSubmission, PrivateMessageSubmission
from schemas.topics import TopicNames
from schemas.visualization import KeyQueueView, VisualizationRecord
from streams.moderation.policy import ModerationInput, PolicyResult, PolicyVerdict
from streams.worker import Worker, serve_worker

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_MD = ROOT / "docs" / "bench" / "controller.md"
OUTPUT_JSON = ROOT / "docs" / "bench" / "controller.json"
QUICK_ARGV = ["--quick"]
POSTS, PMS = QueueClass.TOPIC_POSTS, QueueClass.PRIVATE_MESSAGES
KIND_CLASS = {"post": POSTS, "private_message": PMS}


class StampingPolicy:
    """Approves at once and records when each class's records finish (monotonic seconds)."""

    def __init__(self) -> None:
        self.done: list[tuple[float, QueueClass]] = []

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        cls = KIND_CLASS.get(str(item.kind))
        if cls is not None:
            self.done.append((time.monotonic(), cls))
        return PolicyResult(verdict=PolicyVerdict.APPROVED)

    async def aclose(self) -> None:
        return None


def _records(cls: QueueClass, n: int, tag: str) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    out: list[tuple[bytes, bytes]] = []
    for i in range(n):
        item: PostSubmission | PrivateMessageSubmission
        if cls is POSTS:
            item = PostSubmission(
                id=f"{tag}-{i}", submitted_at=now, topic_id=f"t{i}", author_id="u", body="b"
            )
        else:
            item = PrivateMessageSubmission(
                id=f"{tag}-{i}", submitted_at=now, sender_id=f"a{i}", recipient_id="b", body="b"
            )
        out.append((item.key.encode(), encode(item)))
    return out


def _publish(settings: Settings, cls: QueueClass, n: int, tag: str) -> None:
    from streams.kafka_io import DataProducer

    names = TopicNames.from_prefix(settings.topic_prefix)
    topic = names.submissions_posts if cls is POSTS else names.submissions_private_messages
    producer = DataProducer(settings, client_id="bench")
    for key, value in _records(cls, n, tag):
        producer.produce(topic, key=key, value=value)
    producer.flush(10)


async def _until(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


async def _one_move(
    settings: Settings,
    w2: Worker,
    policy: StampingPolicy,
    decided: dict[int, tuple[float, QueueClass]],
    i: int,
) -> float:
    """Publish 3 records to the class w2 does not serve; the decision → first-done latency."""
    session = w2.session
    assert session is not None
    target = POSTS if session.queue_class is not POSTS else PMS
    seen = len(decided)
    tag = f"m{i}-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(_publish, settings, target, 3, tag)

    def decision() -> tuple[float, QueueClass] | None:
        found = [decided[k] for k in range(seen, len(decided)) if decided[k][1] is target]
        return found[0] if found else None

    await _until(lambda: decision() is not None, 30, f"decision {i}")
    at, cls = decision() or (0.0, target)
    await _until(lambda: any(t >= at and c is cls for t, c in policy.done), 30, f"move {i}")
    first = min(t for t, c in policy.done if t >= at and c is cls)
    await _until(
        lambda: sum(1 for t, c in policy.done if t >= at and c is cls) >= 3,
        30,
        "the rest of the burst",
    )
    return first - at


async def reallocations(settings: Settings, moves: int) -> list[float]:
    """Seconds from decision to first record of the new class done, per move."""
    decided: dict[int, tuple[float, QueueClass]] = {}
    last_clock = [0.0]

    def clock() -> datetime:
        last_clock[0] = time.monotonic()
        return datetime.now(UTC)

    def on_tick(report: TickReport) -> None:
        for m in report.result.moves:
            if m.worker_id == "w2" and m.to_class in (POSTS, PMS):
                decided[len(decided)] = (last_clock[0], m.to_class)

    policy = StampingPolicy()
    stop = asyncio.Event()
    workers: dict[str, Worker] = {}
    controller = Controller(settings, "c1", clock=clock, on_tick=on_tick)
    latencies: list[float] = []
    async with asyncio.TaskGroup() as group:
        group.create_task(controller.run(stop))
        for wid, cls, pol in (("w1", QueueClass.GLOBAL_TOPICS, None), ("w2", None, policy)):
            group.create_task(
                serve_worker(
                    settings,
                    worker_id=wid,
                    initial_class=cls,
                    stop=stop,
                    policy=pol or StampingPolicy(),
                    on_ready=lambda w: workers.__setitem__(w.worker_id, w),
                )
            )
        try:
            await _until(lambda: "w2" in workers and controller.acting, 60, "start")
            w2 = workers["w2"]
            await _until(lambda: w2.session is not None, 30, "w2 placed")
            for i in range(moves):
                latencies.append(await _one_move(settings, w2, policy, decided, i))
        finally:
            stop.set()
    return latencies


def tick_cost(ticks: int) -> list[float]:
    """Milliseconds of pure controller work per tick (see the module docstring)."""
    settings = Settings(total_workers=100)
    config = pool_config(settings)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    log = ControlLog()
    for i in range(100):
        beat = WorkerHeartbeat(
            worker_id=f"w{i}",
            state=WorkerState.SERVING,
            in_flight=0,
            processed=0,
            sent_at=t0,
            pid=1,
            host="h",
        )
        log.apply(f"hb:w{i}".encode(), encode(beat))
    published: dict[str, VisualizationRecord] = {
        f"topic_k{i}": KeyQueueView(
            queue=f"topic_k{i}", queue_class=POSTS, pending=1, updated_at=t0
        )
        for i in range(10_000)
    }
    state, policy_state = MeasurementState(), ControllerState()
    costs: list[float] = []
    for n in range(ticks):
        now = t0 + timedelta(seconds=0.5 * n)
        offsets = {
            cls: ClassOffsets(
                cls,
                cls.value,
                "g",
                tuple(PartitionOffsets(p, 0, 1000 + n * (k + 1), 900 + n) for p in range(6)),
            )
            for k, cls in enumerate(QueueClass)
        }
        started = time.perf_counter()
        state, metrics = measure(state, offsets, {}, now)
        workers = log.workers(now, 1e9, 1e9, policy_state.assignments)
        result = allocate(config, metrics, workers, policy_state, now)
        policy_state = result.next_state
        records: list[VisualizationRecord] = [
            *class_views(result, metrics, config, now),
            pool_view(
                log.known(now, 1e9), {w.worker_id: True for w in workers}, result.assignments, now
            ),
            decision_view(None, result, "c1", now, breakers_changed=False),
        ]
        for record in to_publish(published, records, now):
            published[str(record.queue)] = record
        costs.append((time.perf_counter() - started) * 1000.0)
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reallocation")
    parser.add_argument("--moves", type=int, default=50)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    moves = 8 if args.quick else args.moves
    meta: dict[str, Any] = {**machine_info(), "moves": moves, "quick": args.quick}
    data: dict[str, Any] = {"meta": meta}
    for protocol in ("consumer", "classic"):
        settings = Settings(
            topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
            topic_partitions=3,
            group_protocol=protocol,
            controller_tick_seconds=0.2,
            cooldown_seconds=0.0,
            heartbeat_seconds=0.5,
            circuit_breaker_seconds=600,
        )
        config = {"bootstrap.servers": settings.kafka_bootstrap_servers or "127.0.0.1:9092"}
        specs = topic_specs(settings)
        ensure_topics(config, specs)
        try:
            values = asyncio.run(reallocations(settings, moves))
        finally:
            delete_topics(config, [s.name for s in specs])
        data[protocol] = {
            "reallocation_s": values,
            "p50_s": percentile(values, 50),
            "p99_s": percentile(values, 99),
        }
        print(
            f"{protocol}: p50 {data[protocol]['p50_s']:.3f} s, p99 {data[protocol]['p99_s']:.3f} s"
        )
    costs = tick_cost(200 if args.quick else 2000)
    data["tick_cost"] = {"median_ms": percentile(costs, 50), "p99_ms": percentile(costs, 99)}
    tick = data["tick_cost"]
    print(f"tick: median {tick['median_ms']:.2f} ms, p99 {tick['p99_ms']:.2f} ms")
    OUTPUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT_JSON.write_text(json.dumps(data, indent=1), "utf-8")
    OUTPUT_MD.write_text(markdown(data), "utf-8")
    return 0


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    c, k, t = data["consumer"], data["classic"], data["tick_cost"]
    ratio50 = k["p50_s"] / c["p50_s"] if c["p50_s"] else float("nan")
    ratio99 = k["p99_s"] / c["p99_s"] if c["p99_s"] else float("nan")
    return "\n".join(
        [
            "# Controller",
            "",
            "Command: `KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m "
            f"bench.reallocation{' --quick' if meta['quick'] else ''}` · {meta['date']} · "
            + machine_line(meta),
            "",
            f"## Reallocation latency ({meta['moves']} moves per protocol)",
            "",
            "Decision (the controller tick that moved the worker) → the moved worker finished "
            "its first record of the new class. Local single broker, tick 0.2 s, cooldown 0.",
            "",
            "| group protocol | p50 (s) | p99 (s) | p99 target |",
            "|---|---|---|---|",
            f"| consumer (KIP-848) | {c['p50_s']:.3f} | {c['p99_s']:.3f} | ≤ 2 s |",
            f"| classic (cooperative-sticky) | {k['p50_s']:.3f} | {k['p99_s']:.3f} | ≤ 2 s |",
            "",
            f"classic / consumer: p50 ×{ratio50:.2f}, p99 ×{ratio99:.2f}.",
            "",
            "## Controller cost per tick",
            "",
            "Pure work per tick (measure + allocate + render + choose what to publish), 100 "
            "workers, 6 partitions per class, 10,000 per-key queue records known: "
            f"median {t['median_ms']:.2f} ms, p99 {t['p99_ms']:.2f} ms (target ≤ 10 ms). The "
            "controller never iterates per-key queues, so their number does not change it.",
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
