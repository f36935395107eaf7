"""Completed offsets in commit metadata: exact round trips, bounded size, safe decoding."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams import offset_map
from streams.offsets import OffsetTracker

TP = ("t", 0)


def test_round_trip_of_ranges_and_singles() -> None:
    done = {103, 104, 105, 107, 200, 4000}
    meta = offset_map.encode(100, done | {99, 100})  # at or below the base: ignored
    assert meta.startswith(offset_map.PREFIX)
    assert offset_map.decode(100, meta) == frozenset(done)


def test_nothing_beyond_encodes_to_empty() -> None:
    assert offset_map.encode(10, []) == ""
    assert offset_map.decode(10, "") == frozenset()


@given(base=st.integers(0, 10**9), deltas=st.sets(st.integers(1, 50_000), max_size=400))
@settings(max_examples=200, database=None)
def test_decode_never_invents_an_offset(base: int, deltas: set[int]) -> None:
    finished = {base + d for d in deltas}
    decoded = offset_map.decode(base, offset_map.encode(base, finished, max_chars=300))
    assert decoded <= finished  # truncation drops offsets (redo), never adds (loss)


def test_truncation_keeps_the_lowest_ranges() -> None:
    finished = set(range(101, 100_000, 2))  # no two adjacent: one range each
    meta = offset_map.encode(100, finished, max_chars=200)
    assert len(meta) <= 200
    decoded = offset_map.decode(100, meta)
    assert decoded
    assert min(decoded) == 101
    assert decoded == {o for o in finished if o <= max(decoded)}


def test_garbage_decodes_to_nothing() -> None:
    for junk in ("other:1,2", "modq1:zz-1", "modq1:0", "modq1:!", "modq1:1-999999999"):
        assert offset_map.decode(5, junk) == frozenset()


def test_tracker_skips_what_the_previous_owner_finished() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.assign([TP], {TP: frozenset({11, 12})})
    gen = tracker.register(TP, 10)
    assert not tracker.completed_earlier(TP, 10)
    for offset in (11, 12, 13):
        tracker.register(TP, offset)
    assert tracker.completed_earlier(TP, 11)
    assert tracker.completed_earlier(TP, 12)
    assert tracker.pending(TP) == 2  # 10 and 13 are left to do
    release = tracker.take_committable()
    assert release.offsets == {}
    assert release.finished_beyond[TP] == (11, 12)
    tracker.finish(TP, 10, gen)
    release = tracker.take_committable()
    assert release.offsets == {TP: 13}  # 10 done, 11 and 12 done earlier, 13 still open
