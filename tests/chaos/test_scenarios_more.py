"""The remaining slow scenarios of issue 8 (`make chaos`). Each prints its figures.

Durations and volumes scale with ``CHAOS_SCALE`` (default 1.0: the issue's figures). Workers
are real ``modq worker`` subprocesses (:func:`chaos.scenarios.worker_pool`, which restarts and
counts any that exits).

3. a worker moved between ``topic_posts`` and ``private_messages`` every 5 s for 2 minutes by
   assignments written to the control topic (what the leading controller writes; no controller
   runs), both guarantees: 0 lost, 0 duplicates, and partitions that do not move never stall
   for more than 1 s;
7. poison records and a policy that fails every attempt on one key: DLQ precision and recall
   100 %, other keys' p99 latency ≤ 1.2× a baseline without poison, the poisoned key moves on
   after its retry budget;
8. fuzzing: 10,000 hypothesis-generated payloads: no worker crash or restart, nothing stuck,
   every invalid payload in the DLQ;
9. the ``modq dashboard`` process SIGSTOPped for 60 s: moderation throughput ≥ 95 % of
   baseline, and the dashboard shows the newest visualization record within 30 s of SIGCONT.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaos import faults
from chaos.checker import Report, Violation, check, dead_letter_scores
from chaos.fuzz import generate_cases, plan_fuzz
from chaos.history import History, SubmittedRecord
from chaos.phases import (
    end_offset,
    load_average,
    names_of,
    publish_checked,
    publish_marker,
    quiescent_history,
    throughput,
    timings_of,
    wait_outcomes,
)
from chaos.policies import POISON_MARKER
from chaos.report import print_report
from chaos.scenarios import (
    ServiceProcess,
    first_decisions,
    latencies_ms,
    partition_records,
    percentile,
    publish_assignment,
    stalls,
    worker_env,
    worker_pool,
    workers_by_partition,
)
from chaos.workload import (
    PlannedRecord,
    expected_dead,
    mixed_workload,
    poison_workload,
    post,
)
from orchestrator.localkafka import cluster
from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

SCALE = float(os.environ.get("CHAOS_SCALE", "1.0"))
BOTH = list(ProcessingGuarantee)


def scaled(n: float) -> int:
    return max(1, int(n * SCALE))


def one_per_class(run: str) -> list[tuple[str, QueueClass]]:
    return [(f"{run}-{c.value.replace('_', '-')}", c) for c in QueueClass]


def judge(history: History, guarantee: ProcessingGuarantee, title: str, figures: str) -> Report:
    report = check(history, guarantee)
    print_report(report, title=title, figures=figures)
    assert report.ok, report.failures
    assert report.count(Violation.UNRESOLVED) == 0
    return report


# --- 3: a worker moved every 5 s ------------------------------------------------------------


def test_stalls_on_a_known_timeline() -> None:
    """The measure behind "keeps flowing": time with undecided work and no decision."""
    # (submitted, decided): steady flow, then a 1.5 s pause with work waiting, then idle time
    # with nothing pending (not a stall), then one record decided 0.3 s after it arrived.
    records = [(0, 100), (50, 150), (100, 200), (300, 1800), (400, 1850), (5000, 5300)]
    found = stalls(records, since_ms=0)
    assert [x.ms for x in found][:3] == [1500, 300, 100]
    assert (found[0].start_ms, found[0].end_ms) == (300, 1800)
    assert stalls(records, since_ms=1000)[0].ms == 800
    assert stalls([], since_ms=0) == []


@pytest.mark.parametrize("guarantee", BOTH)
async def test_3_worker_moved_every_5_s(
    settings: Settings, unique: str, tmp_path: Path, guarantee: ProcessingGuarantee
) -> None:
    s = settings.model_copy(update={"processing_guarantee": guarantee})
    mover = f"{unique}-mover"
    layout = [*one_per_class(unique), (mover, QueueClass.TOPIC_POSTS)]
    duration, rate, every = 120.0 * SCALE, 100.0, 5.0
    warm = mixed_workload(f"{unique}w", total=300, new_topics=20)
    plan = mixed_workload(unique, total=int(duration * rate), new_topics=scaled(500))
    began_load = load_average()

    moved_at_ms: list[int] = []

    async def move_every_5_s() -> int:
        moves = 0
        began = time.monotonic()
        while (moves + 1) * every <= duration:
            wait = began + (moves + 1) * every - time.monotonic()
            await asyncio.sleep(max(0.0, wait))  # the fault schedule: a move every 5 s
            moves += 1
            moved_at_ms.append(int(time.time() * 1000))
            target = QueueClass.PRIVATE_MESSAGES if moves % 2 else QueueClass.TOPIC_POSTS
            await asyncio.to_thread(
                publish_assignment, s, mover, target, moves, "chaos: move every 5 s"
            )
        return moves

    async with worker_pool(layout, worker_env(s), tmp_path) as pool:
        warm_log = await asyncio.to_thread(publish_checked, s, warm)
        await asyncio.to_thread(wait_outcomes, s, warm_log)
        since_ms = int(time.time() * 1000)
        publishing = asyncio.create_task(asyncio.to_thread(publish_checked, s, plan, rate))
        moves = await move_every_5_s()
        log = await publishing
        history = await asyncio.to_thread(quiescent_history, s, [*warm_log, *log])
        restarts = pool.restarts
    mover_log = pool.workers[mover].log_path.read_text("utf-8", "replace")
    applied = mover_log.count("assignment ")
    timings = await asyncio.to_thread(timings_of, s)

    ids = {p.id for p in plan}
    owners = workers_by_partition(timings, ids)
    by_partition = {
        f"{p.topic.rsplit('.', 1)[-1]}/{p.partition}": stalls(recs, since_ms=since_ms)
        for p, recs in partition_records(timings, ids).items()
    }
    longest = {k: found[0].ms if found else 0 for k, found in sorted(by_partition.items())}
    unmoved = {
        f"{p.topic.rsplit('.', 1)[-1]}/{p.partition}" for p, w in owners.items() if len(w) == 1
    }
    over = sorted(
        (stall for k in unmoved for stall in by_partition[k] if stall.ms > 1000),
        key=lambda stall: stall.start_ms,
    )
    after_move = []
    for stall in over:
        k = max((i for i, t in enumerate(moved_at_ms) if t <= stall.start_ms), default=0)
        towards = "pm" if k % 2 == 0 else "posts"  # move k + 1: odd moves go to PMs
        after_move.append(f"{stall.start_ms - moved_at_ms[k]} ms after a move to {towards}")
    worst = max((longest[k] for k in unmoved), default=0)
    mover_classes = {
        d.source.topic.rsplit(".", 1)[-1]
        for d in timings.decisions
        if d.worker_id == mover and d.submission_id in ids
    }
    figures = (
        f"{len(log)} published at {rate:.0f}/s; {moves} assignments published, {applied} applied "
        f"by the mover, which decided records of {sorted(mover_classes)}; longest stall per "
        f"partition (ms) {longest}; partitions that never changed owner {sorted(unmoved)}: "
        f"longest stall {worst} ms, {len(over)} stalls over 1 s "
        f"({[stall.ms for stall in over]} ms, starting {after_move}); "
        f"worker restarts {restarts}; "
        f"{began_load} at start, {load_average()} at end"
    )
    report = judge(history, guarantee, f"scenario 3 moves every 5 s ({guarantee.value})", figures)
    assert report.count(Violation.LOST) == 0
    assert report.count(Violation.DUPLICATE_DECISIONS) == 0
    assert restarts == 0
    assert applied >= moves
    assert mover_classes == {"posts", "private_messages"}, "the mover never served both classes"
    assert worst <= 1000, longest


# --- 7: poison and the latency of everyone else ------------------------------------------------


POISON_ENV = {
    "MODQ_POLICY": "chaos.policies:PoisonKeyPolicy",
    "MODQ_MAX_RECORD_BYTES": "4096",
    "MODQ_MAX_ATTEMPTS": "5",
    "MODQ_RETRY_BACKOFF_SECONDS": "0.1",
}
RETRY_BUDGET_S = 0.1 + 0.2 + 0.4 + 0.8
"""Back-off between the five attempts: what a poisoned record holds its key for."""


def poisoned_phase(run: str, total: int) -> tuple[list[PlannedRecord], list[PlannedRecord]]:
    """A mixed workload with invalid records every 50 and a poisoned key every 100 records
    (every third of those fails in the policy). Returns (plan, the poisoned key's records)."""
    base = mixed_workload(run, total=total, new_topics=total // 20)
    invalid = poison_workload(run, oversize_bytes=5000)
    key = f"{run}-poisoned"
    plan: list[PlannedRecord] = []
    keyed: list[PlannedRecord] = []
    for i, record in enumerate(base):
        plan.append(record)
        if i % 50 == 25:
            plan.append(invalid[(i // 50) % len(invalid)])
        if i % 100 == 0:
            n = len(keyed)
            body = f"{POISON_MARKER} number {n}" if n % 3 == 0 else f"fine number {n}"
            keyed.append(post(run, key, n, body=body))
            plan.append(keyed[-1])
    return plan, keyed


async def test_7_poison_does_not_slow_other_keys(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"max_record_bytes": 4096})
    rate, phase_s = 100.0, 30.0 * SCALE
    total = int(rate * phase_s)
    began_load = load_average()
    phases: dict[str, list[SubmittedRecord]] = {}
    keyed: list[PlannedRecord] = []
    async with worker_pool(one_per_class(unique), worker_env(s, **POISON_ENV), tmp_path) as pool:
        warm = mixed_workload(f"{unique}w", total=300, new_topics=20)
        phases["warm"] = await asyncio.to_thread(publish_checked, s, warm)
        await asyncio.to_thread(wait_outcomes, s, phases["warm"])
        for name in ("b1", "p1", "b2", "p2"):  # baseline and poison phases interleaved
            run = f"{unique}{name}"
            if name.startswith("b"):
                plan = mixed_workload(run, total=total, new_topics=total // 20)
            else:
                plan, phase_keyed = poisoned_phase(run, total)
                keyed += phase_keyed
            phases[name] = await asyncio.to_thread(publish_checked, s, plan, rate)
            await asyncio.to_thread(wait_outcomes, s, phases[name])
        log = [r for records in phases.values() for r in records]
        history = await asyncio.to_thread(quiescent_history, s, log)
        restarts = pool.restarts
    timings = await asyncio.to_thread(timings_of, s)

    keyed_ids = {p.id for p in keyed}
    failing_ids = {p.id for p in keyed if POISON_MARKER.encode() in (p.value or b"")}

    def p99(names: Sequence[str]) -> float:
        ids = {r.id for n in names for r in phases[n] if r.valid and r.id not in keyed_ids}
        return percentile(latencies_ms(timings, ids).values(), 99)

    base_p99, poison_p99 = p99(["b1", "b2"]), p99(["p1", "p2"])
    expected = {*expected_dead(log), *(r.position for r in log if r.id in failing_ids)}
    scores = dead_letter_scores(history, expected)
    keyed_latency = latencies_ms(timings, keyed_ids)
    first = first_decisions(timings.decisions)
    failing_latency = sorted(keyed_latency[i] for i in failing_ids)
    behind = max(keyed_latency[i] for i in keyed_ids - failing_ids)
    verdicts = Counter(first[i].verdict for i in keyed_ids)
    errors = Counter(d.error_type for d in history.dead_letters)
    unexpected = [d.source for d in history.dead_letters if d.source not in expected][:3]
    figures = (
        f"{len(log)} published (300 warm-up, then 4 phases of {phase_s:.0f} s at {rate:.0f}/s); "
        f"other keys' p99 latency {poison_p99:.0f} ms with poison vs {base_p99:.0f} ms baseline "
        f"({poison_p99 / base_p99:.2f}x); DLQ precision {scores.precision:.0%}, recall "
        f"{scores.recall:.0%} ({len(expected)} expected, error types {dict(errors)}, "
        f"unexpected e.g. {unexpected}); poisoned key: {dict(verdicts)}, "
        f"failing records decided after {failing_latency[0]}–{failing_latency[-1]} ms "
        f"(retry budget {RETRY_BUDGET_S * 1000:.0f} ms), its other records within {behind} ms; "
        f"worker restarts {restarts}; "
        f"{began_load} at start, {load_average()} at end"
    )
    judge(history, ProcessingGuarantee.AT_LEAST_ONCE, "scenario 7 poison latency", figures)
    assert (scores.precision, scores.recall) == (1.0, 1.0)
    assert verdicts == {"failed": len(failing_ids), "approved": len(keyed_ids) - len(failing_ids)}
    assert failing_latency[0] >= RETRY_BUDGET_S * 1000, "the retries did not happen"
    assert poison_p99 <= 1.2 * base_p99


# --- 8: fuzzing ---------------------------------------------------------------------------------


async def test_8_fuzz_10k_payloads(settings: Settings, unique: str, tmp_path: Path) -> None:
    max_bytes = 131_072
    s = settings.model_copy(update={"max_record_bytes": max_bytes})
    began = time.monotonic()
    cases = generate_cases(scaled(10_000), seed_value=2026)
    plan = plan_fuzz(cases, run=unique, max_bytes=max_bytes)
    generated_s = time.monotonic() - began
    env = worker_env(s, MODQ_MAX_RECORD_BYTES=str(max_bytes))
    async with worker_pool(one_per_class(unique), env, tmp_path) as pool:
        log = await asyncio.to_thread(publish_checked, s, plan.records)
        history = await asyncio.to_thread(quiescent_history, s, log)
        alive = [w.alive() for w in pool.workers.values()]
        restarts = pool.restarts
    scores = dead_letter_scores(history, list(expected_dead(log)))
    errors = Counter(d.error_type for d in history.dead_letters)
    figures = (
        f"{len(log)} payloads generated in {generated_s:.0f} s ({plan.valid} valid, "
        f"{plan.invalid} invalid, {plan.dropped_duplicate_ids} dropped for a repeated id), "
        f"families {plan.families}; all outcomes and commits after "
        f"{time.monotonic() - began - generated_s:.0f} s; DLQ precision {scores.precision:.0%}, "
        f"recall {scores.recall:.0%}, error types {dict(errors)}; worker restarts {restarts}, "
        f"exit statuses {[status for _w, status in pool.exits]}; {load_average()}"
    )
    report = judge(history, ProcessingGuarantee.AT_LEAST_ONCE, "scenario 8 fuzz", figures)
    assert restarts == 0
    assert all(alive)
    assert all(status == 0 for _w, status in pool.exits)
    assert report.decided == report.valid == plan.valid
    assert (scores.precision, scores.recall) == (1.0, 1.0)


# --- 9: the dashboard stopped for 60 s -------------------------------------------------------


FIXED_POOL = {
    "MODQ_TOTAL_WORKERS": "3",
    **{f"MODQ_WORKERS__{c.value.upper()}__{b}": "1" for c in QueueClass for b in ("MIN", "MAX")},
}
"""One worker per class, pinned: the controller publishes views but never moves a worker."""
PHASES = {"b": "before", "f": "dashboard stopped", "a": "after"}


async def api_state(client: httpx.AsyncClient, query: str = "") -> dict[str, Any] | None:
    try:
        response = await client.get(f"/api/state{query}", timeout=5)
    except httpx.TransportError:
        return None
    body: dict[str, Any] = response.json()
    return body if response.status_code == 200 else None


async def until(condition: Callable[[], Awaitable[bool]], deadline_s: float, what: str) -> float:
    """Poll the async ``condition`` every 0.2 s until true; the seconds it took."""
    began = time.monotonic()
    while not await condition():
        if time.monotonic() - began > deadline_s:
            raise TimeoutError(f"{what}: not within {deadline_s:.0f} s")
        await asyncio.sleep(0.2)  # polling an HTTP endpoint, not synchronisation
    return time.monotonic() - began


async def test_9_dashboard_stopped_for_60_s(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    s = settings
    freeze_s, per_phase = 60.0, scaled(20_000)
    port = cluster.free_port()
    env = worker_env(s, **FIXED_POOL)
    controller = ServiceProcess(
        "controller", ["controller", "--id", f"{unique}-c1"], env=env, log_dir=tmp_path
    )
    dashboard = ServiceProcess(
        "dashboard",
        ["dashboard", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        log_dir=tmp_path,
    )
    marker = f"{unique}-catchup"
    began_load = load_average()
    phases: dict[str, list[SubmittedRecord]] = {}

    async def phase(name: str) -> None:
        plan = mixed_workload(f"{unique}{name}", total=per_phase, new_topics=per_phase // 20)
        phases[name] = await asyncio.to_thread(publish_checked, s, plan)
        await asyncio.to_thread(wait_outcomes, s, phases[name])

    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        worker_pool(one_per_class(unique), env, tmp_path) as pool,
    ):
        controller.start()
        dashboard.start()
        try:

            async def live() -> bool:
                state = await api_state(client)
                return state is not None and state["feed"]["status"] == "live"

            ready_s = await until(live, 120, "dashboard live")
            await phase("b")
            visualization = names_of(s).visualization
            with faults.frozen(dashboard.pid):
                frozen_at = time.monotonic()
                backlog_from = await asyncio.to_thread(end_offset, s, visualization)
                await phase("f")
                frozen_phase_s = time.monotonic() - frozen_at
                await asyncio.sleep(max(0.0, freeze_s - frozen_phase_s))  # the fault: 60 s stopped
                await asyncio.to_thread(publish_marker, s, f"topic_{marker}")
                backlog = await asyncio.to_thread(end_offset, s, visualization) - backlog_from
                stopped_s = time.monotonic() - frozen_at

            async def caught_up() -> bool:
                state = await api_state(client, f"?q={marker}")
                return state is not None and state["key_queues"]["matching"] == 1

            catch_up_s = await until(caught_up, 120, "dashboard caught up")
            await phase("a")
            log = [r for records in phases.values() for r in records]
            history = await asyncio.to_thread(quiescent_history, s, log)
            restarts = pool.restarts
            services_alive = controller.alive() and dashboard.alive()
        finally:
            statuses = await asyncio.gather(
                asyncio.to_thread(dashboard.stop), asyncio.to_thread(controller.stop)
            )
    timings = await asyncio.to_thread(timings_of, s)
    rates = {name: throughput(timings, records) for name, records in phases.items()}
    baseline = (rates["b"][0] + rates["a"][0]) / 2
    moves = sum(
        w.log_path.read_text("utf-8", "replace").count("assignment ") for w in pool.workers.values()
    )
    figures = (
        f"dashboard live after {ready_s:.1f} s; {per_phase} records per phase; throughput "
        + ", ".join(f"{PHASES[n]} {r:.0f}/s ({t:.1f} s)" for n, (r, t) in rates.items())
        + f"; frozen / baseline (mean of before and after) = {rates['f'][0] / baseline:.2f}; "
        f"dashboard SIGSTOPped {stopped_s:.1f} s (the frozen phase took {frozen_phase_s:.1f} s); "
        f"{backlog} visualization records published meanwhile (the marker last); the marker on "
        f"/api/state {catch_up_s:.1f} s after SIGCONT; worker "
        f"assignments applied {moves}; worker restarts {restarts}; dashboard and controller exit "
        f"statuses {statuses}; {began_load} at start, {load_average()} at end"
    )
    judge(history, ProcessingGuarantee.AT_LEAST_ONCE, "scenario 9 dashboard stopped", figures)
    assert services_alive
    assert frozen_phase_s < freeze_s, "the frozen phase must run while the dashboard is stopped"
    assert rates["f"][0] >= 0.95 * baseline
    assert catch_up_s <= 30.0
