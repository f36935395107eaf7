"""Pure parts of the queue-state app: reducers, windows, rendering, table codecs, options."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codec import decode_visualization
from schemas.decisions import Verdict
from schemas.queues import QueueClass
from schemas.settings import SettingsError
from schemas.visualization import KeyQueueView
from streams.queue_state.options import QueueStateOptions
from streams.queue_state.serde import StoredKey, dump_class, dump_key, load_class, load_key
from streams.queue_state.state import (
    MAX_RECENT,
    MAX_TRACKED,
    MAX_WINDOWS,
    ClassStats,
    KeyState,
    Outcome,
    Transition,
    apply_class,
    apply_decision,
    apply_submission,
    expired,
    is_published_key,
    submission_state_key,
    summarize_class,
)
from streams.queue_state.views import (
    CoPartitioningError,
    StuckEntry,
    check_copartitioning,
    key_record,
    render_key,
    render_stuck,
    stuck_entry,
    top_stuck,
)

Q = "topic_t1"
CLS = QueueClass.TOPIC_POSTS


def sub(state: KeyState | None, sid: str, at: float = 100.0) -> Transition:
    return apply_submission(state, key=Q, queue_class=CLS, submission_id=sid, submitted_at=at)


def dec(
    state: KeyState | None, sid: str, verdict: Verdict = Verdict.APPROVED, now: float = 500.0
) -> Transition:
    return apply_decision(
        state,
        key=Q,
        queue_class=CLS,
        submission_id=sid,
        verdict=verdict,
        decided_at=now - 1,
        now=now,
    )


def test_submission_then_decision_counts_pending_and_oldest() -> None:
    a = sub(None, "a", 10.0)
    b = sub(a.state, "b", 20.0)
    assert (a.outcome, b.outcome) == (Outcome.ARRIVED, Outcome.ARRIVED)
    assert (b.state.pending, b.state.oldest_pending_at) == (2, 10.0)
    d = dec(b.state, "a", Verdict.REJECTED)
    assert d.outcome is Outcome.DECIDED
    assert (d.state.pending, d.state.oldest_pending_at) == (1, 20.0)
    assert d.state.verdicts == {"rejected": 1}
    assert d.state.last_decision_at == 499.0
    assert d.state.emptied_at is None
    last = dec(d.state, "b", now=600.0)
    assert (last.state.pending, last.state.oldest_pending_at) == (0, None)
    assert last.state.emptied_at == 600.0


def test_duplicates_change_nothing() -> None:
    s = sub(None, "a").state
    assert sub(s, "a").outcome is Outcome.DUPLICATE
    decided = dec(s, "a").state
    again = dec(decided, "a")
    assert again.outcome is Outcome.DUPLICATE
    assert again.state == decided
    # a submission replayed after its decision is not pending again
    assert sub(decided, "a").outcome is Outcome.DUPLICATE


def test_unknown_decision_counts_without_decrementing() -> None:
    s = sub(None, "a").state
    t = dec(s, "ghost")
    assert t.outcome is Outcome.UNKNOWN
    assert t.state.pending == 1
    assert t.state.verdicts == {"approved": 1}
    # on an absent key: remembered (for a late submission), but empty
    fresh = dec(None, "early", now=42.0)
    assert fresh.outcome is Outcome.UNKNOWN
    assert (fresh.state.pending, fresh.state.emptied_at) == (0, 42.0)
    late = sub(fresh.state, "early")
    assert late.outcome is Outcome.DUPLICATE


def test_tracked_ids_are_bounded_and_overflow_is_counted() -> None:
    state: KeyState | None = None
    for i in range(MAX_TRACKED + 3):
        state = sub(state, f"s{i}", float(i)).state
    assert state is not None
    assert len(state.pending_ids) == MAX_TRACKED
    assert (state.pending, state.untracked) == (MAX_TRACKED + 3, 3)
    # a decision for an untracked id consumes one untracked submission
    after = dec(state, f"s{MAX_TRACKED + 1}")
    assert after.outcome is Outcome.DECIDED
    assert after.state.pending == MAX_TRACKED + 2
    for i in range(200):
        after = dec(after.state, f"x{i}")
    assert len(after.state.recent_decided) == MAX_RECENT


@given(
    st.lists(
        st.tuples(st.sampled_from(["sub", "dec"]), st.integers(min_value=0, max_value=8)),
        max_size=60,
    )
)
def test_pending_never_negative_and_matches_undecided(ops: list[tuple[str, int]]) -> None:
    """Any interleaving with duplicates: pending = submitted and not yet decided ids."""
    state: KeyState | None = None
    submitted: set[int] = set()
    decided: set[int] = set()
    stats = ClassStats(CLS)
    for op, n in ops:
        if op == "sub":
            t = sub(state, f"id{n}")
            if n not in decided:
                submitted.add(n)
        else:
            t = dec(state, f"id{n}")
            decided.add(n)
        stats = apply_class(stats, t, verdict=Verdict.APPROVED, event_at=0.0, window_size=10.0)
        state = t.state
        assert state.pending == len(submitted - decided) >= 0
        assert stats.pending == state.pending
        assert sum(state.verdicts.values()) == len(decided)


def test_expiry_only_after_grace_and_only_when_empty() -> None:
    empty = dec(sub(None, "a").state, "a", now=100.0).state
    assert not expired(empty, now=159.0, grace=60.0)
    assert expired(empty, now=160.0, grace=60.0)
    assert not expired(sub(None, "b").state, now=1e9, grace=0.0)


def test_state_keys_of_new_topics_are_internal() -> None:
    assert submission_state_key("global_topics", "t9") == "global_topics:t9"
    assert submission_state_key("topic_t9", "t9") == "topic_t9"
    assert not is_published_key("global_topics:t9")
    assert is_published_key("users_a:b")


def test_class_windows_and_rates() -> None:
    stats = ClassStats(CLS)
    for at in (0.5, 1.0, 9.9, 10.0, 15.0):
        stats = apply_class(stats, sub(None, f"{at}"), verdict=None, event_at=at, window_size=10)
    stats = apply_class(
        stats, dec(None, "zz"), verdict=Verdict.FAILED, event_at=12.0, window_size=10
    )
    other = apply_class(ClassStats(CLS), sub(None, "o"), verdict=None, event_at=11, window_size=10)
    summary = summarize_class(CLS, [stats, other], now=25.0, window_size=10)
    assert summary.window_start == 10.0
    assert (summary.arrivals, summary.decisions, summary.pending) == (6, 1, 6)
    assert summary.arrival_rate == pytest.approx(0.3)
    assert summary.decision_rate == pytest.approx(0.1)
    assert summary.verdicts == {"failed": 1}
    many = ClassStats(CLS)
    for w in range(MAX_WINDOWS + 4):
        many = apply_class(many, sub(None, "x"), verdict=None, event_at=w * 10.0, window_size=10)
    assert len(many.windows) == MAX_WINDOWS
    too_old = apply_class(many, sub(None, "y"), verdict=None, event_at=0.0, window_size=10)
    assert too_old.windows == many.windows
    assert too_old.arrivals == many.arrivals + 1


def test_render_key_record_and_tombstone() -> None:
    s = dec(sub(sub(None, "a", 10.0).state, "b", 20.0).state, "a").state
    view = render_key(s, now=1000.0)
    assert isinstance(view, KeyQueueView)
    assert view.pending == 1
    assert view.oldest_pending_at == datetime.fromtimestamp(20.0, UTC)
    assert view.verdicts == {Verdict.APPROVED: 1}
    raw = key_record(Q, s, now=1000.0)
    assert decode_visualization(raw) == view
    assert key_record(Q, dec(s, "b").state, now=1.0) is None
    assert key_record(Q, None, now=1.0) is None


def test_top_stuck_is_oldest_first_per_class() -> None:
    entries = [
        StuckEntry("topic_a", CLS, 1, 30.0),
        StuckEntry("topic_b", CLS, 2, 10.0),
        StuckEntry("users_x:y", QueueClass.PRIVATE_MESSAGES, 1, 1.0),
        StuckEntry("topic_c", CLS, 5, 10.0),
    ]
    top = top_stuck(entries, CLS, limit=2)
    assert [e.queue for e in top] == ["topic_b", "topic_c"]
    view = render_stuck(CLS, top, now=50.0)
    assert view.queue == "stuck_topic_posts"
    assert [(k.queue, k.pending) for k in view.keys] == [("topic_b", 2), ("topic_c", 5)]
    assert stuck_entry(sub(None, "a").state) == StuckEntry(Q, CLS, 1, 100.0)
    internal = apply_submission(
        None,
        key="global_topics:t",
        queue_class=QueueClass.GLOBAL_TOPICS,
        submission_id="a",
        submitted_at=1.0,
    )
    assert stuck_entry(internal.state) is None


def test_copartitioning_check() -> None:
    assert check_copartitioning({"a": 3, "b": 3}) == 3
    with pytest.raises(CoPartitioningError, match=r"a=3, b=4"):
        check_copartitioning({"a": 3, "b": 4})
    with pytest.raises(CoPartitioningError, match="missing: b"):
        check_copartitioning({"a": 3, "b": None})


def test_table_codecs_round_trip_without_bodies() -> None:
    s = dec(sub(sub(None, "a", 10.0).state, "b", 20.0).state, "a", Verdict.NEEDS_REVIEW).state
    stored = StoredKey(2, s)
    assert load_key(dump_key(stored)) == stored
    stats = apply_class(ClassStats(CLS), sub(None, "a"), verdict=None, event_at=5, window_size=1)
    assert load_class(dump_class(stats)) == stats
    assert set(json.loads(dump_key(stored))[4][0]) == {"b", 20.0}
    with pytest.raises(ValueError, match="version-1"):
        load_key(b"[2]")


def test_options_from_env() -> None:
    assert QueueStateOptions.from_env({}) == QueueStateOptions()
    opts = QueueStateOptions.from_env(
        {"MODQ_QUEUE_STATE_TOP_N": "5", "MODQ_QUEUE_STATE_PUBLISH_INTERVAL": "0.5"}
    )
    assert (opts.top_n, opts.publish_interval) == (5, 0.5)
    with pytest.raises(SettingsError, match="MODQ_QUEUE_STATE_TOP_N"):
        QueueStateOptions.from_env({"MODQ_QUEUE_STATE_TOP_N": "500"})
    with pytest.raises(SettingsError, match="MODQ_QUEUE_STATE_WINDOW_SECONDS"):
        QueueStateOptions.from_env({"MODQ_QUEUE_STATE_WINDOW_SECONDS": "soon"})
