"""Frozen models of one run's history: what was submitted, decided, dead-lettered, shown.

A :class:`History` is plain data, built by :mod:`chaos.recorder` from the topics (or by hand
in tests) and judged by :func:`chaos.checker.check`. Nothing here does I/O.

Identity rules the checker relies on:

- a submission is identified by its ``id`` (the contract's idempotency key) and located by
  its :class:`Position` (source topic, partition, offset);
- a record whose value is not a valid submission (bad JSON, not UTF-8, oversize, schema
  violation) has ``kind=None`` and a synthetic id ``"@{topic}/{partition}/{offset}"``
  (see :func:`position_id`), so it can only be resolved by a dead letter;
- decisions point back at their submission by ``submission_id`` and ``source``; dead
  letters by ``source`` only (their value is the original bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class Position(NamedTuple):
    """Where a record sits in Kafka."""

    topic: str
    partition: int
    offset: int


def position_id(position: Position) -> str:
    """The synthetic id of a record that carries no valid submission id."""
    return f"@{position.topic}/{position.partition}/{position.offset}"


@dataclass(frozen=True, slots=True)
class SubmittedRecord:
    """A record on a submission topic (as acknowledged to its publisher, or as read back).

    ``seq`` is the optional per-key sequence number of the submission. ``kind`` is ``None``
    for a record that is not a valid submission (poison). ``private_body`` is set for private
    messages only, and only so the checker can look for it where it must never appear.
    """

    id: str
    key: str
    seq: int | None
    topic: str
    partition: int
    offset: int
    kind: str | None
    private_body: str | None = None

    @property
    def position(self) -> Position:
        """The record's topic, partition and offset."""
        return Position(self.topic, self.partition, self.offset)

    @property
    def valid(self) -> bool:
        """Whether the value is a valid submission (poison records are not)."""
        return self.kind is not None


@dataclass(frozen=True, slots=True)
class DecidedRecord:
    """A decision as read (read_committed) from the decisions topic at ``partition/offset``."""

    submission_id: str
    key: str
    verdict: str
    source: Position
    worker_id: str
    partition: int
    offset: int
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record on the DLQ at ``partition/offset``; ``source`` comes from its headers."""

    key: str | None
    source: Position
    error_type: str
    worker_id: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class VisualizationRecordSeen:
    """One record of the visualization topic: its key and value text (``None``: tombstone)."""

    key: str
    offset: int
    text: str | None


@dataclass(frozen=True, slots=True)
class VisualizationLeak:
    """A private-message body found where it must never appear (invariant 6).

    ``where`` is ``"visualization"`` (``offset`` on that topic) or ``"decision"``
    (``offset`` on the decisions topic).
    """

    where: str
    offset: int
    submission_id: str


@dataclass(frozen=True, slots=True)
class History:
    """Everything one run produced, for the checker.

    ``submitted``: the ground truth, ideally the publisher's log of acknowledged records;
    ``stored``: positions read back from the submission topics, or ``None`` when not read
    (then nothing can be reported lost). ``decided`` and ``dead_letters`` in any order: the
    checker orders them by partition and offset itself.
    """

    submitted: tuple[SubmittedRecord, ...]
    decided: tuple[DecidedRecord, ...]
    dead_letters: tuple[DeadLetter, ...]
    visualization: tuple[VisualizationRecordSeen, ...] = ()
    stored: frozenset[Position] | None = None
