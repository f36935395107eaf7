"""The starvation breaker's state machine: closed -> open -> recovering -> closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.policy import (
    BreakerState,
    BreakerStatus,
    PoolConfig,
    QueueMetrics,
    advance_breaker,
    describe_transition,
)
from schemas.queues import QueueClass

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CONFIG = PoolConfig(breaker_threshold_seconds=120.0, breaker_recovery_seconds=60.0)
PM = QueueClass.PRIVATE_MESSAGES


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _metrics(length: int, oldest: float, progress_at: float | None) -> QueueMetrics:
    return QueueMetrics(
        length=length,
        avg_wait_seconds=oldest / 2,
        oldest_wait_seconds=oldest,
        last_progress_at=None if progress_at is None else _at(progress_at),
    )


def test_closed_stays_closed_while_progressing_or_idle() -> None:
    closed = BreakerState()
    assert advance_breaker(closed, _metrics(0, 0, None), CONFIG, _at(500)) is closed
    busy = _metrics(900, 400, progress_at=490)
    assert advance_breaker(closed, busy, CONFIG, _at(500)) is closed


def test_opens_at_the_threshold() -> None:
    closed = BreakerState()
    assert advance_breaker(closed, _metrics(3, 119, None), CONFIG, _at(119)) is closed
    opened = advance_breaker(closed, _metrics(3, 120, None), CONFIG, _at(120))
    assert opened == BreakerState(status=BreakerStatus.OPEN, since=_at(120), opened_at=_at(120))
    note = describe_transition(
        PM,
        before=closed,
        after=opened,
        metrics=_metrics(3, 120, None),
        config=CONFIG,
        now=_at(120),
    )
    assert (
        note == "breaker private_messages: closed -> open after 120 s without progress (3 pending)"
    )


def test_full_cycle_with_steady_progress() -> None:
    opened = BreakerState(status=BreakerStatus.OPEN, since=_at(120), opened_at=_at(120))
    # no progress yet (worker switching in): stays open
    assert advance_breaker(opened, _metrics(3, 125, None), CONFIG, _at(125)) is opened
    recovering = advance_breaker(opened, _metrics(2, 126, progress_at=126), CONFIG, _at(126))
    assert recovering.status is BreakerStatus.RECOVERING
    assert recovering.since == _at(126)
    assert recovering.opened_at == _at(120)
    # still has work, progressed less than breaker_recovery_seconds: keeps recovering
    still = advance_breaker(recovering, _metrics(5, 30, progress_at=180), CONFIG, _at(180))
    assert still is recovering
    closed = advance_breaker(recovering, _metrics(5, 30, progress_at=186), CONFIG, _at(186))
    assert closed.status is BreakerStatus.CLOSED
    note = describe_transition(
        PM,
        before=recovering,
        after=closed,
        metrics=_metrics(5, 30, 186),
        config=CONFIG,
        now=_at(186),
    )
    assert note == "breaker private_messages: recovering -> closed: progressed steadily for 60 s"


def test_drain_closes_from_open_and_recovering() -> None:
    opened = BreakerState(status=BreakerStatus.OPEN, since=_at(120), opened_at=_at(120))
    recovering = BreakerState(status=BreakerStatus.RECOVERING, since=_at(130), opened_at=_at(120))
    idle = _metrics(0, 0, progress_at=131)
    assert advance_breaker(opened, idle, CONFIG, _at(131)).status is BreakerStatus.CLOSED
    assert advance_breaker(recovering, idle, CONFIG, _at(131)).status is BreakerStatus.CLOSED


def test_recovering_reopens_when_it_stalls_again() -> None:
    recovering = BreakerState(status=BreakerStatus.RECOVERING, since=_at(130), opened_at=_at(120))
    stalled = _metrics(4, 300, progress_at=135)
    reopened = advance_breaker(recovering, stalled, CONFIG, _at(255))
    assert reopened == BreakerState(status=BreakerStatus.OPEN, since=_at(255), opened_at=_at(255))


def test_progress_before_opening_does_not_count() -> None:
    opened = BreakerState(status=BreakerStatus.OPEN, since=_at(300), opened_at=_at(300))
    stale = _metrics(4, 400, progress_at=100)
    assert advance_breaker(opened, stale, CONFIG, _at(310)) is opened
