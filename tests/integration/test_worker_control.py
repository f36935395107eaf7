"""Switching classes mid-stream, heartbeats out and assignments in over the control topic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.codec import decode_control, encode
from schemas.control import (
    WorkerAssignment,
    WorkerHeartbeat,
    WorkerState,
    assignment_key,
    heartbeat_key,
)
from schemas.queues import QueueClass
from schemas.settings import Settings
from streams.moderation.testing import DelayPolicy
from streams.worker import Worker
from tests.integration.worker_support import (
    Out,
    check_order,
    interleaved_posts,
    message,
    post,
    publish,
    publish_submissions,
    read_until,
    reader,
    running_worker,
    topics_of,
    wait_for,
    with_,
)


def _serving(worker: Worker, queue_class: QueueClass) -> bool:
    session = worker.session
    return session is not None and session.queue_class is queue_class and bool(session.assigned)


async def test_switching_class_mid_stream_loses_and_duplicates_nothing(settings: Settings) -> None:
    s = with_(settings, max_in_flight_keys=4)
    first = interleaved_posts(keys=60, per_key=10)
    second = [post(f"k{k}", seq) for seq in range(10, 14) for k in range(60)]
    pms = [message(f"a{i}", f"b{i}", seq) for seq in range(10) for i in range(10)]
    publish_submissions(s, first + pms)
    policy = DelayPolicy(delay_seconds=0.02)

    def count(kind: str) -> int:
        return sum(1 for i in policy.finished if i.startswith(kind))

    with reader(s, topics_of(s).decisions) as decisions:
        async with running_worker(s, "ws", QueueClass.TOPIC_POSTS, policy) as worker:
            await wait_for(lambda: count("k") >= 100, 30, "100 posts decided")
            worker.switch_to(QueueClass.PRIVATE_MESSAGES)
            await wait_for(lambda: count("a") >= 30, 30, "30 private messages decided")
            assert count("k") < len(first), "the switch came too late to be mid-stream"
            publish_submissions(s, second)  # more posts arrive while it serves the other class
            worker.switch_to(QueueClass.TOPIC_POSTS)
            posts_total = len(first) + len(second)
            await wait_for(lambda: count("k") >= posts_total, 60, "every post decided")
            worker.switch_to(QueueClass.PRIVATE_MESSAGES)  # and back for the rest
            total = posts_total + len(pms)
            records = await read_until(decisions, lambda r: len(r) >= total, 60)
            assert worker.switches == 3
        records = decisions.settle(quiet=1.0)

    expected = {f"k{k}": 14 for k in range(60)} | {f"a{i}_b{i}": 10 for i in range(10)}
    report = check_order(records, expected)
    report.assert_ok(allow_duplicates=False)  # graceful switches re-decide nothing
    assert len(report.decisions) == total


def _assignment(worker_id: str, cls: QueueClass | None, generation: int) -> bytes:
    return encode(
        WorkerAssignment(
            worker_id=worker_id,
            queue_class=cls,
            generation=generation,
            reason="test",
            assigned_at=datetime.now(UTC),
            controller_id="test-controller",
        )
    )


def _beats(records: list[Out], worker_id: str) -> list[WorkerHeartbeat]:
    key = heartbeat_key(worker_id).encode()
    beats = [decode_control(r.value) for r in records if r.key == key]
    return [b for b in beats if isinstance(b, WorkerHeartbeat)]


async def test_heartbeats_go_out_and_newer_assignments_move_the_worker(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = with_(settings, heartbeat_seconds=0.2)
    control = topics_of(s).control
    applied: list[int] = []
    original = Worker.assign

    def spy(self: Worker, assignment: WorkerAssignment) -> None:
        applied.append(assignment.generation)
        original(self, assignment)

    monkeypatch.setattr(Worker, "assign", spy)
    key = assignment_key("wc").encode()
    with reader(s, control) as beats:
        async with running_worker(s, "wc", QueueClass.TOPIC_POSTS, DelayPolicy()) as worker:
            await wait_for(lambda: _serving(worker, QueueClass.TOPIC_POSTS), 30, "serving posts")

            def beat_says(cls: QueueClass) -> bool:
                return any(
                    b.queue_class is cls and b.state is WorkerState.SERVING
                    for b in _beats(beats.records, "wc")
                )

            await read_until(beats, lambda _r: beat_says(QueueClass.TOPIC_POSTS), 20)
            assert beat_says(QueueClass.TOPIC_POSTS)

            publish(s, control, [(key, _assignment("wc", QueueClass.PRIVATE_MESSAGES, 5))])
            await wait_for(lambda: _serving(worker, QueueClass.PRIVATE_MESSAGES), 30, "switch")
            await read_until(beats, lambda _r: beat_says(QueueClass.PRIVATE_MESSAGES), 20)
            assert beat_says(QueueClass.PRIVATE_MESSAGES)
            assert worker.generation == 5

            # an older generation is ignored; the next newer one applies
            publish(
                s,
                control,
                [
                    (key, _assignment("wc", QueueClass.TOPIC_POSTS, 3)),
                    (assignment_key("other").encode(), _assignment("other", None, 9)),
                    (key, _assignment("wc", QueueClass.GLOBAL_TOPICS, 6)),
                ],
            )
            await wait_for(lambda: _serving(worker, QueueClass.GLOBAL_TOPICS), 30, "switch")
            assert applied == [5, 6]
            assert worker.generation == 6
        final = beats.settle(quiet=0.5)
    last = _beats(final, "wc")[-1]
    assert last.state is WorkerState.STOPPING
    assert last.generation == 6
