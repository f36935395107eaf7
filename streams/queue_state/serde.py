"""Table values ⇄ bytes: how the queue-state tables write their changelog records.

Pure (no faust). Compact JSON arrays; ids, counts and times only, never a body
(architecture invariant 6). A value that does not parse raises ``ValueError``.

``StoredKey`` is what the per-key table holds: the state and the partition it belongs to
(the partition number of its submissions and decisions, so the adapter can sweep a
partition's empty states while handling that partition's events).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from schemas.queues import QueueClass
from streams.queue_state.state import ClassStats, KeyState, Window


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A per-key table value."""

    partition: int
    state: KeyState


def dump_key(value: StoredKey) -> bytes:
    """Bytes of a per-key table value."""
    s = value.state
    return json.dumps(
        [
            1,
            value.partition,
            s.queue,
            s.queue_class.value,
            [[sid, at] for sid, at in s.pending_ids],
            s.untracked,
            s.untracked_oldest_at,
            list(s.recent_decided),
            dict(s.verdicts),
            s.last_decision_at,
            s.emptied_at,
        ],
        separators=(",", ":"),
    ).encode()


def load_key(raw: bytes) -> StoredKey:
    """A per-key table value from ``dump_key``'s bytes."""
    data = _array(raw, 11)
    return StoredKey(
        partition=int(data[1]),
        state=KeyState(
            queue=str(data[2]),
            queue_class=QueueClass(data[3]),
            pending_ids=tuple((str(sid), float(at)) for sid, at in data[4]),
            untracked=int(data[5]),
            untracked_oldest_at=_opt_float(data[6]),
            recent_decided=tuple(str(sid) for sid in data[7]),
            verdicts={str(k): int(v) for k, v in dict(data[8]).items()},
            last_decision_at=_opt_float(data[9]),
            emptied_at=_opt_float(data[10]),
        ),
    )


def dump_class(stats: ClassStats) -> bytes:
    """Bytes of a per-class counter."""
    return json.dumps(
        [
            1,
            stats.queue_class.value,
            stats.pending,
            stats.arrivals,
            stats.decisions,
            dict(stats.verdicts),
            [[w.start, w.arrivals, w.decisions] for w in stats.windows],
        ],
        separators=(",", ":"),
    ).encode()


def load_class(raw: bytes) -> ClassStats:
    """A per-class counter from ``dump_class``'s bytes."""
    data = _array(raw, 7)
    return ClassStats(
        queue_class=QueueClass(data[1]),
        pending=int(data[2]),
        arrivals=int(data[3]),
        decisions=int(data[4]),
        verdicts={str(k): int(v) for k, v in dict(data[5]).items()},
        windows=tuple(Window(float(s), int(a), int(d)) for s, a, d in data[6]),
    )


def _array(raw: bytes, length: int) -> list[Any]:
    data = json.loads(raw)
    if not isinstance(data, list) or len(data) != length or data[0] != 1:
        raise ValueError(f"not a version-1 table value of {length} fields")
    return data


def _opt_float(value: object) -> float | None:
    return None if value is None else float(str(value))
