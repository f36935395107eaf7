"""Quick tier of the reliability harness (issue 8): one broker, real workers, the checker.

(a) a mixed baseline is decided completely, once, in order, under both guarantees;
(b) poison records go to the DLQ with 100 % precision and recall, a failing policy gives a
    DLQ record and a ``failed`` decision, and everything else is decided in order;
(c) a worker subprocess killed with ``kill -9`` mid-stream and restarted loses nothing and
    keeps per-key order; under exactly-once it also decides nothing twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from chaos.checker import Report, Violation, check, dead_letter_scores
from chaos.faults import kill9
from chaos.history import History, SubmittedRecord
from chaos.processes import WorkerProcess
from chaos.recorder import HistoryRecorder, RecorderTimeoutError
from chaos.report import print_report
from chaos.workload import (
    LoggingPublisher,
    PlannedRecord,
    expected_dead,
    mixed_workload,
    poison_workload,
    post,
)
from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings
from schemas.topics import TopicNames
from streams.moderation import Policy
from streams.moderation.testing import FailingPolicy
from streams.worker import serve_worker

ALL_CLASSES = tuple(QueueClass)
BOTH = list(ProcessingGuarantee)
OUTCOME_DEADLINE_S = 120.0
QUIET_DEADLINE_S = 60.0


@asynccontextmanager
async def in_process_workers(
    settings: Settings, run: str, policy: Policy | None = None
) -> AsyncIterator[None]:
    """One in-process worker per queue class; drained and stopped on exit."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            serve_worker(
                settings,
                worker_id=f"{run}-{queue_class.value.replace('_', '-')}",
                initial_class=queue_class,
                stop=stop,
                policy=policy,
            )
        )
        for queue_class in ALL_CLASSES
    ]
    try:
        yield
    finally:
        stop.set()
        done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        failures = [r for r in done if isinstance(r, BaseException)]
        assert not failures, failures


async def publish(
    settings: Settings, plan: Sequence[PlannedRecord], **kw: float
) -> list[SubmittedRecord]:
    def send() -> list[SubmittedRecord]:
        with LoggingPublisher(settings) as publisher:
            return publisher.publish(plan, **kw)

    return await asyncio.to_thread(send)


async def record(
    settings: Settings, log: Sequence[SubmittedRecord], classes: Sequence[QueueClass]
) -> History:
    """Wait for every outcome and for the workers to commit, then return the history."""
    names = TopicNames.from_prefix(settings.topic_prefix)
    bootstrap = settings.kafka_bootstrap_servers or ""

    def run() -> History:
        with HistoryRecorder(bootstrap, names) as recorder:
            recorder.wait_for_outcomes(log, OUTCOME_DEADLINE_S)
            history = recorder.wait_quiescent(classes, QUIET_DEADLINE_S, submitted=log)
            assert not recorder.malformed, recorder.malformed[:3]
            return history

    return await asyncio.to_thread(run)


def assert_clean(report: Report, title: str) -> None:
    print_report(report, title=title)
    assert report.ok, report.failures
    for violation in (Violation.LOST, Violation.UNRESOLVED, Violation.ORDER):
        assert report.count(violation) == 0


@pytest.mark.parametrize("guarantee", BOTH)
async def test_baseline_mixed_workload(
    settings: Settings, unique: str, guarantee: ProcessingGuarantee
) -> None:
    s = settings.model_copy(update={"processing_guarantee": guarantee})
    plan = mixed_workload(unique, total=2000, forum_topics=100, pairs=50, new_topics=200)
    kinds = Counter(p.kind for p in plan)
    assert kinds == {
        "post": kinds["post"],
        "private_message": kinds["private_message"],
        "topic": 200,
    }
    async with in_process_workers(s, unique):
        log = await publish(s, plan)
        history = await record(s, log, ALL_CLASSES)
    report = check(history, guarantee)
    assert_clean(report, f"baseline {guarantee.value}")
    assert (report.submitted, report.decided) == (2000, 2000)
    assert report.count(Violation.DUPLICATE_DECISIONS) == 0
    assert report.count(Violation.PRIVATE_BODY_LEAKS) == 0
    assert report.dead_letters_total == 0


