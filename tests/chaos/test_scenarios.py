"""The long fault-injection scenarios of issue 8 (`make chaos`). Each prints its figures.

Durations and volumes scale with ``CHAOS_SCALE`` (default 1.0: the issue's figures; e.g.
``CHAOS_SCALE=0.2`` for a smoke run). Workers are real ``modq worker`` subprocesses; a small
supervisor loop restarts any that exits, as ``modq run`` would, and counts the restarts.

1. baseline: 100,000 mixed submissions, no faults;
2. kill -9 of a random worker every 10 s for 2 minutes (both guarantees);
4. a zombie: one of two exactly-once workers SIGSTOPped past its session timeout while the
   other takes over, then SIGCONTed: no duplicate decisions;
5. three brokers (RF 3, min.insync.replicas 2): kill -9 the leader of a partition mid-stream
   and restart it: nothing acknowledged is lost;
6. a TCP proxy in front of a dedicated broker cuts every connection for 30 s, then resumes.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chaos import faults
from chaos.checker import Report, Violation, check
from chaos.history import History, SubmittedRecord
from chaos.processes import WorkerProcess
from chaos.proxy import TcpProxy
from chaos.recorder import HistoryRecorder
from chaos.report import print_report
from chaos.workload import LoggingPublisher, PlannedRecord, mixed_workload
from orchestrator.kafka_admin import delete_topics
from orchestrator.localkafka import cluster
from orchestrator.provisioning import ensure_topics, topic_specs
from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings
from schemas.topics import TopicNames
from streams.session import COMMIT_INTERVAL_S

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

SCALE = float(os.environ.get("CHAOS_SCALE", "1.0"))
STATE_DIR = Path(__file__).resolve().parents[2] / ".modq"
BOTH = list(ProcessingGuarantee)


def scaled(n: float) -> int:
    return max(1, int(n * SCALE))


@dataclass
class Pool:
    """Worker subprocesses by id, and a supervisor task that restarts any that exits."""

    workers: dict[str, WorkerProcess]
    restarts: int = 0
    held: set[str] = field(default_factory=set)
    """Ids the scenario is handling itself (not restarted by the supervisor)."""

    async def supervise(self) -> None:
        while True:
            for worker_id, worker in self.workers.items():
                if worker_id not in self.held and not worker.alive():
                    worker.start()
                    self.restarts += 1
            await asyncio.sleep(0.5)  # polling the processes' state, not synchronisation


@asynccontextmanager
async def worker_pool(
    s: Settings, layout: Sequence[tuple[str, QueueClass]], log_dir: Path
) -> AsyncIterator[Pool]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers or "",
        "MODQ_TOPIC_PREFIX": s.topic_prefix,
        "MODQ_PROCESSING_GUARANTEE": s.processing_guarantee.value,
    }
    pool = Pool({wid: WorkerProcess(wid, cls, env=env, log_dir=log_dir) for wid, cls in layout})
    for worker in pool.workers.values():
        worker.start()
    supervisor = asyncio.create_task(pool.supervise())
    try:
        yield pool
    finally:
        supervisor.cancel()
        await asyncio.wait([supervisor])
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in pool.workers.values()))


def one_per_class(run: str) -> list[tuple[str, QueueClass]]:
    return [(f"{run}-{c.value.replace('_', '-')}", c) for c in QueueClass]


Fault = Callable[[Pool], Awaitable[str]]


async def run_scenario(
    s: Settings,
    plan: Sequence[PlannedRecord],
    pool: Pool,
    *,
    rate_per_s: float | None,
    fault: Fault | None = None,
    deadline_s: float = 900.0,
) -> tuple[History, str]:
    """Publish ``plan`` while ``fault`` runs, wait for every outcome and quiescence."""
    names = TopicNames.from_prefix(s.topic_prefix)
    bootstrap = s.kafka_bootstrap_servers or ""
    began = time.monotonic()

    def send() -> list[SubmittedRecord]:
        with LoggingPublisher(s) as publisher:
            return publisher.publish(plan, rate_per_s=rate_per_s, flush_timeout_s=300)

    publishing = asyncio.create_task(asyncio.to_thread(send))
    fault_note = await fault(pool) if fault is not None else "no fault"
    log = await publishing
    published_s = time.monotonic() - began

    def record() -> History:
        with HistoryRecorder(bootstrap, names) as recorder:
            recorder.wait_for_outcomes(log, deadline_s)
            return recorder.wait_quiescent(list(QueueClass), 120, submitted=log)

    history = await asyncio.to_thread(record)
    total_s = time.monotonic() - began
    figures = (
        f"{len(log)} published in {published_s:.1f} s, all outcomes after {total_s:.1f} s "
        f"({len(log) / total_s:.0f} records/s end to end); {fault_note}; "
        f"worker restarts by the supervisor: {pool.restarts}"
    )
    return history, figures


def judge(history: History, guarantee: ProcessingGuarantee, title: str, figures: str) -> Report:
    report = check(history, guarantee)
    dups = report.count(Violation.DUPLICATE_DECISIONS)
    print_report(report, title=title, figures=f"{figures}; duplicate decisions: {dups}")
    assert report.ok, report.failures
    assert report.decided + report.count(Violation.UNRESOLVED) == report.valid
    return report


@asynccontextmanager
async def provisioned(s: Settings, replication: int = 1) -> AsyncIterator[Settings]:
    """The scenario's topics, created and deleted off the event loop (a proxy may run on it)."""
    config = {"bootstrap.servers": s.kafka_bootstrap_servers or ""}
    specs = topic_specs(s, replication_factor=replication)
    await asyncio.to_thread(ensure_topics, config, specs)
    try:
        yield s
    finally:
        await asyncio.to_thread(delete_topics, config, [spec.name for spec in specs])


