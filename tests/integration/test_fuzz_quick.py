"""Fuzzing, quick tier (issue 8, #8): ~1,000 hypothesis-generated payloads against real workers.

Random and adversarial payloads (:mod:`chaos.fuzz`) are published to the three submission
topics and served by one ``modq worker`` subprocess per queue class. Pass criteria: no worker
exits or restarts (every exit status at the final SIGTERM is 0), the workers' groups commit to
the end of every partition (nothing stuck), the checker finds nothing, and the DLQ holds
exactly the payloads :func:`schemas.codec.decode_submission` rejects (precision and recall
100 %). The slow tier (`tests/chaos/test_scenarios_more.py`, scenario 8) runs 10,000.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from chaos.checker import Violation, check, dead_letter_scores
from chaos.fuzz import FAMILIES, FuzzCase, generate_cases, plan_fuzz, render
from chaos.history import History, SubmittedRecord
from chaos.recorder import HistoryRecorder
from chaos.report import print_report
from chaos.scenarios import worker_env, worker_pool
from chaos.workload import LoggingPublisher, expected_dead
from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings
from schemas.topics import TopicNames

QUICK_PAYLOADS = 1000
MAX_BYTES = 131_072
"""The workers' ``max_record_bytes`` in the fuzz runs (near-limit payloads straddle it)."""


@pytest.fixture(scope="module")
def cases() -> list[FuzzCase]:
    return generate_cases(QUICK_PAYLOADS, seed_value=8)


def test_generated_cases_cover_every_family_and_both_outcomes(cases: list[FuzzCase]) -> None:
    plan = plan_fuzz(cases, run="r0", max_bytes=MAX_BYTES)
    assert len(cases) == QUICK_PAYLOADS
    assert set(plan.families) == set(FAMILIES)
    assert plan.valid > 50, plan.valid
    assert plan.invalid > 500, plan.invalid
    assert plan.valid + plan.invalid + plan.dropped_duplicate_ids == QUICK_PAYLOADS
    sizes = [len(r.value) for r in plan.records if r.value is not None]
    assert any(MAX_BYTES - 4 <= n <= MAX_BYTES for n in sizes)
    assert any(MAX_BYTES < n <= MAX_BYTES + 4 for n in sizes)
    ids = [r.id for r in plan.records if r.kind is not None]
    assert len(ids) == len(set(ids)), "valid payloads must have unique ids"
    again = generate_cases(30, seed_value=8)
    assert again == generate_cases(30, seed_value=8), "same seed, same payloads"
    assert again != generate_cases(30, seed_value=9)


def test_render_classifies_like_the_worker() -> None:
    template = b'{"id": "@ID@", "kind": "post", "submitted_at": "2025-01-01T00:00:00Z", '
    template += b'"topic_id": "t1", "author_id": "u1", "body": "@PAD@"}'
    fits = FuzzCase("near_limit", "post", "k", template, size_delta=0)
    over = FuzzCase("near_limit", "post", "k", template, size_delta=1)
    wrong_topic = FuzzCase("valid", "topic", "k", template.replace(b"@PAD@", b"hi"))
    ok = render(fits, run="r", index=7, max_bytes=2048)
    assert (ok.kind, ok.id, ok.key, len(ok.value or b"")) == ("post", "r-7", "t1", 2048)
    assert render(over, run="r", index=8, max_bytes=2048).kind is None
    assert render(wrong_topic, run="r", index=9, max_bytes=2048).kind is None


async def test_fuzz_payloads_reach_an_outcome_without_crashing_a_worker(
    settings: Settings, unique: str, tmp_path: Path, cases: list[FuzzCase]
) -> None:
    s = settings.model_copy(update={"max_record_bytes": MAX_BYTES})
    plan = plan_fuzz(cases, run=unique, max_bytes=MAX_BYTES)
    env = worker_env(s, MODQ_MAX_RECORD_BYTES=str(MAX_BYTES))
    layout = [(f"{unique}-{c.value.replace('_', '-')}", c) for c in QueueClass]
    names = TopicNames.from_prefix(s.topic_prefix)

    def publish_and_record() -> tuple[list[SubmittedRecord], History]:
        with LoggingPublisher(s) as publisher:
            log = publisher.publish(plan.records)
        with HistoryRecorder(s.kafka_bootstrap_servers or "", names) as recorder:
            recorder.wait_for_outcomes(log, 120)
            history = recorder.wait_quiescent(list(QueueClass), 60, submitted=log)
            assert not recorder.malformed, recorder.malformed[:3]
        return log, history

    async with worker_pool(layout, env, tmp_path) as pool:
        log, history = await asyncio.to_thread(publish_and_record)
        alive = {wid: w.alive() for wid, w in pool.workers.items()}
        restarts = pool.restarts
    tails = "\n".join(w.log_tail(15) for w in pool.workers.values())
    assert restarts == 0, f"a worker crashed and was restarted: {pool.exits}\n{tails}"
    assert all(alive.values()), f"a worker died: {alive}\n{tails}"
    assert all(status == 0 for _wid, status in pool.exits), (pool.exits, tails)

    report = check(history, ProcessingGuarantee.AT_LEAST_ONCE)
    print_report(report, title="fuzz quick")
    scores = dead_letter_scores(history, list(expected_dead(log)))
    errors = Counter(d.error_type for d in history.dead_letters)
    print(
        f"[fuzz quick] {len(plan.records)} payloads ({plan.valid} valid, {plan.invalid} "
        f"invalid, {plan.dropped_duplicate_ids} dropped for a repeated id); families "
        f"{plan.families}; DLQ precision {scores.precision:.0%}, recall {scores.recall:.0%}; "
        f"error types {dict(errors)}; worker restarts {restarts}, exits {pool.exits}"
    )
    assert report.ok, report.failures
    assert report.count(Violation.UNRESOLVED) == 0
    assert report.decided == report.valid == plan.valid
    assert (scores.precision, scores.recall) == (1.0, 1.0)
