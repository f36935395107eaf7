"""The dashboard's state: visualization records in, current state out. Pure.

No Kafka client, no clock, no I/O: the shell (``runtime.py``) hands in raw records read from
the compacted visualization topic and the feed's connection status, each with the ``now`` it
observed them at, and keeps the returned state. Replaying the topic from the beginning through
:func:`apply_records` gives the full current state (ARCHITECTURE.md invariant 5): per key the
latest record wins, and a tombstone (null value) removes what the key named.

Two things the topic itself does not keep are remembered in memory, bounded: a short history of
each class's arrival/decision rates (for the sparklines) and the controller's recent decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import ValidationError

from schemas.codec import decode_visualization
from schemas.errors import ContractError
from schemas.queues import CONTROLLER_QUEUE, STUCK_QUEUE_PREFIX, WORKERS_QUEUE, QueueClass
from schemas.visualization import (
    ClassQueueView,
    ControllerDecisionView,
    KeyQueueView,
    StuckKeysView,
    WorkerPoolView,
)

HISTORY_POINTS = 60
"""Rate samples kept per queue class for the sparkline."""

RECENT_DECISIONS = 20
"""Controller decisions remembered (newest first)."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from the visualization topic: key, value (``None``: tombstone)."""

    key: str
    value: bytes | None
    offset: int


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """What the Kafka reader knows about its connection, as of one observation."""

    connected: bool
    """A fetch response came back recently."""
    caught_up: bool
    """The reader's position reached the topic's end offset (as of the latest fetch)."""
    position: int | None = None
    end_offset: int | None = None
    error: str | None = None
    """Why it is not connected, in words (no secrets)."""


@dataclass(frozen=True, slots=True)
class RatePoint:
    """One sample of a class's rates, at the record's ``updated_at``."""

    at: datetime
    in_rate: float
    out_rate: float


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """The reader's connection as the dashboard tracks it over time."""

    connected: bool = False
    ready: bool = False
    """The topic was read to its end at least once (``/healthz`` turns 200)."""
    caught_up: bool = False
    position: int | None = None
    end_offset: int | None = None
    error: str | None = None
    last_contact_at: datetime | None = None
    """When the reader last heard from Kafka."""
    down_since: datetime | None = None
    """When the current outage began (``None`` while connected)."""


@dataclass(frozen=True, slots=True)
class DashboardState:
    """Everything the page shows, before time-dependent rendering (``view.py``)."""

    classes: Mapping[QueueClass, ClassQueueView] = field(default_factory=dict)
    history: Mapping[QueueClass, tuple[RatePoint, ...]] = field(default_factory=dict)
    key_queues: Mapping[str, KeyQueueView] = field(default_factory=dict)
    stuck: Mapping[QueueClass, StuckKeysView] = field(default_factory=dict)
    workers: WorkerPoolView | None = None
    controller: ControllerDecisionView | None = None
    decisions: tuple[ControllerDecisionView, ...] = ()
    """Recent distinct controller decisions, newest first."""
    feed: FeedHealth = FeedHealth()
    records: int = 0
    """Records applied (tombstones included)."""
    invalid_records: int = 0
    last_invalid: str | None = None
    """Why the latest invalid record was refused (field and reason, never its content)."""
    last_record_at: datetime | None = None
    """When the latest record was read (the reader's clock)."""


