"""OffsetTracker: the committed offset never passes an unfinished record (invariant 2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.offsets import OffsetTracker

TP = ("t", 0)
TP1 = ("t", 1)


def _tracker(*offsets: int, tp: tuple[str, int] = TP) -> tuple[OffsetTracker[str], int]:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.assign([tp])
    generation = 0
    for offset in offsets:
        generation = tracker.register(tp, offset)
    return tracker, generation


def test_committable_says_whether_a_release_would_free_anything() -> None:
    tracker, gen = _tracker(0, 1, 2)
    assert not tracker.committable()  # nothing finished
    tracker.finish(TP, 1, gen)
    assert not tracker.committable()  # 1 finished, but 0 holds the prefix back
    tracker.finish(TP, 0, gen)
    assert tracker.committable()
    assert tracker.take_committable().offsets == {TP: 2}
    assert not tracker.committable()  # 2 is unfinished
    assert tracker.buffered() == 1


def test_only_the_contiguous_finished_prefix_is_released() -> None:
    tracker, gen = _tracker(0, 1, 2, 3, 4)
    assert tracker.finish(TP, 0, gen)
    assert tracker.finish(TP, 1, gen)
    assert tracker.finish(TP, 3, gen)
    release = tracker.take_committable()
    assert release.offsets == {TP: 2}
    assert release.starts == {TP: 0}
    assert tracker.buffered() == 3
    assert tracker.pending() == 2
    assert tracker.take_committable().offsets == {}  # 2 is unfinished: 3 waits
    tracker.finish(TP, 2, gen)
    assert tracker.take_committable().offsets == {TP: 4}  # 4 still unfinished
    tracker.finish(TP, 4, gen)
    release = tracker.take_committable()
    assert release.offsets == {TP: 5}
    assert release.starts == {TP: 4}
    assert tracker.buffered() == 0


def test_offsets_with_gaps_commit_one_past_the_last_finished() -> None:
    tracker, gen = _tracker(10, 12, 15)  # transaction markers / compaction leave gaps
    for offset in (15, 12, 10):
        tracker.finish(TP, offset, gen)
    assert tracker.take_committable().offsets == {TP: 16}


def test_results_come_back_in_offset_order_whatever_the_finish_order() -> None:
    tracker, gen = _tracker(0, 1, 2)
    tracker.finish(TP, 2, gen, "c")
    tracker.finish(TP, 0, gen, "a")
    tracker.finish(TP, 1, gen, "b")
    assert tracker.take_committable().results == [(TP, "a"), (TP, "b"), (TP, "c")]


def test_partitions_are_independent_and_can_be_released_selectively() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.assign([TP, TP1])
    g0 = tracker.register(TP, 0)
    g1 = tracker.register(TP1, 7)
    tracker.finish(TP, 0, g0)
    tracker.finish(TP1, 7, g1)
    assert tracker.take_committable([TP1]).offsets == {TP1: 8}
    assert tracker.take_committable().offsets == {TP: 1}


def test_registering_out_of_order_or_unassigned_is_refused() -> None:
    tracker, _gen = _tracker(5)
    assert not tracker.expects(TP, 5)
    assert tracker.expects(TP, 6)
    assert not tracker.expects(TP1, 0)
    with pytest.raises(ValueError, match="out of order"):
        tracker.register(TP, 4)
    with pytest.raises(KeyError):
        tracker.register(TP1, 0)


def test_revoked_partitions_drop_their_records_and_ignore_late_finishes() -> None:
    tracker, gen = _tracker(0, 1)
    tracker.revoke([TP])
    assert tracker.generation(TP) is None
    assert not tracker.owns(TP, gen)
    assert not tracker.finish(TP, 0, gen)
    assert tracker.buffered() == 0
    assert tracker.take_committable().offsets == {}


def test_a_new_assignment_is_a_new_generation_and_old_work_is_stale() -> None:
    tracker, old = _tracker(0)
    tracker.assign([TP])  # e.g. revoked and assigned back, or rewound after a failed txn
    new = tracker.generation(TP)
    assert new is not None
    assert new != old
    assert not tracker.owns(TP, old)
    assert not tracker.start(TP, 0, old)
    assert tracker.register(TP, 0) == new
    assert not tracker.finish(TP, 0, old)  # a late finish of the old generation counts not
    assert tracker.pending() == 1
    assert tracker.finish(TP, 0, new)
    assert tracker.take_committable().offsets == {TP: 1}


def test_sealing_keeps_what_was_started_and_leaves_the_rest_to_the_next_owner() -> None:
    tracker, gen = _tracker(0, 1, 2, 3, 4)
    assert tracker.start(TP, 0, gen)
    assert tracker.start(TP, 2, gen)  # another key's record, further on
    tracker.finish(TP, 2, gen)
    tracker.seal()
    assert tracker.pending() == 2  # 0 (in flight) and 1 (before 2): 3 and 4 are not needed
    assert not tracker.start(TP, 3, gen)
    assert tracker.start(TP, 1, gen)
    tracker.finish(TP, 0, gen)
    tracker.finish(TP, 1, gen)
    assert tracker.pending() == 0
    assert tracker.take_committable().offsets == {TP: 3}  # covers every finished record
    tracker.seal()  # idempotent: the limit stays
    assert not tracker.start(TP, 4, gen)


def test_sealing_a_partition_with_nothing_started_needs_nothing() -> None:
    tracker, gen = _tracker(0, 1)
    tracker.seal([TP])
    assert tracker.pending() == 0
    assert not tracker.start(TP, 0, gen)


@given(st.permutations(list(range(30))), st.integers(min_value=0, max_value=30))
def test_the_committed_offset_never_passes_an_unfinished_record(
    order: list[int], finished: int
) -> None:
    tracker, gen = _tracker(*range(30))
    done = set(order[:finished])
    committed = 0
    for offset in order[:finished]:
        tracker.finish(TP, offset, gen)
        committed = tracker.take_committable().offsets.get(TP, committed)
        assert all(o in done for o in range(committed))
    first_unfinished = min((o for o in range(30) if o not in done), default=30)
    assert committed == first_unfinished
