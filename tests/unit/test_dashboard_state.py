"""The dashboard's reducer and view are pure: records in, state out, staleness from ``now``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.dashboard.state import (
    HISTORY_POINTS,
    RECENT_DECISIONS,
    DashboardState,
    FeedStatus,
    RawRecord,
    apply_records,
    apply_status,
)
from orchestrator.dashboard.view import ViewOptions, render
from schemas.codec import encode
from schemas.control import WorkerState
from schemas.decisions import Verdict
from schemas.queues import QueueClass
from schemas.visualization import (
    BreakerState,
    ClassQueueView,
    ControllerDecisionView,
    KeyQueueView,
    StuckKey,
    StuckKeysView,
    VisualizationRecord,
    WorkerEntry,
    WorkerMove,
    WorkerPoolView,
    visualization_key,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def raw(record: VisualizationRecord, offset: int = 0) -> RawRecord:
    return RawRecord(visualization_key(record), encode(record), offset)


def tombstone(key: str, offset: int = 0) -> RawRecord:
    return RawRecord(key, None, offset)


def class_view(
    cls: QueueClass = QueueClass.GLOBAL_TOPICS,
    *,
    length: int = 3,
    updated: float = 0,
    breaker: BreakerState = BreakerState.CLOSED,
    in_rate: float = 1.0,
    out_rate: float = 0.5,
) -> ClassQueueView:
    return ClassQueueView(
        queue=cls,
        length=length,
        oldest_wait_seconds=4.0,
        avg_wait_seconds=2.0,
        score=12.5,
        workers_assigned=1,
        breaker=breaker,
        in_rate=in_rate,
        out_rate=out_rate,
        min_workers=1,
        max_workers=1,
        updated_at=at(updated),
    )


def key_view(name: str, pending: int, oldest: float | None, updated: float = 0) -> KeyQueueView:
    cls = QueueClass.TOPIC_POSTS if name.startswith("topic_") else QueueClass.PRIVATE_MESSAGES
    return KeyQueueView(
        queue=name,
        queue_class=cls,
        pending=pending,
        oldest_pending_at=None if oldest is None else at(oldest),
        verdicts={Verdict.APPROVED: 2},
        updated_at=at(updated),
    )


def pool(updated: float, *workers: WorkerEntry) -> WorkerPoolView:
    return WorkerPoolView(workers=workers, updated_at=at(updated))


def worker(worker_id: str, age: float, alive: bool = True) -> WorkerEntry:
    return WorkerEntry(
        worker_id=worker_id,
        queue_class=QueueClass.TOPIC_POSTS,
        state=WorkerState.SERVING,
        in_flight=2,
        heartbeat_age_seconds=age,
        alive=alive,
    )


def decision(decided: float, updated: float, reason: str = "score") -> ControllerDecisionView:
    return ControllerDecisionView(
        controller_id="c1",
        leader=True,
        decided_at=at(decided),
        allocation={QueueClass.GLOBAL_TOPICS: ("w1",)},
        moves=(
            WorkerMove(
                worker_id="w1",
                from_class=None,
                to_class=QueueClass.GLOBAL_TOPICS,
                reason=reason,
                rule="min_workers",
            ),
        ),
        reasons=(reason,),
        updated_at=at(updated),
    )


def live(state: DashboardState, now: datetime) -> DashboardState:
    return apply_status(
        state, FeedStatus(connected=True, caught_up=True, position=1, end_offset=1), now
    )


def test_latest_record_per_key_wins_and_history_grows() -> None:
    state = apply_records(
        DashboardState(),
        [
            raw(class_view(length=3, updated=0, in_rate=1.0)),
            raw(class_view(length=7, updated=1, in_rate=2.0)),
            raw(class_view(QueueClass.PRIVATE_MESSAGES, length=1, updated=1)),
        ],
        at(1),
    )
    assert state.classes[QueueClass.GLOBAL_TOPICS].length == 7
    assert state.classes[QueueClass.PRIVATE_MESSAGES].length == 1
    assert [p.in_rate for p in state.history[QueueClass.GLOBAL_TOPICS]] == [1.0, 2.0]
    assert state.records == 3
    assert state.last_record_at == at(1)


def test_rate_history_is_bounded_and_ignores_replays() -> None:
    records = [raw(class_view(updated=i, in_rate=float(i))) for i in range(HISTORY_POINTS + 10)]
    state = apply_records(DashboardState(), records, at(0))
    points = state.history[QueueClass.GLOBAL_TOPICS]
    assert len(points) == HISTORY_POINTS
    assert points[-1].in_rate == HISTORY_POINTS + 9
    again = apply_records(state, [raw(class_view(updated=3, in_rate=99.0))], at(1))
    assert again.history[QueueClass.GLOBAL_TOPICS] == points  # older sample: not appended


def test_tombstone_removes_an_emptied_key_queue_only() -> None:
    state = apply_records(
        DashboardState(),
        [
            raw(key_view("topic_42", 2, oldest=0)),
            raw(key_view("users_a:b", 1, oldest=5)),
            raw(class_view(QueueClass.TOPIC_POSTS)),
            raw(key_view("topic_posts", 1, oldest=1)),  # forum topic whose id is "posts"
        ],
        at(0),
    )
    state = apply_records(state, [tombstone("topic_42"), tombstone("topic_posts")], at(1))
    assert set(state.key_queues) == {"users_a:b"}
    assert QueueClass.TOPIC_POSTS in state.classes  # the class is never tombstoned by the key
    assert state.records == 6


def test_tombstones_for_pool_controller_and_stuck_views() -> None:
    stuck = StuckKeysView(
        queue="stuck_topic_posts",
        queue_class=QueueClass.TOPIC_POSTS,
        keys=(StuckKey(queue="topic_1", pending=3, oldest_pending_at=at(0)),),
        updated_at=at(0),
    )
    state = apply_records(
        DashboardState(),
        [raw(pool(0, worker("w1", 0.5))), raw(decision(0, 0)), raw(stuck)],
        at(0),
    )
    assert state.workers is not None
    assert state.controller is not None
    assert QueueClass.TOPIC_POSTS in state.stuck
    state = apply_records(
        state,
        [tombstone("workers"), tombstone("controller"), tombstone("stuck_topic_posts")],
        at(1),
    )
    assert state.workers is None
    assert state.controller is None
    assert state.stuck == {}


def test_invalid_records_are_counted_not_applied() -> None:
    state = apply_records(
        DashboardState(),
        [
            RawRecord("global_topics", b"{not json", 7),
            RawRecord("global_topics", b'{"type":"class_queue","queue":"global_topics"}', 8),
            raw(class_view(length=5), 9),
        ],
        at(0),
    )
    assert state.invalid_records == 2
    assert state.records == 1
    assert state.last_invalid is not None
    assert state.last_invalid.startswith("offset 8")
    assert state.classes[QueueClass.GLOBAL_TOPICS].length == 5


def test_reducer_is_pure_and_an_empty_batch_changes_nothing() -> None:
    before = DashboardState()
    after = apply_records(before, [raw(class_view())], at(0))
    assert before.classes == {}
    assert before.records == 0
    assert apply_records(after, [], at(5)) is after


def test_controller_decisions_are_remembered_newest_first() -> None:
    records = [
        raw(decision(0, 0, "first")),
        raw(decision(0, 1, "first")),
        raw(decision(2, 2, "second")),
    ]
    state = apply_records(DashboardState(), records, at(2))
    assert [d.reasons for d in state.decisions] == [("second",), ("first",)]
    many = [raw(decision(i, i)) for i in range(RECENT_DECISIONS + 5)]
    assert len(apply_records(DashboardState(), many, at(0)).decisions) == RECENT_DECISIONS


def test_status_tracks_readiness_and_outages() -> None:
    state = apply_status(DashboardState(), FeedStatus(connected=False, caught_up=False), at(0))
    assert not state.feed.ready
    state = apply_status(
        state, FeedStatus(connected=True, caught_up=False, position=0, end_offset=9), at(1)
    )
    assert state.feed.connected
    assert not state.feed.ready
    state = live(state, at(2))
    assert state.feed.ready
    assert state.feed.last_contact_at == at(2)
    down = apply_status(state, FeedStatus(connected=False, caught_up=False, error="gone"), at(3))
    down = apply_status(down, FeedStatus(connected=False, caught_up=False, error="gone"), at(9))
    assert down.feed.ready, "readiness is reached once, not lost"
    assert down.feed.down_since == at(3)
    assert down.feed.last_contact_at == at(2)


@pytest.mark.parametrize(
    ("connected", "updated", "now", "expected"),
    [
        (True, 0, 5, "live"),
        (True, 0, 31, "stale"),
        (False, 0, 5, "disconnected"),
    ],
)
def test_feed_status_is_computed_from_now(
    connected: bool, updated: float, now: float, expected: str
) -> None:
    state = live(apply_records(DashboardState(), [raw(class_view(updated=updated))], at(0)), at(0))
    if not connected:
        state = apply_status(state, FeedStatus(connected=False, caught_up=False, error="x"), at(1))
    view = render(state, at(now), ViewOptions(stale_after_seconds=30))
    assert view["feed"]["status"] == expected
    assert view["classes"][0]["stale"] is (expected != "live")
    if expected != "live":
        assert "not current" in view["feed"]["message"]


def test_view_before_any_contact_and_while_loading() -> None:
    assert render(DashboardState(), at(0))["feed"]["status"] == "connecting"
    loading = apply_status(
        DashboardState(),
        FeedStatus(connected=True, caught_up=False, position=2, end_offset=9),
        at(0),
    )
    feed = render(loading, at(0))["feed"]
    assert feed["status"] == "loading"
    assert feed["lag"] == 7


def test_silent_workers_stand_out() -> None:
    state = apply_records(
        DashboardState(),
        [raw(pool(0, worker("w1", 0.5), worker("w2", 8.0), worker("w3", 0.1, alive=False)))],
        at(0),
    )
    items = render(state, at(3), ViewOptions(silent_after_seconds=10))["workers"]["items"]
    ages = {w["worker_id"]: w["heartbeat_age_seconds"] for w in items}
    silent = {w["worker_id"]: w["silent"] for w in items}
    assert ages == {"w1": 3.5, "w2": 11.0, "w3": 3.1}  # aged since the pool record
    assert silent == {"w1": False, "w2": True, "w3": True}


def test_key_queues_oldest_first_filtered_and_limited() -> None:
    state = apply_records(
        DashboardState(),
        [
            raw(key_view("topic_new", 1, oldest=50)),
            raw(key_view("topic_old", 4, oldest=10)),
            raw(key_view("users_a:b", 2, oldest=30)),
            raw(key_view("topic_idle", 0, oldest=None)),
        ],
        at(0),
    )
    rows = render(state, at(60))["key_queues"]
    assert [r["queue"] for r in rows["items"]] == [
        "topic_old",
        "users_a:b",
        "topic_new",
        "topic_idle",
    ]
    assert rows["items"][0]["oldest_wait_seconds"] == 50.0
    filtered = render(state, at(60), ViewOptions(key_filter="TOPIC_", key_limit=2))["key_queues"]
    assert [r["queue"] for r in filtered["items"]] == ["topic_old", "topic_new"]
    assert (filtered["total"], filtered["matching"]) == (4, 3)


def test_stuck_keys_without_their_own_record_are_listed() -> None:
    stuck = StuckKeysView(
        queue="stuck_private_messages",
        queue_class=QueueClass.PRIVATE_MESSAGES,
        keys=(StuckKey(queue="users_x:y", pending=9, oldest_pending_at=at(0)),),
        updated_at=at(0),
    )
    state = apply_records(
        DashboardState(), [raw(key_view("topic_1", 1, oldest=20)), raw(stuck)], at(0)
    )
    rows = render(state, at(30))["key_queues"]["items"]
    assert [(r["queue"], r["stuck"]) for r in rows] == [("users_x:y", True), ("topic_1", False)]


def test_breaker_and_controller_reasons_reach_the_view_verbatim() -> None:
    hostile = '<script>alert(1)</script>"><iframe srcdoc=x>'
    state = apply_records(
        DashboardState(),
        [raw(class_view(breaker=BreakerState.OPEN)), raw(decision(0, 0, hostile))],
        at(0),
    )
    view = render(state, at(1))
    assert view["classes"][0]["breaker"] == "open"
    assert view["classes"][0]["breaker_open"] is True
    latest = view["controller"]["decisions"][0]
    assert latest["moves"][0]["reason"] == hostile
    assert latest["reasons"] == [hostile]
    assert view["controller"]["current"]["allocation"] == {"global_topics": ["w1"]}


def test_fields_outside_the_contract_never_reach_the_view() -> None:
    """A producer that smuggles a message body into a record does not get it shown."""
    smuggled = json.loads(encode(key_view("users_a:b", 1, oldest=0)))
    smuggled["body"] = "private message text"
    smuggled["last_message"] = {"body": "private message text"}
    state = apply_records(
        DashboardState(), [RawRecord("users_a:b", json.dumps(smuggled).encode(), 0)], at(0)
    )
    assert state.records == 1
    assert "private message text" not in json.dumps(render(state, at(1)))