# --- scenarios on the session broker ----------------------------------------------------------


@pytest.mark.parametrize("guarantee", BOTH)
async def test_1_baseline_100k(
    settings: Settings, unique: str, tmp_path: Path, guarantee: ProcessingGuarantee
) -> None:
    s = settings.model_copy(update={"processing_guarantee": guarantee})
    plan = mixed_workload(unique, total=scaled(100_000), forum_topics=1000, pairs=500,
                          new_topics=scaled(5000))  # fmt: skip
    async with worker_pool(s, one_per_class(unique), tmp_path) as pool:
        history, figures = await run_scenario(s, plan, pool, rate_per_s=None)
    report = judge(history, guarantee, f"scenario 1 baseline ({guarantee.value})", figures)
    assert report.count(Violation.DUPLICATE_DECISIONS) == 0  # no fault: nothing redelivered


def redelivery_bound(s: Settings, kills: int, rate_per_s: float) -> int:
    """The most decisions at-least-once may repeat after ``kills`` kill -9 of a worker.

    A worker commits every ``COMMIT_INTERVAL_S`` (finished offsets past the commit point go in
    the commit metadata, and the next owner skips them). So a kill repeats at most what was
    in flight (``max_in_flight_keys`` lanes, or one batch of ``batch_size``) plus what
    finished since the last commit: the offered rate over one commit interval, with 0.4 s of
    slack for the commit round trip and for delivery acknowledgements still on the way.
    """
    in_flight = s.max_in_flight_keys + s.batch_size
    since_commit = math.ceil(rate_per_s * (COMMIT_INTERVAL_S + 0.4))
    return kills * (in_flight + since_commit)


@pytest.mark.parametrize("guarantee", BOTH)
async def test_2_kill_a_worker_every_10_s(
    settings: Settings, unique: str, tmp_path: Path, guarantee: ProcessingGuarantee
) -> None:
    s = settings.model_copy(update={"processing_guarantee": guarantee})
    duration = 120.0 * SCALE
    rate = 100.0
    plan = mixed_workload(unique, total=int(duration * rate), new_topics=scaled(500))
    rng = random.Random(2)

    async def killer(pool: Pool) -> str:
        kills = 0
        end = time.monotonic() + duration
        while time.monotonic() < end:
            await asyncio.sleep(10)  # the fault schedule: one kill every 10 s
            worker = pool.workers[rng.choice(sorted(pool.workers))]
            if worker.alive() and faults.kill9(worker.pid):
                kills += 1  # the supervisor restarts it
        return f"{kills} kill -9 in {duration:.0f} s"

    async with worker_pool(s, one_per_class(unique), tmp_path) as pool:
        history, figures = await run_scenario(s, plan, pool, rate_per_s=rate, fault=killer)
        kills = pool.restarts
    bound = redelivery_bound(s, kills, rate)
    title = f"scenario 2 kill -9 every 10 s ({guarantee.value})"
    report = judge(history, guarantee, title, f"{figures}; redelivery bound {bound}")
    dups = report.count(Violation.DUPLICATE_DECISIONS)
    if guarantee is ProcessingGuarantee.EXACTLY_ONCE:
        assert dups == 0
    else:
        assert dups <= bound, f"{dups} repeated decisions over {kills} kills, bound {bound}"


