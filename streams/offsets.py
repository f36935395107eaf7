"""Per-partition offset book-keeping: what may be committed, and what is still in flight.

Invariant (ARCHITECTURE.md #2): a partition's committed offset never passes an unfinished
record. Records are registered in offset order as they are consumed; they finish in any
order; :meth:`OffsetTracker.take_committable` releases, per partition, the prefix of finished
records and the offset one past it.

Pure book-keeping: no Kafka, no clock, no asyncio. The worker owns one tracker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

TP = tuple[str, int]
"""A topic-partition."""

R = TypeVar("R")


@dataclass(slots=True)
class _Slot(Generic[R]):
    offset: int
    done: bool = False
    result: R | None = None


@dataclass(slots=True)
class _Partition(Generic[R]):
    generation: int
    slots: deque[_Slot[R]] = field(default_factory=deque)
    by_offset: dict[int, _Slot[R]] = field(default_factory=dict)


class OffsetTracker(Generic[R]):
    """Tracks registered records per partition and the contiguous finished prefix.

    A partition is *owned* between :meth:`assign` and :meth:`revoke`; each assignment gets a
    new generation, so work started under an old ownership can be recognised and dropped.
    Each record may carry a result (e.g. the messages to publish under exactly-once), kept
    until the record is released with its prefix by :meth:`take_committable`.
    """

    def __init__(self) -> None:
        self._parts: dict[TP, _Partition[R]] = {}
        self._generation = 0

    # --- ownership ------------------------------------------------------------------------

    def assign(self, tps: Iterable[TP]) -> None:
        """Start owning ``tps`` (a fresh generation; previous state of them is dropped)."""
        for tp in tps:
            self._generation += 1
            self._parts[tp] = _Partition(self._generation)

    def revoke(self, tps: Iterable[TP]) -> None:
        """Stop owning ``tps``; their unfinished records are abandoned, never committed."""
        for tp in tps:
            self._parts.pop(tp, None)

    def generation(self, tp: TP) -> int | None:
        """The ownership generation of ``tp``, or None when not owned."""
        part = self._parts.get(tp)
        return None if part is None else part.generation

    def owns(self, tp: TP, generation: int) -> bool:
        """Whether ``tp`` is still owned under ``generation``."""
        part = self._parts.get(tp)
        return part is not None and part.generation == generation

    @property
    def partitions(self) -> list[TP]:
        """Owned partitions, sorted."""
        return sorted(self._parts)

    # --- records --------------------------------------------------------------------------

    def register(self, tp: TP, offset: int) -> int:
        """Record that ``offset`` of ``tp`` was consumed; returns the ownership generation.

        Offsets of one partition must be registered in increasing order.
        """
        part = self._parts.get(tp)
        if part is None:
            raise KeyError(f"partition {tp} is not assigned")
        if part.slots and offset <= part.slots[-1].offset:
            raise ValueError(f"offset {offset} of {tp} registered out of order")
        slot: _Slot[R] = _Slot(offset)
        part.slots.append(slot)
        part.by_offset[offset] = slot
        return part.generation

    def finish(self, tp: TP, offset: int, generation: int, result: R | None = None) -> bool:
        """Mark a record finished (with an optional result); False if ownership moved on."""
        part = self._parts.get(tp)
        if part is None or part.generation != generation:
            return False
        slot = part.by_offset.get(offset)
        if slot is None:
            return False
        slot.done = True
        slot.result = result
        return True

    def pending(self, tp: TP | None = None) -> int:
        """Registered but unfinished records (of ``tp``, or of every owned partition)."""
        parts = (
            [self._parts[tp]]
            if tp is not None and tp in self._parts
            else ([] if tp is not None else list(self._parts.values()))
        )
        return sum(1 for p in parts for s in p.slots if not s.done)

    def buffered(self) -> int:
        """Registered records not yet released by :meth:`take_committable`."""
        return sum(len(p.slots) for p in self._parts.values())

    def take_committable(self) -> Release[R]:
        """Release the finished prefix of every partition (see :class:`Release`).

        The caller owns what is returned: it must commit the offsets (retrying on failure)
        and, under exactly-once, publish the results in the same transaction.
        """
        release: Release[R] = Release()
        for tp, part in self._parts.items():
            while part.slots and part.slots[0].done:
                slot = part.slots.popleft()
                del part.by_offset[slot.offset]
                release.starts.setdefault(tp, slot.offset)
                if slot.result is not None:
                    release.results.append((tp, slot.result))
                release.offsets[tp] = slot.offset + 1
        return release


@dataclass(slots=True)
class Release(Generic[R]):
    """Finished prefixes taken from a tracker.

    ``offsets``: per partition, the offset to commit (one past the prefix). ``starts``: the
    first offset released, where to rewind if the commit fails. ``results``: the released
    records' results, in offset order per partition.
    """

    offsets: dict[TP, int] = field(default_factory=dict)
    starts: dict[TP, int] = field(default_factory=dict)
    results: list[tuple[TP, R]] = field(default_factory=list)
