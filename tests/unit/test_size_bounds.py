"""The encoded-size bound of submission models that lets a batch defer their encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas.codec import encode
from schemas.size_bounds import SEQ_LIMIT, max_encoded_bytes, within_bound
from schemas.submissions import (
    MAX_BODY_LENGTH,
    MAX_TITLE_LENGTH,
    PostSubmission,
    PrivateMessageSubmission,
    SubmissionModel,
    TopicSubmission,
)

LATEST = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(-timedelta(hours=23)))
LONG_ID = "x" * 64
WIDE = ["\x00", "\x1f", '"', "\\", "é", "€", "😀", "a"]
"""Characters of every JSON width: escaped as \\u00XX, escaped as two, UTF-8 of 2-4 bytes."""


def _widest(cls: type[SubmissionModel], char: str) -> SubmissionModel:
    """A valid instance of ``cls`` as long as its field limits allow, filled with ``char``."""
    common = {"id": LONG_ID, "submitted_at": LATEST, "seq": SEQ_LIMIT - 1}
    body = char * MAX_BODY_LENGTH
    if cls is TopicSubmission:
        fields = {"topic_id": LONG_ID, "author_id": LONG_ID, "title": char * MAX_TITLE_LENGTH}
    elif cls is PostSubmission:
        fields = {"topic_id": LONG_ID, "author_id": LONG_ID}
    else:
        fields = {"sender_id": LONG_ID, "recipient_id": "y" * 64}
    return cls.model_validate({**common, **fields, "body": body})


@pytest.mark.parametrize("cls", [TopicSubmission, PostSubmission, PrivateMessageSubmission])
@pytest.mark.parametrize("char", WIDE)
def test_no_valid_instance_encodes_to_more_than_the_bound(
    cls: type[SubmissionModel], char: str
) -> None:
    bound = max_encoded_bytes(cls)
    assert bound is not None
    model = _widest(cls, char)
    assert within_bound(model)
    assert len(encode(model)) <= bound
    if char == "\x00":  # the widest character: the bound is the widest valid instance, +ids
        assert bound - len(encode(model)) < 6 * 64 * 4


def test_the_bound_is_far_below_the_default_record_limit() -> None:
    bounds = [max_encoded_bytes(c) for c in (TopicSubmission, PostSubmission)]
    assert all(b is not None and 300_000 < b < 500_000 for b in bounds)


def test_extras_and_huge_seq_numbers_are_outside_the_bound() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    plain = PostSubmission(id="p", submitted_at=now, topic_id="t", author_id="u", body="b")
    assert within_bound(plain)
    extra = PostSubmission.model_validate({**plain.model_dump(), "newer": "x" * 10})
    assert not within_bound(extra)
    assert within_bound(plain.model_copy(update={"seq": SEQ_LIMIT - 1}))
    assert not within_bound(plain.model_copy(update={"seq": SEQ_LIMIT}))


class _Tagged(PostSubmission):
    tags: tuple[str, ...] = ()


class _Counted(PostSubmission):
    count: int = 0


def test_a_field_of_a_type_without_a_bound_makes_the_class_unbounded() -> None:
    assert max_encoded_bytes(_Tagged) is None
    assert max_encoded_bytes(_Counted) is None
