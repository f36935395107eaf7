"""Pure reducers of the queue-state app: per-key queues and per-class counters.

No Kafka, no faust, no clock: every function takes the instant it needs (``now``, seconds
since the epoch) as an argument and returns a new frozen value. The faust adapter
(:mod:`streams.queue_state.faust_app`) stores these values in changelog-backed tables.

Counting rules (see ``docs/queue_state.md``), per state key:

- A **submission** whose id is pending or recently decided is a duplicate and changes
  nothing; otherwise ``pending`` grows by one.
- A **decision** whose id was recently decided is a duplicate and changes nothing. For a
  pending id it removes the id (``pending`` − 1) and counts the verdict. For an id never seen
  (the state started after the submission, or the decision was read before its submission)
  it counts the verdict, remembers the id as decided and leaves ``pending`` alone: counts
  never go negative, and the late submission, when it comes, is a duplicate.
- At most ``MAX_TRACKED`` pending ids are kept per key; further submissions are counted
  (``untracked``) but not tracked, and a decision for an id not tracked consumes one
  untracked submission before it would be called unknown.
- At most ``MAX_RECENT`` decided ids are remembered per key (newest kept).
- A state whose ``pending`` is 0 is *empty*; it is kept ``grace`` seconds (so replays after a
  crash and decisions read ahead of their submissions still meet their ids), then deleted.

State keys: ``topic_{id}`` and ``users_{a}:{b}`` are the per-key queues; new topics, which
share the ``global_topics`` queue, get an internal key ``global_topics:{topic_id}`` so they are
de-duplicated the same way but are never published as per-key queues.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from schemas.decisions import Verdict
from schemas.queues import QueueClass

MAX_TRACKED: Final = 256
"""Pending submission ids tracked per key (bounds one state and its changelog record)."""

MAX_RECENT: Final = 64
"""Decided submission ids remembered per key, for duplicate detection."""

MAX_WINDOWS: Final = 8
"""Tumbling windows kept per class counter (the newest)."""

GLOBAL_STATE_PREFIX: Final = "global_topics:"
"""Prefix of the internal state keys of new topics (never a published queue name)."""


class Outcome(StrEnum):
    """What one event did to a state."""

    ARRIVED = "arrived"
    """A new pending submission: pending + 1."""
    DECIDED = "decided"
    """A pending submission was decided: pending − 1, verdict counted."""
    UNKNOWN = "unknown"
    """A decision for an id never seen: verdict counted, pending unchanged."""
    DUPLICATE = "duplicate"
    """Seen before (at-least-once delivery or replay): nothing changed."""


def submission_state_key(queue_name: str, record_key: str) -> str:
    """The state key of a submission with queue ``queue_name`` and partition ``record_key``."""
    if queue_name == QueueClass.GLOBAL_TOPICS.value:
        return f"{GLOBAL_STATE_PREFIX}{record_key}"
    return queue_name


def decision_state_key(decision_queue: str, record_key: str) -> str:
    """The state key of a decision: its queue, or the internal key of a new topic."""
    return submission_state_key(decision_queue, record_key)


def is_published_key(state_key: str) -> bool:
    """Whether ``state_key`` is a per-key queue the visualization topic shows."""
    return not state_key.startswith(GLOBAL_STATE_PREFIX)


@dataclass(frozen=True, slots=True)
class KeyState:
    """One state key's queue. Times are seconds since the epoch; tuples are oldest first."""

    queue: str
    queue_class: QueueClass
    pending_ids: tuple[tuple[str, float], ...] = ()
    """Tracked pending submissions: (id, submitted_at), in arrival order."""
    untracked: int = 0
    """Pending submissions beyond ``MAX_TRACKED`` (counted, ids not kept)."""
    untracked_oldest_at: float | None = None
    recent_decided: tuple[str, ...] = ()
    verdicts: Mapping[str, int] = field(default_factory=dict)
    """Decisions counted since the state was created, by verdict value."""
    last_decision_at: float | None = None
    emptied_at: float | None = None
    """When ``pending`` last became 0 (``None`` while something is pending)."""

    @property
    def pending(self) -> int:
        """Submissions without a decision yet."""
        return len(self.pending_ids) + self.untracked

    @property
    def oldest_pending_at(self) -> float | None:
        """``submitted_at`` of the oldest pending submission; ``None`` when empty."""
        times = [at for _, at in self.pending_ids]
        if self.untracked and self.untracked_oldest_at is not None:
            times.append(self.untracked_oldest_at)
        return min(times) if times else None

    def is_tracked(self, submission_id: str) -> bool:
        """Whether ``submission_id`` is pending (tracked) or recently decided."""
        return submission_id in self.recent_decided or any(
            sid == submission_id for sid, _ in self.pending_ids
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A reducer's result: the new state and what happened."""

    state: KeyState
    outcome: Outcome


def apply_submission(
    state: KeyState | None,
    *,
    key: str,
    queue_class: QueueClass,
    submission_id: str,
    submitted_at: float,
) -> Transition:
    """Count one submission (see the module's counting rules)."""
    current = state or KeyState(queue=key, queue_class=queue_class)
    if state is not None and state.is_tracked(submission_id):
        return Transition(state, Outcome.DUPLICATE)
    if len(current.pending_ids) < MAX_TRACKED and not current.untracked:
        new = replace(
            current,
            pending_ids=(*current.pending_ids, (submission_id, submitted_at)),
            emptied_at=None,
        )
    else:
        oldest = current.untracked_oldest_at
        new = replace(
            current,
            untracked=current.untracked + 1,
            untracked_oldest_at=submitted_at if oldest is None else min(oldest, submitted_at),
            emptied_at=None,
        )
    return Transition(new, Outcome.ARRIVED)


def apply_decision(
    state: KeyState | None,
    *,
    key: str,
    queue_class: QueueClass,
    submission_id: str,
    verdict: Verdict,
    decided_at: float,
    now: float,
) -> Transition:
    """Count one decision (see the module's counting rules); ``pending`` never goes below 0."""
    current = state or KeyState(queue=key, queue_class=queue_class, emptied_at=now)
    if submission_id in current.recent_decided:
        return Transition(current, Outcome.DUPLICATE)
    remaining = tuple(item for item in current.pending_ids if item[0] != submission_id)
    untracked = current.untracked
    if len(remaining) < len(current.pending_ids):
        outcome = Outcome.DECIDED
    elif untracked > 0:
        untracked -= 1
        outcome = Outcome.DECIDED
    else:
        outcome = Outcome.UNKNOWN
    verdicts = dict(current.verdicts)
    verdicts[verdict.value] = verdicts.get(verdict.value, 0) + 1
    last = current.last_decision_at
    new = replace(
        current,
        pending_ids=remaining,
        untracked=untracked,
        untracked_oldest_at=current.untracked_oldest_at if untracked else None,
        recent_decided=(*current.recent_decided, submission_id)[-MAX_RECENT:],
        verdicts=verdicts,
        last_decision_at=decided_at if last is None else max(last, decided_at),
    )
    if new.pending == 0 and new.emptied_at is None:
        new = replace(new, emptied_at=now)
    return Transition(new, outcome)


def expired(state: KeyState, *, now: float, grace: float) -> bool:
    """Whether an empty state has been empty ``grace`` seconds and may be deleted."""
    return state.pending == 0 and state.emptied_at is not None and now - state.emptied_at >= grace


# --- per-class counters ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """One tumbling window's counts; ``start`` is a multiple of the window size."""

    start: float
    arrivals: int = 0
    decisions: int = 0


@dataclass(frozen=True, slots=True)
class ClassStats:
    """Counters of one queue class over one partition's keys (summed for the class)."""

    queue_class: QueueClass
    pending: int = 0
    arrivals: int = 0
    decisions: int = 0
    verdicts: Mapping[str, int] = field(default_factory=dict)
    windows: tuple[Window, ...] = ()
    """The newest ``MAX_WINDOWS`` tumbling windows with events, oldest first."""


def window_start(at: float, size: float) -> float:
    """Start of the tumbling window of ``size`` seconds that contains ``at``."""
    return (at // size) * size


def _bump_window(
    windows: tuple[Window, ...], at: float, size: float, *, arrival: bool
) -> tuple[Window, ...]:
    start = window_start(at, size)
    by_start = {w.start: w for w in windows}
    if start not in by_start and len(windows) >= MAX_WINDOWS and start < windows[0].start:
        return windows  # older than every window kept: counted in totals only
    old = by_start.get(start, Window(start))
    by_start[start] = (
        replace(old, arrivals=old.arrivals + 1)
        if arrival
        else replace(old, decisions=old.decisions + 1)
    )
    return tuple(by_start[s] for s in sorted(by_start))[-MAX_WINDOWS:]


def apply_class(
    stats: ClassStats,
    transition: Transition,
    *,
    verdict: Verdict | None,
    event_at: float,
    window_size: float,
) -> ClassStats:
    """Fold one key transition into its class counters (duplicates change nothing).

    Windows count by event time (``submitted_at`` of arrivals, ``decided_at`` of decisions).
    """
    outcome = transition.outcome
    if outcome is Outcome.DUPLICATE:
        return stats
    if outcome is Outcome.ARRIVED:
        return replace(
            stats,
            pending=stats.pending + 1,
            arrivals=stats.arrivals + 1,
            windows=_bump_window(stats.windows, event_at, window_size, arrival=True),
        )
    verdicts = dict(stats.verdicts)
    if verdict is not None:
        verdicts[verdict.value] = verdicts.get(verdict.value, 0) + 1
    drop = 1 if outcome is Outcome.DECIDED else 0
    return replace(
        stats,
        pending=max(0, stats.pending - drop),
        decisions=stats.decisions + 1,
        verdicts=verdicts,
        windows=_bump_window(stats.windows, event_at, window_size, arrival=False),
    )


@dataclass(frozen=True, slots=True)
class ClassSummary:
    """One class's totals over all partitions, and its rates in the last complete window."""

    queue_class: QueueClass
    pending: int
    arrivals: int
    decisions: int
    verdicts: Mapping[str, int]
    window_start: float
    """Start of the last complete window the rates are measured over."""
    arrival_rate: float
    """Arrivals per second in that window."""
    decision_rate: float


def summarize_class(
    queue_class: QueueClass, parts: Iterable[ClassStats], *, now: float, window_size: float
) -> ClassSummary:
    """Sum a class's per-partition counters; rates over the window before ``now``'s."""
    last = window_start(now, window_size) - window_size
    pending = arrivals = decisions = in_window = out_window = 0
    verdicts: dict[str, int] = {}
    for part in parts:
        pending += part.pending
        arrivals += part.arrivals
        decisions += part.decisions
        for name, count in part.verdicts.items():
            verdicts[name] = verdicts.get(name, 0) + count
        for window in part.windows:
            if window.start == last:
                in_window += window.arrivals
                out_window += window.decisions
    return ClassSummary(
        queue_class=queue_class,
        pending=pending,
        arrivals=arrivals,
        decisions=decisions,
        verdicts=verdicts,
        window_start=last,
        arrival_rate=in_window / window_size,
        decision_rate=out_window / window_size,
    )
