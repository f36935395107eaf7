"""Measurement from offsets and timestamps: lengths, waits, progress, rates (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.controller.measurement import (
    ClassOffsets,
    MeasurementState,
    PartitionOffsets,
    measure,
    timestamp_positions,
    waits,
)
from orchestrator.policy import ControllerState, PoolConfig, allocate
from schemas.queues import QueueClass

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PM = QueueClass.PRIVATE_MESSAGES


def offsets(*parts: tuple[int, int, int | None], topic: str = "pm") -> ClassOffsets:
    return ClassOffsets(
        PM,
        topic,
        "g",
        tuple(PartitionOffsets(i, start, end, c) for i, (start, end, c) in enumerate(parts)),
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_length_is_log_end_minus_committed_summed_over_partitions() -> None:
    o = offsets((0, 10, 4), (0, 5, 5))
    assert [p.lag for p in o.partitions] == [6, 0]
    assert o.length == 6


def test_a_group_without_commits_counts_the_whole_backlog_from_log_start() -> None:
    o = offsets((3, 10, None))
    assert o.length == 7
    assert o.partitions[0].first_pending == 3


def test_a_commit_behind_log_start_counts_from_log_start() -> None:
    assert offsets((8, 10, 2)).length == 2


def test_timestamps_are_asked_for_the_oldest_and_newest_pending_record_only() -> None:
    assert timestamp_positions([offsets((0, 10, 4), (0, 5, 5))]) == {("pm", 0, 4), ("pm", 0, 9)}


def test_waits_weight_partitions_by_their_length() -> None:
    o = offsets((0, 10, 6), (0, 2, 0))  # 4 pending on p0, 2 on p1
    stamps = {
        ("pm", 0, 6): at(0),  # oldest on p0 waited 10 s
        ("pm", 0, 9): at(10),  # newest on p0 just arrived
        ("pm", 1, 0): at(4),  # p1: 6 s and 2 s
        ("pm", 1, 1): at(8),
    }
    oldest, average = waits(o, stamps, at(10))
    assert oldest == 10.0
    assert average == pytest.approx((4 * 5.0 + 2 * 4.0) / 6)


def test_waits_ignore_unknown_timestamps_and_clock_skew() -> None:
    o = offsets((0, 3, 0), (0, 3, 0))
    oldest, average = waits(o, {("pm", 0, 0): at(20)}, at(10))  # stamped in the future
    assert (oldest, average) == (0.0, 0.0)


def test_progress_is_when_the_committed_position_advanced() -> None:
    state = MeasurementState()
    state, m0 = measure(state, {PM: offsets((0, 10, 0))}, {}, at(0))
    assert m0[PM].last_progress_at is None
    state, m1 = measure(state, {PM: offsets((0, 10, 0))}, {}, at(1))
    assert m1[PM].last_progress_at is None, "no commit moved"
    state, m2 = measure(state, {PM: offsets((0, 12, 3))}, {}, at(2))
    assert m2[PM].last_progress_at == at(2)
    state, m3 = measure(state, {PM: offsets((0, 12, 3))}, {}, at(3))
    assert m3[PM].last_progress_at == at(2)


def test_heartbeat_progress_only_seeds_a_class_this_controller_has_not_seen_progress() -> None:
    beats = {PM: at(-5)}
    state, m0 = measure(
        MeasurementState(), {PM: offsets((0, 9, 0))}, {}, at(0), heartbeat_progress=beats
    )
    assert m0[PM].last_progress_at == at(-5)
    _, m1 = measure(state, {PM: offsets((0, 9, 2))}, {}, at(1), heartbeat_progress={PM: at(0.9)})
    assert m1[PM].last_progress_at == at(1)


def test_rates_are_records_per_second_over_the_window() -> None:
    state = MeasurementState()
    state, m = measure(state, {PM: offsets((0, 0, 0))}, {}, at(0), window_seconds=10)
    assert (m[PM].in_rate, m[PM].out_rate) == (None, None)
    state, m = measure(state, {PM: offsets((0, 20, 10))}, {}, at(2), window_seconds=10)
    assert (m[PM].in_rate, m[PM].out_rate) == (10.0, 5.0)
    state, m = measure(state, {PM: offsets((0, 20, 20))}, {}, at(20), window_seconds=10)
    assert (m[PM].in_rate, m[PM].out_rate) == (None, None), "old samples fell out"


def test_a_starved_class_opens_its_breaker_at_the_threshold() -> None:
    """Measurement feeds the policy: a never-served backlog stalls by its oldest wait."""
    config = PoolConfig(breaker_threshold_seconds=3.0, cooldown_seconds=0)
    o = offsets((0, 5, None))
    stamps = {("pm", 0, 0): at(0), ("pm", 0, 4): at(0.5)}
    state = MeasurementState()
    statuses = []
    for second in (1.0, 2.9, 3.0):
        state, metrics = measure(state, {PM: o}, stamps, at(second))
        result = allocate(config, metrics, [], ControllerState(), at(second))
        statuses.append(result.breakers[PM].status.value)
    assert statuses == ["closed", "closed", "open"]
