"""Moderation decisions, as workers publish them to ``forum.moderation.decisions``.

Contract (``CONTRACT.md``, "Decision JSON"): ``submission_id``, ``kind``, ``queue``,
``verdict``, ``reasons``, ``decided_at``, ``source`` (``topic``/``partition``/``offset`` of
the submission) and ``worker_id``. A decision is keyed like its submission and carries ids and
short reason codes only, never a body (architecture invariant 6).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict, StringConstraints
from pydantic_core import to_json

from schemas.fields import (
    ENTITY_ID_PATTERN,
    KAFKA_TOPIC_PATTERN,
    MAX_ID_LENGTH,
    MAX_KAFKA_TOPIC_LENGTH,
    Count,
    EntityId,
    KafkaTopic,
    SubmissionId,
    Timestamp,
    WireModel,
)
from schemas.queues import DECISION_QUEUE_PATTERN
from schemas.submissions import Submission, SubmissionKind
from schemas.trusted import construct

MAX_REASONS = 32
"""Most reasons one decision lists."""

MAX_REASON_LENGTH = 500
"""Longest single reason, in characters."""

Reason = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_REASON_LENGTH)]
"""One reason: a rule id or a short sentence, never submission text."""


class Verdict(StrEnum):
    """What moderation concluded."""

    APPROVED = "approved"
    REJECTED = "rejected"
    NEEDS_REVIEW = "needs_review"
    FAILED = "failed"
    """Processing gave up; the submission is also in the DLQ."""


class SourcePosition(WireModel):
    """Where a record was read: Kafka topic, partition and offset."""

    topic: KafkaTopic
    partition: Count
    offset: Count


class Decision(WireModel):
    """The outcome for one submission, keyed like the submission."""

    submission_id: SubmissionId
    """The submission's ``id``: its idempotency key."""
    kind: SubmissionKind
    """The submission's ``kind``."""
    queue: Annotated[str, Strict(), StringConstraints(pattern=DECISION_QUEUE_PATTERN)]
    """The per-key queue (``topic_{id}``, ``users_{a}:{b}``) or ``global_topics``."""
    verdict: Verdict
    reasons: Annotated[tuple[Reason, ...], Field(max_length=MAX_REASONS)] = ()
    """Why, as rule ids or short sentences; empty for a plain approval."""
    decided_at: Timestamp
    """When the worker decided (RFC 3339 with a UTC offset)."""
    source: SourcePosition
    """Where the submission was read."""
    worker_id: EntityId
    """The worker that decided."""


def build_decision(
    submission: Submission,
    *,
    verdict: Verdict,
    reasons: Iterable[str] = (),
    decided_at: datetime,
    source: SourcePosition,
    worker_id: str,
) -> Decision:
    """The decision for ``submission``: its id, kind and queue, with the given outcome.

    Publish it with ``submission.key`` as the record key. Raises ``pydantic.ValidationError``
    if a reason or the worker id breaks the contract (a programming error, not bad input).

    Every worker calls this once per record, so when the only inputs not valid by
    construction (the reasons, the worker id, an aware ``decided_at``) pass a cheap check,
    the model is built without pydantic's validation (:func:`schemas.trusted.construct`);
    anything else is fully validated.
    """
    reasons = tuple(reasons)
    member = _trusted_verdict(submission, verdict, reasons, decided_at, worker_id)
    trusted = member is not None and isinstance(source, SourcePosition)
    fields = _fields(
        submission,
        kind=_KINDS.get(submission.kind, submission.kind),
        verdict=member if member is not None else verdict,
        reasons=reasons,
        decided_at=decided_at,
        source=source,
        worker_id=worker_id,
    )
    return construct(Decision, fields) if trusted else Decision(**fields)


