"""Per-partition offset book-keeping: what may be committed, and what is still in flight.

Invariant (ARCHITECTURE.md #2): a partition's committed offset never passes an unfinished
record. Records are registered in offset order as they are consumed; they finish in any
order; :meth:`OffsetTracker.take_committable` releases, per partition, the prefix of finished
records and the offset one past it.

Stopping without duplicates: :meth:`OffsetTracker.seal` freezes a partition's intake at the
furthest record started so far. Records past it are not started (:meth:`OffsetTracker.start`
says no) and not waited for (:meth:`OffsetTracker.pending`); once everything up to it has
finished, the committable prefix covers every finished record, so the next owner re-reads
only records nobody decided.

Pure book-keeping: no Kafka, no clock, no asyncio. The worker owns one tracker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
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
    started_max: int = -1
    limit: int | None = None
    unfinished: int = 0
    completed: frozenset[int] = frozenset()
    """Offsets a previous owner finished beyond its committed offset: not processed again."""
    """Registered, unfinished records (up to ``limit`` once sealed): O(1) drain checks."""

    def needed(self, offset: int) -> bool:
        return self.limit is None or offset <= self.limit


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

    def assign(
        self, tps: Iterable[TP], completed: Mapping[TP, frozenset[int]] | None = None
    ) -> None:
        """Start owning ``tps`` (a fresh generation; previous state of them is dropped).

        ``completed``: offsets a previous owner already finished (from the commit metadata);
        they are registered as finished when consumed and never processed again.
        """
        for tp in tps:
            self._generation += 1
            done = (completed or {}).get(tp, frozenset())
            self._parts[tp] = _Partition(self._generation, completed=done)

    def completed_earlier(self, tp: TP, offset: int) -> bool:
        """Whether a previous owner already finished ``offset`` of ``tp``."""
        part = self._parts.get(tp)
        return part is not None and offset in part.completed

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
        slot: _Slot[R] = _Slot(offset, done=offset in part.completed)
        part.slots.append(slot)
        part.by_offset[offset] = slot
        if not slot.done and part.needed(offset):
            part.unfinished += 1
        return part.generation

    def start(self, tp: TP, offset: int, generation: int) -> bool:
        """Whether the registered record may be processed now (then it counts as started).

        False when ownership moved on, or the partition is sealed and the record lies past
        its limit: such a record stays unfinished and is left to the next owner.
        """
        part = self._parts.get(tp)
        if part is None or part.generation != generation or offset not in part.by_offset:
            return False
        if not part.needed(offset):
            return False
        part.started_max = max(part.started_max, offset)
        return True

    def seal(self, tps: Iterable[TP] | None = None) -> None:
        """Stop intake of ``tps`` (default: all): only records up to the furthest started one
        are still to be processed. Idempotent; a later :meth:`assign` unseals."""
        for tp in self._parts if tps is None else tps:
            part = self._parts.get(tp)
            if part is not None and part.limit is None:
                part.limit = part.started_max
                part.unfinished = sum(
                    1 for s in part.slots if not s.done and s.offset <= part.started_max
                )

    def finish(self, tp: TP, offset: int, generation: int, result: R | None = None) -> bool:
        """Mark a record finished (with an optional result); False if ownership moved on."""
        part = self._parts.get(tp)
        if part is None or part.generation != generation:
            return False
        slot = part.by_offset.get(offset)
        if slot is None:
            return False
        if not slot.done and part.needed(offset):
            part.unfinished -= 1
        slot.done = True
        slot.result = result
        return True

    def pending(self, tp: TP | None = None) -> int:
        """Unfinished records still to be processed (of ``tp``, or of every owned partition):
        registered ones, except those past a sealed partition's limit."""
        if tp is None:
            parts = list(self._parts.values())
        else:
            part = self._parts.get(tp)
            parts = [] if part is None else [part]
        return sum(p.unfinished for p in parts)

    def buffered(self) -> int:
        """Registered records not yet released by :meth:`take_committable`."""
        return sum(len(p.slots) for p in self._parts.values())

    def expects(self, tp: TP, offset: int) -> bool:
        """Whether ``offset`` of ``tp`` may be registered now (owned, and past the last one)."""
        part = self._parts.get(tp)
        return part is not None and (not part.slots or offset > part.slots[-1].offset)

    def committable(self) -> bool:
        """Whether some partition has a finished prefix to release (O(partitions))."""
        return any(p.slots and p.slots[0].done for p in self._parts.values())

    def take_committable(self, tps: Iterable[TP] | None = None) -> Release[R]:
        """Release the finished prefix of every (or each of ``tps``) partition.

        The caller owns what is returned (see :class:`Release`): it must commit the offsets
        (retrying on failure) and, under exactly-once, publish the results in the same
        transaction; if that fails it must rewind to ``starts`` (or give the partitions up).
        """
        release: Release[R] = Release()
        wanted = None if tps is None else set(tps)
        for tp, part in self._parts.items():
            if wanted is not None and tp not in wanted:
                continue
            while part.slots and part.slots[0].done:
                slot = part.slots.popleft()
                del part.by_offset[slot.offset]
                release.starts.setdefault(tp, slot.offset)
                if slot.result is not None:
                    release.results.append((tp, slot.result))
                release.offsets[tp] = slot.offset + 1
            if part.slots:
                release.heads[tp] = part.slots[0].offset
                release.finished_beyond[tp] = tuple(s.offset for s in part.slots if s.done)
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
    heads: dict[TP, int] = field(default_factory=dict)
    """Per partition, the oldest record still unfinished (a safe offset to commit)."""
    finished_beyond: dict[TP, tuple[int, ...]] = field(default_factory=dict)
    """Per partition, offsets already finished past the still-unfinished one (at-least-once
    commits them as metadata, see :mod:`streams.offset_map`)."""