async def test_4_zombie_worker_is_fenced(settings: Settings, unique: str, tmp_path: Path) -> None:
    s = settings.model_copy(update={"processing_guarantee": ProcessingGuarantee.EXACTLY_ONCE})
    rate = 100.0
    freeze_s = 20.0  # past the broker's 6 s consumer session timeout
    plan = mixed_workload(unique, total=int(rate * (freeze_s + 20)), new_topics=0, pm_share=0.0)
    layout = [(f"{unique}-z1", QueueClass.TOPIC_POSTS), (f"{unique}-z2", QueueClass.TOPIC_POSTS)]

    async def zombie(pool: Pool) -> str:
        await asyncio.sleep(8)  # let both workers join and work (fault schedule)
        victim = pool.workers[layout[0][0]]
        pool.held.add(victim.worker_id)
        with faults.frozen(victim.pid):
            await asyncio.sleep(freeze_s)
        pool.held.discard(victim.worker_id)
        return f"worker {victim.worker_id} SIGSTOPped for {freeze_s:.0f} s, then SIGCONTed"

    async with worker_pool(s, layout, tmp_path) as pool:
        history, figures = await run_scenario(s, plan, pool, rate_per_s=rate, fault=zombie)
    report = judge(history, ProcessingGuarantee.EXACTLY_ONCE, "scenario 4 zombie", figures)
    assert report.count(Violation.DUPLICATE_DECISIONS) == 0


# --- scenarios on dedicated clusters ----------------------------------------------------------


@dataclass
class ClusterBox:
    """The current handle of a module-wide cluster (a restarted node gets a new pid)."""

    handle: cluster.ClusterHandle


@pytest.fixture(scope="module")
def three_brokers() -> Iterator[ClusterBox]:
    name = f"chaos3-{os.getpid()}"
    box = ClusterBox(cluster.up(STATE_DIR, name=name, nodes=3))
    try:
        yield box
    finally:
        cluster.down(STATE_DIR, name=name, wipe=True)


@pytest.mark.parametrize("guarantee", BOTH)
async def test_5_partition_leader_killed(
    three_brokers: ClusterBox,
    unique: str,
    tmp_path: Path,
    guarantee: ProcessingGuarantee,
) -> None:
    box = three_brokers
    s = Settings(
        kafka_bootstrap_servers=box.handle.bootstrap,
        topic_prefix=f"c5{unique}.",
        topic_partitions=3,
        topic_replication_factor=3,
        processing_guarantee=guarantee,
        state_dir=tmp_path / "state",
    )
    rate = 150.0
    plan = mixed_workload(unique, total=scaled(9000), new_topics=scaled(300))
    names = TopicNames.from_prefix(s.topic_prefix)

    async def kill_leader(pool: Pool) -> str:
        await asyncio.sleep(15)  # mid-stream (fault schedule)
        leader = faults.partition_leader(box.handle.bootstrap, names.submissions_posts, 0)
        faults.kill_broker(box.handle, leader)
        killed_at = time.monotonic()
        await asyncio.sleep(20)  # the broker stays down for 20 s
        box.handle = await asyncio.to_thread(cluster.restart_node, box.handle, leader)
        return f"leader {leader} killed for {time.monotonic() - killed_at:.0f} s, restarted"

    async with (
        provisioned(s, replication=3),
        worker_pool(s, one_per_class(unique), tmp_path) as pool,
    ):
        history, figures = await run_scenario(s, plan, pool, rate_per_s=rate, fault=kill_leader)
    report = judge(history, guarantee, f"scenario 5 leader kill ({guarantee.value})", figures)
    assert report.count(Violation.LOST) == 0


async def test_6_proxy_cuts_the_broker_for_30_s(unique: str, tmp_path: Path) -> None:
    name = f"chaos6-{os.getpid()}"
    port = cluster.free_port()
    async with TcpProxy(upstream_port=port) as proxy:
        handle = await asyncio.to_thread(
            cluster.up, STATE_DIR, name=name, nodes=1, port=port, advertised_ports=[proxy.port]
        )
        try:
            s = Settings(
                kafka_bootstrap_servers=f"127.0.0.1:{proxy.port}",
                topic_prefix=f"c6{unique}.",
                topic_partitions=3,
                state_dir=tmp_path / "state",
            )
            rate = 100.0
            plan = mixed_workload(unique, total=scaled(9000), new_topics=scaled(300))

            async def cut(pool: Pool) -> str:
                await asyncio.sleep(15)  # mid-stream (fault schedule)
                cut_connections = await proxy.partition()
                await asyncio.sleep(30)  # the outage itself
                await proxy.resume()
                return f"proxy cut {cut_connections} connections and refused new ones for 30 s"

            async with (
                provisioned(s),
                worker_pool(s, one_per_class(unique), tmp_path) as pool,
            ):
                history, figures = await run_scenario(s, plan, pool, rate_per_s=rate, fault=cut)
            judge(history, s.processing_guarantee, "scenario 6 proxy cut", figures)
        finally:
            await asyncio.to_thread(cluster.down, STATE_DIR, name=name, wipe=True)
        assert handle.nodes[0].port == port