def encode_decision(
    submission: Submission,
    *,
    verdict: Verdict,
    reasons: Iterable[str] = (),
    decided_at: datetime,
    topic: str,
    partition: int,
    offset: int,
    worker_id: str,
) -> bytes:
    """The wire bytes of the decision :func:`build_decision` would build, with ``source``
    given as the broker's own coordinates (``topic``, ``partition``, ``offset``).

    Byte for byte ``encode(build_decision(...))`` (tests pin it): when the inputs pass the
    same cheap checks as there, the fields go to pydantic's serializer as a plain dict, in
    the model's field order, with no model built at all (the worker's hot path: about a
    third of building and encoding the model). Anything else takes the validating path and
    raises ``pydantic.ValidationError`` like :func:`build_decision`.
    """
    reasons = tuple(reasons)
    member = _trusted_verdict(submission, verdict, reasons, decided_at, worker_id)
    if (
        member is None
        or type(partition) is not int
        or type(offset) is not int
        or partition < 0
        or offset < 0
        or not _valid_topic(topic)
    ):
        source = SourcePosition(topic=topic, partition=partition, offset=offset)
        decision = build_decision(
            submission,
            verdict=verdict,
            reasons=reasons,
            decided_at=decided_at,
            source=source,
            worker_id=worker_id,
        )
        return decision.__pydantic_serializer__.to_json(decision)
    # Plain strings, not enum members: pydantic_core serialises an enum ~10x slower.
    source_fields = {"topic": topic, "partition": partition, "offset": offset}
    return to_json(
        _fields(
            submission,
            kind=submission.kind,
            verdict=member.value,
            reasons=reasons,
            decided_at=decided_at,
            source=source_fields,
            worker_id=worker_id,
        )
    )


def _fields(
    submission: Submission,
    *,
    kind: object,
    verdict: object,
    reasons: tuple[str, ...],
    decided_at: datetime,
    source: object,
    worker_id: str,
) -> dict[str, object]:
    """A decision's fields, in the model's order (which is also the wire order), for both
    :func:`build_decision` (members and a model) and :func:`encode_decision` (plain values)."""
    return {
        "submission_id": submission.id,
        "kind": kind,
        "queue": submission.queue_name,
        "verdict": verdict,
        "reasons": reasons,
        "decided_at": decided_at,
        "source": source,
        "worker_id": worker_id,
    }


# Enum lookups by value without Enum.__call__ (a StrEnum member hashes like its value).
_KINDS = {kind.value: kind for kind in SubmissionKind}
_VERDICTS = {verdict.value: verdict for verdict in Verdict}


def _trusted_verdict(
    submission: Submission,
    verdict: Verdict,
    reasons: tuple[str, ...],
    decided_at: datetime,
    worker_id: str,
) -> Verdict | None:
    """``verdict``'s member when every decision input that is not valid by construction
    passes the cheap checks (kind, verdict, reasons, an aware ``decided_at``, the worker
    id); None when the decision must be validated instead."""
    member = _VERDICTS.get(verdict)
    if (
        member is None
        or submission.kind not in _KINDS
        or not _valid_reasons(reasons)
        or decided_at.utcoffset() is None
        or not _valid_worker_id(worker_id)
    ):
        return None
    return member


def _valid_reasons(reasons: tuple[object, ...]) -> bool:
    return len(reasons) <= MAX_REASONS and all(
        type(r) is str and 0 < len(r) <= MAX_REASON_LENGTH for r in reasons
    )


@functools.lru_cache(maxsize=256)
def _valid_name(value: str, pattern: str, max_length: int) -> bool:
    """Whether ``value`` is a str of 1 to ``max_length`` characters matching ``pattern``
    (cached: a worker sees a handful of topics and one worker id)."""
    return (
        type(value) is str
        and 0 < len(value) <= max_length
        and re.fullmatch(pattern, value) is not None
    )


def _valid_topic(topic: str) -> bool:
    return _valid_name(topic, KAFKA_TOPIC_PATTERN, MAX_KAFKA_TOPIC_LENGTH)


def _valid_worker_id(worker_id: str) -> bool:
    return _valid_name(worker_id, ENTITY_ID_PATTERN, MAX_ID_LENGTH)