def apply_records(
    state: DashboardState, records: Iterable[RawRecord], now: datetime
) -> DashboardState:
    """``state`` with ``records`` applied in order; invalid records are counted, not applied."""
    classes = dict(state.classes)
    history = dict(state.history)
    key_queues = dict(state.key_queues)
    stuck = dict(state.stuck)
    workers = state.workers
    controller = state.controller
    decisions = state.decisions
    applied = state.records
    invalid = state.invalid_records
    last_invalid = state.last_invalid
    seen = False
    for raw in records:
        seen = True
        try:
            record = decode_visualization(raw.value)
        except ContractError as exc:
            invalid += 1
            last_invalid = f"offset {raw.offset}: {exc}"
            continue
        except ValidationError:  # pragma: no cover - the codec turns these into ContractError
            invalid += 1
            last_invalid = f"offset {raw.offset}: invalid record"
            continue
        applied += 1
        if record is None:
            _remove(raw.key, classes, key_queues, stuck)
            if raw.key == WORKERS_QUEUE:
                workers = None
            elif raw.key == CONTROLLER_QUEUE:
                controller = None
        elif isinstance(record, ClassQueueView):
            classes[record.queue] = record
            history[record.queue] = _add_point(history.get(record.queue, ()), record)
        elif isinstance(record, KeyQueueView):
            key_queues[record.queue] = record
        elif isinstance(record, StuckKeysView):
            stuck[record.queue_class] = record
        elif isinstance(record, WorkerPoolView):
            workers = record
        else:
            controller = record
            decisions = _add_decision(decisions, record)
    if not seen:
        return state
    return replace(
        state,
        classes=classes,
        history=history,
        key_queues=key_queues,
        stuck=stuck,
        workers=workers,
        controller=controller,
        decisions=decisions,
        records=applied,
        invalid_records=invalid,
        last_invalid=last_invalid,
        last_record_at=now,
    )


def apply_status(state: DashboardState, status: FeedStatus, now: datetime) -> DashboardState:
    """``state`` with the reader's latest connection status folded in."""
    old = state.feed
    if status.connected:
        feed = FeedHealth(
            connected=True,
            ready=old.ready or status.caught_up,
            caught_up=status.caught_up,
            position=status.position,
            end_offset=status.end_offset,
            error=None,
            last_contact_at=now,
            down_since=None,
        )
    else:
        feed = replace(
            old,
            connected=False,
            caught_up=False,
            position=status.position if status.position is not None else old.position,
            error=status.error,
            down_since=old.down_since if old.down_since is not None else now,
        )
    if feed == old:
        return state
    return replace(state, feed=feed)


def _remove(
    key: str,
    classes: dict[QueueClass, ClassQueueView],
    key_queues: dict[str, KeyQueueView],
    stuck: dict[QueueClass, StuckKeysView],
) -> None:
    """Apply a tombstone for ``key``.

    ``topic_posts`` names both a class and the per-key queue of a forum topic whose id is
    ``posts`` (schemas/queues.py); tombstones are published for emptied per-key queues, so
    that key removes the per-key queue and never the class.
    """
    if key in key_queues:
        del key_queues[key]
        return
    if key.startswith(STUCK_QUEUE_PREFIX):
        name = key.removeprefix(STUCK_QUEUE_PREFIX)
        for cls in QueueClass:
            if cls.value == name:
                stuck.pop(cls, None)
        return
    for cls in QueueClass:
        if cls.value == key and cls is not QueueClass.TOPIC_POSTS:
            classes.pop(cls, None)


def _add_point(points: tuple[RatePoint, ...], view: ClassQueueView) -> tuple[RatePoint, ...]:
    """Append the view's rates unless it is not newer than the latest sample."""
    if points and view.updated_at <= points[-1].at:
        return points
    point = RatePoint(view.updated_at, view.in_rate, view.out_rate)
    return (*points, point)[-HISTORY_POINTS:]


def _add_decision(
    decisions: tuple[ControllerDecisionView, ...], view: ControllerDecisionView
) -> tuple[ControllerDecisionView, ...]:
    """Remember ``view`` as a new decision, or refresh the latest if it only re-confirms it."""
    latest = decisions[0] if decisions else None
    if latest is not None and (latest.decided_at, latest.controller_id) == (
        view.decided_at,
        view.controller_id,
    ):
        return (view, *decisions[1:])
    return (view, *decisions)[:RECENT_DECISIONS]
