"""Pure rendering: states → visualization records, top-N stuck keys, start-up checks.

No I/O and no clock: ``now`` (seconds since the epoch) is an argument. Records carry ids,
counts and times only (architecture invariant 6).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.codec import encode
from schemas.decisions import Verdict
from schemas.queues import QueueClass, stuck_queue_name
from schemas.visualization import MAX_STUCK_KEYS, KeyQueueView, StuckKey, StuckKeysView
from streams.queue_state.state import KeyState, is_published_key

PER_KEY_CLASSES = (QueueClass.TOPIC_POSTS, QueueClass.PRIVATE_MESSAGES)
"""Classes whose per-key queues are published (``global_topics`` is one shared queue)."""


def utc(at: float) -> datetime:
    """An epoch-seconds instant as an aware UTC datetime."""
    return datetime.fromtimestamp(at, UTC)


def render_key(state: KeyState, *, now: float) -> KeyQueueView | None:
    """The per-key record of ``state``; ``None`` (publish a tombstone) when it is empty."""
    oldest = state.oldest_pending_at
    if state.pending == 0 or oldest is None:
        return None
    return KeyQueueView(
        queue=state.queue,
        queue_class=state.queue_class,
        pending=state.pending,
        oldest_pending_at=utc(oldest),
        last_decision_at=None if state.last_decision_at is None else utc(state.last_decision_at),
        verdicts={Verdict(k): v for k, v in state.verdicts.items()},
        updated_at=utc(now),
    )


def key_record(state_key: str, state: KeyState | None, *, now: float) -> bytes | None:
    """Value to publish under ``state_key``: the record's JSON, or ``None`` for a tombstone.

    A missing state (deleted) is a tombstone too. Only call it for published keys.
    """
    view = None if state is None else render_key(state, now=now)
    return None if view is None else encode(view)


@dataclass(frozen=True, slots=True)
class StuckEntry:
    """What the stuck ranking needs of one non-empty per-key queue."""

    queue: str
    queue_class: QueueClass
    pending: int
    oldest_pending_at: float


def stuck_entry(state: KeyState) -> StuckEntry | None:
    """The ranking entry of a published, non-empty state; ``None`` otherwise."""
    oldest = state.oldest_pending_at
    if not is_published_key(state.queue) or state.pending == 0 or oldest is None:
        return None
    return StuckEntry(state.queue, state.queue_class, state.pending, oldest)


def top_stuck(
    entries: Iterable[StuckEntry], queue_class: QueueClass, *, limit: int
) -> tuple[StuckEntry, ...]:
    """The ``limit`` entries of ``queue_class`` with the oldest pending submission.

    Ties break by queue name, so the result is deterministic.
    """
    mine = (e for e in entries if e.queue_class is queue_class)
    return tuple(heapq.nsmallest(limit, mine, key=lambda e: (e.oldest_pending_at, e.queue)))


def render_stuck(
    queue_class: QueueClass, top: Iterable[StuckEntry], *, now: float
) -> StuckKeysView:
    """The ``stuck_{class}`` record of a ranking (at most ``MAX_STUCK_KEYS`` keys)."""
    keys = tuple(
        StuckKey(queue=e.queue, pending=e.pending, oldest_pending_at=utc(e.oldest_pending_at))
        for e in top
    )[:MAX_STUCK_KEYS]
    return StuckKeysView(
        queue=stuck_queue_name(queue_class),
        queue_class=queue_class,
        keys=keys,
        updated_at=utc(now),
    )


class CoPartitioningError(RuntimeError):
    """The input topics cannot be co-partitioned; the message says which and how."""


def check_copartitioning(partition_counts: Mapping[str, int | None]) -> int:
    """The common partition count of the input topics, or ``CoPartitioningError``.

    Submissions and decisions are keyed alike; a key's submission and decision share a
    partition number only when every input topic has the same number of partitions.
    ``None`` means the topic does not exist.
    """
    missing = sorted(t for t, n in partition_counts.items() if n is None)
    if missing:
        raise CoPartitioningError(
            f"input topics missing: {', '.join(missing)} (create them with `modq topics create`)"
        )
    counts = {t: n for t, n in partition_counts.items() if n is not None}
    if not counts:
        raise CoPartitioningError("no input topics given")
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{t}={n}" for t, n in sorted(counts.items()))
        raise CoPartitioningError(
            "submissions and decisions topics must have the same partition count (they are "
            f"keyed alike and the queue state is partitioned by key); found {shown}"
        )
    return next(iter(counts.values()))
