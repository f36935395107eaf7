"""`modq worker` processes: SIGTERM drains and commits (exit 0, nothing re-decided after a
restart); SIGKILL mid-stream loses nothing (and, exactly-once, duplicates nothing)."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from schemas.codec import decode_decision
from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings
from tests.integration.worker_support import (
    TopicReader,
    check_order,
    interleaved_posts,
    publish_submissions,
    reader,
    spawn_worker,
    stop_process,
    topics_of,
    with_,
)

KEYS, PER_KEY = 50, 30
ENV = {
    "MODQ_POLICY": "streams.moderation.testing:DelayPolicy",  # 10 ms per record
    "MODQ_MAX_IN_FLIGHT_KEYS": "4",
    "MODQ_HEARTBEAT_SECONDS": "0.5",
}


def _decided(records: TopicReader) -> Counter[str]:
    return Counter(decode_decision(r.value).submission_id for r in records.records)


def _wait_decided(decisions: TopicReader, n: int, proc: subprocess.Popen[bytes], log: Path) -> int:
    decisions.read_until(lambda _r: len(_decided(decisions)) >= n or proc.poll() is not None, 60)
    got = len(_decided(decisions))
    assert got >= n, f"only {got} decided (worker exit {proc.poll()}):\n{_tail(log)}"
    return got


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


@pytest.mark.parametrize(
    "guarantee", [ProcessingGuarantee.AT_LEAST_ONCE, ProcessingGuarantee.EXACTLY_ONCE]
)
def test_sigterm_drains_and_sigkill_loses_nothing(
    settings: Settings, guarantee: ProcessingGuarantee, tmp_path: Path
) -> None:
    s = with_(settings, processing_guarantee=guarantee)
    posts = interleaved_posts(KEYS, PER_KEY)
    total = len(posts)
    publish_submissions(s, posts)
    log = tmp_path / "worker.log"

    with reader(s, topics_of(s).decisions, read_committed=True) as decisions:
        # 1. graceful: SIGTERM mid-stream drains, commits and exits 0
        proc = spawn_worker(s, "wp", QueueClass.TOPIC_POSTS, log, ENV)
        _wait_decided(decisions, 200, proc, log)
        assert stop_process(proc, signal.SIGTERM, 60) == 0, _tail(log)
        decisions.settle(quiet=1.0)
        graceful = _decided(decisions)
        assert len(graceful) < total, "SIGTERM came too late to be mid-stream"

        # 2. restart, then SIGKILL mid-stream
        proc = spawn_worker(s, "wp", QueueClass.TOPIC_POSTS, log, ENV)
        _wait_decided(decisions, len(graceful) + 200, proc, log)
        proc.kill()
        proc.wait(timeout=10)
        assert len(_decided(decisions)) < total, "SIGKILL came too late to be mid-stream"

        # 3. restart: everything gets decided
        proc = spawn_worker(s, "wp", QueueClass.TOPIC_POSTS, log, ENV)
        _wait_decided(decisions, total, proc, log)
        assert stop_process(proc, signal.SIGTERM, 60) == 0, _tail(log)
        decisions.settle(quiet=1.0)

    decided = _decided(decisions)
    report = check_order(decisions.records, {f"k{k}": PER_KEY for k in range(KEYS)})
    if guarantee is ProcessingGuarantee.EXACTLY_ONCE:
        report.assert_ok(allow_duplicates=False)
    else:
        report.assert_ok(allow_duplicates=True)
        # only the SIGKILL may cause re-decisions; what the graceful stop committed never
        redecided = [i for i in graceful if decided[i] > 1]
        assert not redecided, f"{len(redecided)} re-decided after SIGTERM: {redecided[:5]}"
