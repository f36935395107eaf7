"""Completed offsets beyond the committed one, carried in the commit's metadata string.

Per-key concurrency finishes records out of order: while one slow key holds a partition's
oldest record, hundreds of later records may already be decided. The committed offset must
stay at that oldest unfinished record (ARCHITECTURE.md invariant 2), so after a crash every
later record would be decided again. Under at-least-once the worker therefore commits, with
each offset, the set of records beyond it that are already finished (their decisions were
acknowledged); the next owner reads it back and skips them. (Confluent's parallel consumer
does the same.)

Format: ``modq1:`` followed by comma-separated ranges of offsets relative to the committed
offset, in base 36 (``3``, ``5-9``). Pure functions; no Kafka. The broker caps metadata at
``offset.metadata.max.bytes`` (4096 by default): an encoding that would exceed
:data:`MAX_CHARS` drops its highest ranges, which only means those records are decided again,
never that one is lost. Anything unreadable decodes to the empty set for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterable

PREFIX = "modq1:"
MAX_CHARS = 3000


def _b36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if value == 0:
            return out


def _ranges(deltas: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for delta in deltas:
        if ranges and delta == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], delta)
        else:
            ranges.append((delta, delta))
    return ranges


def encode(committed: int, finished: Iterable[int], max_chars: int = MAX_CHARS) -> str:
    """The metadata for committing ``committed`` with ``finished`` offsets beyond it done.

    Offsets at or below ``committed`` are ignored. Returns ``""`` when there are none.
    """
    deltas = sorted({o - committed for o in finished if o > committed})
    if not deltas:
        return ""
    parts: list[str] = []
    size = len(PREFIX)
    for low, high in _ranges(deltas):
        part = _b36(low) if low == high else f"{_b36(low)}-{_b36(high)}"
        size += len(part) + (1 if parts else 0)
        if size > max_chars:
            break  # the rest are decided again after a crash: duplicates, never loss
        parts.append(part)
    return PREFIX + ",".join(parts)


def decode(committed: int, metadata: str | None) -> frozenset[int]:
    """The finished offsets ``metadata`` records beyond ``committed`` (empty if unreadable)."""
    if not metadata or not metadata.startswith(PREFIX):
        return frozenset()
    offsets: set[int] = set()
    try:
        for part in metadata[len(PREFIX) :].split(","):
            low, _, high = part.partition("-")
            first, last = int(low, 36), int(high or low, 36)
            if first < 1 or last < first or last - first > 1_000_000:
                return frozenset()
            offsets.update(range(committed + first, committed + last + 1))
    except ValueError:
        return frozenset()
    return frozenset(offsets)
