"""The control log: heartbeats, assignments, generations across failover (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.controller.control_plane import ControlLog
from orchestrator.policy import Move, MoveRule
from schemas.codec import encode
from schemas.control import WorkerAssignment, WorkerHeartbeat, WorkerState
from schemas.queues import QueueClass

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PM = QueueClass.PRIVATE_MESSAGES
POSTS = QueueClass.TOPIC_POSTS


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def hb(
    worker_id: str, sent: float, cls: QueueClass | None = PM, **kw: object
) -> tuple[bytes, bytes]:
    beat = WorkerHeartbeat.model_validate(
        {
            "worker_id": worker_id,
            "queue_class": cls,
            "state": kw.get("state", WorkerState.SERVING),
            "in_flight": 0,
            "processed": 0,
            "sent_at": at(sent),
            "last_progress_at": kw.get("progress"),
            "pid": 1,
            "host": "h",
        }
    )
    return f"hb:{worker_id}".encode(), encode(beat)


def assign(worker_id: str, gen: int, cls: QueueClass | None) -> tuple[bytes, bytes]:
    a = WorkerAssignment(
        worker_id=worker_id,
        queue_class=cls,
        generation=gen,
        reason="r",
        assigned_at=at(gen),
        controller_id="c1",
    )
    return f"assign:{worker_id}".encode(), encode(a)


def folded(*records: tuple[bytes, bytes | None]) -> ControlLog:
    log = ControlLog()
    for key, value in records:
        log.apply(key, value)
    return log


def test_the_next_generation_follows_the_highest_ever_written() -> None:
    # after compaction only each worker's latest assignment is left
    log = folded(assign("w1", 3, PM), assign("w2", 7, POSTS), hb("w1", 0))
    move = Move(worker_id="w1", from_class=PM, to_class=POSTS, rule=MoveRule.PRIORITY, reason="x")
    a = log.assignment_for(move, at(9), "c2")
    assert (a.generation, a.queue_class, a.controller_id) == (8, POSTS, "c2")
    assert a.reason == "priority: x"
    log.record(a)
    assert log.assignment_for(move, at(9), "c2").generation == 9


def test_alive_means_a_fresh_heartbeat_that_is_not_a_goodbye() -> None:
    log = folded(hb("w1", 0), hb("w2", 0, state=WorkerState.STOPPING))
    assert log.is_alive("w1", at(3), 3.0)
    assert not log.is_alive("w1", at(3.1), 3.0)
    assert not log.is_alive("w2", at(0), 3.0)
    assert not log.is_alive("w3", at(0), 3.0)


def test_workers_hold_their_assignment_else_what_they_serve() -> None:
    log = folded(hb("w1", 0, PM), hb("w2", 0, None), assign("w2", 1, POSTS))
    workers = {w.worker_id: w for w in log.workers(at(1), 3.0, 60.0)}
    assert workers["w1"].queue_class is PM
    assert workers["w1"].assigned_at is None
    assert workers["w2"].queue_class is POSTS
    assert workers["w2"].assigned_at == at(1)


def test_a_dead_worker_is_reported_lost_once() -> None:
    log = folded(hb("w1", 0, PM))
    first = log.workers(at(10), 3.0, 60.0, previous={"w1": PM})
    assert (first[0].alive, first[0].queue_class) == (False, PM)
    later = log.workers(at(11), 3.0, 60.0, previous={})
    assert later[0].queue_class is None
    assert log.workers(at(100), 3.0, 60.0) == [], "forgotten after forget_seconds"


def test_tombstones_and_foreign_or_malformed_records_are_handled() -> None:
    log = folded(hb("w1", 0), assign("w1", 2, PM), (b"assign:w1", None), (b"other", b"x"))
    log.apply(b"hb:w2", b"not json")
    log.apply(None, b"x")
    assert "w1" not in log.assignments
    assert log.max_generation == 2, "a tombstone never lowers the generation"
    assert set(log.heartbeats) == {"w1"}


def test_an_older_assignment_never_replaces_a_newer_one() -> None:
    log = folded(assign("w1", 5, POSTS), assign("w1", 4, PM))
    assert log.assignments["w1"].generation == 5


def test_seed_state_takes_alive_workers_classes_and_assignment_times() -> None:
    log = folded(hb("w1", 0), assign("w1", 2, PM), hb("w2", -50))
    state = log.seed_state(log.workers(at(1), 3.0, 60.0))
    assert state.assignments == {"w1": PM}
    assert state.last_move_at == {"w1": at(2)}


def test_heartbeat_progress_per_class_from_alive_workers() -> None:
    log = folded(hb("w1", 0, PM, progress=at(-1)), hb("w2", 0, PM, progress=at(-0.5)))
    assert log.heartbeat_progress(at(1), 3.0) == {PM: at(-0.5)}
    assert log.heartbeat_progress(at(10), 3.0) == {}