async def test_poison_records_go_to_the_dlq_and_nothing_else_does(
    settings: Settings, unique: str
) -> None:
    s = settings.model_copy(
        update={"max_record_bytes": 4096, "max_attempts": 2, "retry_backoff_seconds": 0.01}
    )
    marker = f"FAILME-{unique}"
    failing = [post(unique, f"{unique}-doomed", i, body=f"{marker} number {i}") for i in range(8)]
    plan = [*mixed_workload(unique, total=600, new_topics=50), *failing]
    plan += poison_workload(unique, oversize_bytes=5000)
    policy = FailingPolicy(fail_on_substring=marker, always=True, retryable=True)
    async with in_process_workers(s, unique, policy=policy):
        log = await publish(s, plan)
        history = await record(s, log, ALL_CLASSES)
    report = check(history, ProcessingGuarantee.AT_LEAST_ONCE)
    assert_clean(report, "poison")

    failing_ids = {p.id for p in failing}
    expected = {*expected_dead(log), *(r.position for r in log if r.id in failing_ids)}
    assert len(expected) == 9 + 8
    scores = dead_letter_scores(history, expected)
    print(f"[poison] DLQ precision {scores.precision:.0%}, recall {scores.recall:.0%}")
    assert (scores.precision, scores.recall) == (1.0, 1.0)
    errors = Counter(d.error_type for d in history.dead_letters)
    assert errors == {"invalid_json": 3, "invalid_utf8": 1, "oversize": 1, "validation": 4,
                      "policy_error": 8}  # fmt: skip
    verdicts = Counter(d.verdict for d in history.decided if d.submission_id in failing_ids)
    assert verdicts == {"failed": 8}
    assert report.decided == report.valid == 600 + 8


@pytest.mark.parametrize("guarantee", BOTH)
async def test_worker_killed_mid_stream_and_restarted(
    settings: Settings, unique: str, guarantee: ProcessingGuarantee, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"processing_guarantee": guarantee})
    names = TopicNames.from_prefix(s.topic_prefix)
    bootstrap = s.kafka_bootstrap_servers or ""
    plan = mixed_workload(unique, total=1500, forum_topics=100, new_topics=0, pm_share=0.0)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MODQ_TOPIC_PREFIX": s.topic_prefix,
        "MODQ_PROCESSING_GUARANTEE": guarantee.value,
    }
    worker = WorkerProcess(f"{unique}-w1", QueueClass.TOPIC_POSTS, env=env, log_dir=tmp_path)
    worker.start()
    try:
        publishing = asyncio.create_task(publish(s, plan, rate_per_s=250.0))

        def kill_after_progress() -> int:
            with HistoryRecorder(bootstrap, names, visualization=False) as recorder:
                recorder.wait_for_outcomes(
                    (), OUTCOME_DEADLINE_S, until=lambda r: len(r.decided_ids) >= 200
                )
                assert kill9(worker.pid)
                worker.wait_exit(10)
                recorder.read()
                return len(recorder.decided_ids)

        try:
            decided_at_kill = await asyncio.to_thread(kill_after_progress)
        except RecorderTimeoutError:
            pytest.fail(f"worker made no progress:\n{worker.log_tail()}")
        assert not publishing.done() or decided_at_kill < len(plan), "kill was not mid-stream"
        worker.start()
        log = await publishing
        history = await record(s, log, [QueueClass.TOPIC_POSTS])
    finally:
        worker.stop()
    report = check(history, guarantee)
    print(f"[kill -9 {guarantee.value}] decided before the kill: {decided_at_kill} of {len(plan)}")
    assert_clean(report, f"kill -9 {guarantee.value}")
    assert report.decided == len(plan)
    if guarantee is ProcessingGuarantee.EXACTLY_ONCE:
        assert report.count(Violation.DUPLICATE_DECISIONS) == 0
