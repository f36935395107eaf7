"""Trusted construction: models built without validation equal the validated ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.codec import decode_decision, encode
from schemas.decisions import (
    Decision,
    SourcePosition,
    Verdict,
    build_decision,
    encode_decision,
)
from schemas.submissions import (
    PostSubmission,
    PrivateMessageSubmission,
    Submission,
    SubmissionKind,
    TopicSubmission,
)
from schemas.trusted import construct
from streams.moderation import ModerationInput
from streams.processing import moderation_input

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SOURCE = SourcePosition(topic="u.submissions.posts", partition=2, offset=41)
SUBMISSIONS: list[Submission] = [
    TopicSubmission(id="s1", submitted_at=AT, topic_id="t1", author_id="a", title="Hi", body="b"),
    PostSubmission(id="s2", submitted_at=AT, topic_id="t1", author_id="a", body="hello", seq=3),
    PrivateMessageSubmission(
        id="s3", submitted_at=AT, sender_id="zoe", recipient_id="adam", body="psst"
    ),
]


def validated_decision(
    submission: Submission, verdict: Verdict, reasons: tuple[str, ...], decided_at: datetime
) -> Decision:
    """The decision built the slow way: every field validated by pydantic."""
    return Decision(
        submission_id=submission.id,
        kind=SubmissionKind(submission.kind),
        queue=submission.queue_name,
        verdict=verdict,
        reasons=reasons,
        decided_at=decided_at,
        source=SOURCE,
        worker_id="w1",
    )


def test_construct_equals_validation_and_serialises_the_same_bytes() -> None:
    fields: dict[str, Any] = {"topic": "u.submissions.posts", "partition": 2, "offset": 41}
    built = construct(SourcePosition, dict(fields))
    assert built == SourcePosition(**fields)
    assert encode(built) == encode(SourcePosition(**fields))
    assert built.model_fields_set == set(fields)
    with pytest.raises(ValidationError):  # still frozen
        built.offset = 7  # type: ignore[misc]


def test_construct_refuses_an_incomplete_set_of_fields() -> None:
    with pytest.raises(AssertionError, match="SourcePosition"):
        construct(SourcePosition, {"topic": "t", "partition": 0})


@pytest.mark.parametrize("submission", SUBMISSIONS, ids=lambda s: s.kind)
def test_moderation_input_equals_the_validated_input(submission: Submission) -> None:
    built = moderation_input(submission)
    author = getattr(submission, "author_id", None) or getattr(submission, "sender_id", None)
    expected = ModerationInput(
        submission_id=submission.id,
        kind=SubmissionKind(submission.kind),
        author_id=author,
        title=getattr(submission, "title", None),
        body=submission.body,
        submitted_at=submission.submitted_at,
    )
    assert built == expected
    assert built.model_dump() == expected.model_dump()


@pytest.mark.parametrize("submission", SUBMISSIONS, ids=lambda s: s.kind)
@pytest.mark.parametrize("verdict", list(Verdict))
def test_trusted_decision_has_the_bytes_of_the_validated_one(
    submission: Submission, verdict: Verdict
) -> None:
    reasons = () if verdict is Verdict.APPROVED else ("too many links",)
    built = build_decision(
        submission, verdict=verdict, reasons=reasons, decided_at=AT, source=SOURCE, worker_id="w1"
    )
    validated = validated_decision(submission, verdict, reasons, AT)
    assert built == validated
    assert encode(built) == encode(validated)
    assert type(built.kind) is SubmissionKind
    assert type(built.verdict) is Verdict


def test_a_verdict_that_is_not_one_is_validated_and_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        build_decision(
            SUBMISSIONS[1],
            verdict="maybe",  # type: ignore[arg-type]
            decided_at=AT,
            source=SOURCE,
            worker_id="w1",
        )
    assert [e["loc"] for e in caught.value.errors()] == [("verdict",)]


DECIDED_AT = [
    AT,
    datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2025, 3, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),
]
REASONS: list[tuple[str, ...]] = [
    (),
    ("too many links",),
    ("banned term: ｆｒｅｅ", 'quote " and \\ backslash', "é" * 500),
]


@pytest.mark.parametrize("submission", SUBMISSIONS, ids=lambda s: s.kind)
@pytest.mark.parametrize("verdict", list(Verdict))
@pytest.mark.parametrize("decided_at", DECIDED_AT, ids=["utc", "micros", "plus2"])
@pytest.mark.parametrize("reasons", REASONS, ids=["none", "one", "odd"])
def test_encoded_decision_is_the_validated_models_bytes(
    submission: Submission, verdict: Verdict, decided_at: datetime, reasons: tuple[str, ...]
) -> None:
    validated = validated_decision(submission, verdict, reasons, decided_at)
    fast = encode_decision(
        submission,
        verdict=verdict,
        reasons=reasons,
        decided_at=decided_at,
        topic=SOURCE.topic,
        partition=SOURCE.partition,
        offset=SOURCE.offset,
        worker_id="w1",
    )
    assert fast == encode(validated)
    assert decode_decision(fast) == validated


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"worker_id": "no spaces"}, "worker_id"),
        ({"reasons": ("",)}, "reasons"),
        ({"reasons": ("x" * 501,)}, "reasons"),
        ({"topic": "bad topic"}, "topic"),
        ({"offset": -1}, "offset"),
        ({"partition": True}, "partition"),
        ({"verdict": "maybe"}, "verdict"),
        ({"decided_at": datetime(2025, 3, 1, 12, 0)}, "decided_at"),
    ],
)
def test_encoded_decision_validates_what_it_cannot_trust(
    change: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {
        "verdict": Verdict.APPROVED,
        "decided_at": AT,
        "topic": SOURCE.topic,
        "partition": 0,
        "offset": 0,
        "worker_id": "w1",
        **change,
    }
    with pytest.raises(ValidationError) as caught:
        encode_decision(SUBMISSIONS[1], **args)
    assert field in str(caught.value.errors()[0]["loc"])
