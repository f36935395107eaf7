"""Submission models: routing (key, queue, class), extras, limits, and the decision helper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas.codec import encode
from schemas.decisions import Decision, SourcePosition, Verdict, build_decision
from schemas.queues import QueueClass
from schemas.submissions import (
    MAX_BODY_LENGTH,
    MAX_TITLE_LENGTH,
    QUEUE_CLASS_BY_KIND,
    SUBMISSION_MODELS,
    PostSubmission,
    PrivateMessageSubmission,
    Submission,
    SubmissionKind,
    TopicSubmission,
    submission_kind,
)

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SOURCE = SourcePosition(topic="forum.submissions.posts", partition=3, offset=42)


def topic(**overrides: object) -> TopicSubmission:
    fields: dict[str, object] = {
        "id": "s-1",
        "submitted_at": AT,
        "topic_id": "t.7",
        "author_id": "alice",
        "title": "Hello",
        "body": "",
    }
    return TopicSubmission.model_validate({**fields, **overrides})


def post(**overrides: object) -> PostSubmission:
    fields: dict[str, object] = {
        "id": "s-2",
        "submitted_at": AT,
        "topic_id": "t.7",
        "author_id": "bob",
        "body": "a reply",
    }
    return PostSubmission.model_validate({**fields, **overrides})


def message(**overrides: object) -> PrivateMessageSubmission:
    fields: dict[str, object] = {
        "id": "s_3",
        "submitted_at": AT,
        "sender_id": "zoe",
        "recipient_id": "adam",
        "body": "hi",
    }
    return PrivateMessageSubmission.model_validate({**fields, **overrides})


def locations(error: ValidationError) -> list[tuple[int | str, ...]]:
    return [tuple(issue["loc"]) for issue in error.errors()]


def test_topic_routes_to_the_global_queue_keyed_by_topic_id() -> None:
    submission = topic()
    assert (submission.key, submission.queue_name) == ("t.7", "global_topics")
    assert submission.queue_class is QueueClass.GLOBAL_TOPICS


def test_post_routes_to_its_topic_queue() -> None:
    submission = post()
    assert (submission.key, submission.queue_name) == ("t.7", "topic_t.7")
    assert submission.queue_class is QueueClass.TOPIC_POSTS


def test_private_message_routes_to_the_sorted_pair_either_way() -> None:
    there = message()
    back = message(sender_id="adam", recipient_id="zoe")
    assert there.key == back.key == "adam:zoe"
    assert there.queue_name == back.queue_name == "users_adam:zoe"
    assert there.queue_class is QueueClass.PRIVATE_MESSAGES


def test_pair_sorts_as_strings_not_case_folded() -> None:
    assert message(sender_id="b", recipient_id="B").key == "B:b"


def test_union_picks_the_model_by_kind() -> None:
    adapter: TypeAdapter[Submission] = TypeAdapter(Submission)
    parsed = adapter.validate_python({**post().model_dump(), "kind": "post"})
    assert isinstance(parsed, PostSubmission)
    assert submission_kind(parsed) is SubmissionKind.POST


def test_every_kind_has_a_model_and_a_class() -> None:
    for kind in SubmissionKind:
        assert SUBMISSION_MODELS[kind].model_fields["kind"].default == kind.value
    assert set(QUEUE_CLASS_BY_KIND.values()) == set(QueueClass)


def test_extra_fields_are_kept_but_do_not_shadow_routing() -> None:
    submission = post(key="evil", queue_name="x", trace={"id": 1})
    assert submission.key == "t.7"
    assert submission.queue_name == "topic_t.7"
    assert submission.model_extra == {"key": "evil", "queue_name": "x", "trace": {"id": 1}}


def test_models_are_frozen() -> None:
    submission = post()
    with pytest.raises(ValidationError):
        submission.body = "changed"  # type: ignore[misc]


def test_recipient_equal_to_sender_is_named_on_recipient_id() -> None:
    with pytest.raises(ValidationError) as caught:
        message(sender_id="zoe", recipient_id="zoe")
    assert locations(caught.value) == [("recipient_id",)]
    assert caught.value.errors()[0]["msg"] == "must differ from sender_id"


@pytest.mark.parametrize(
    "when",
    [datetime(2024, 5, 1, 12, 0), "2024-05-01T12:00:00", "2024-05-01", 1_714_564_800],
)
def test_submitted_at_must_carry_an_offset(when: object) -> None:
    with pytest.raises(ValidationError) as caught:
        post(submitted_at=when)
    assert locations(caught.value) == [("submitted_at",)]


@pytest.mark.parametrize(
    "when",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01t12:00:00z",
        "2024-05-01 12:00:00.123456+02:00",
        datetime(2024, 5, 1, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_submitted_at_accepts_rfc3339_with_offset(when: object) -> None:
    assert post(submitted_at=when).submitted_at.utcoffset() is not None


def test_title_and_body_limits_count_characters() -> None:
    assert len(topic(title="é" * MAX_TITLE_LENGTH).title) == MAX_TITLE_LENGTH
    assert len(post(body="é" * MAX_BODY_LENGTH).body) == MAX_BODY_LENGTH
    with pytest.raises(ValidationError) as caught:
        topic(title="x" * (MAX_TITLE_LENGTH + 1), body="x" * (MAX_BODY_LENGTH + 1))
    assert locations(caught.value) == [("title",), ("body",)]


def test_topic_body_may_be_empty_but_post_and_message_bodies_may_not() -> None:
    assert topic(body="").body == ""
    for build in (post, message):
        with pytest.raises(ValidationError) as caught:
            build(body="")
        assert locations(caught.value) == [("body",)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "has.dot"),
        ("id", "x" * 65),
        ("id", ""),
        ("id", "trailing\n"),
        ("topic_id", "a:b"),
        ("topic_id", "with space"),
        ("author_id", 7),
        ("seq", "1"),
        ("seq", -1),
        ("seq", True),
    ],
)
def test_malformed_ids_and_numbers_are_named(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        post(**{field: value})
    assert locations(caught.value) == [(field,)]


def test_ids_allow_their_whole_alphabet() -> None:
    submission = post(id="A-z_09" * 10 + "abcd", topic_id="T.o-p_1", author_id="x" * 64, seq=0)
    assert submission.seq == 0


def test_decision_for_a_submission_carries_ids_only() -> None:
    submission = message(body="secret words")
    decision = build_decision(
        submission,
        verdict=Verdict.REJECTED,
        reasons=["spam.link"],
        decided_at=AT,
        source=SOURCE,
        worker_id="worker-1",
    )
    assert decision == Decision(
        submission_id="s_3",
        kind=SubmissionKind.PRIVATE_MESSAGE,
        queue="users_adam:zoe",
        verdict=Verdict.REJECTED,
        reasons=("spam.link",),
        decided_at=AT,
        source=SOURCE,
        worker_id="worker-1",
    )
    assert "secret" not in decision.model_dump_json()


def test_decision_queue_must_be_a_decision_queue() -> None:
    with pytest.raises(ValidationError) as caught:
        build_decision(
            topic(),
            verdict=Verdict.APPROVED,
            decided_at=AT,
            source=SOURCE,
            worker_id="bad:id",
        )
    assert locations(caught.value) == [("worker_id",)]
    with pytest.raises(ValidationError) as caught:
        Decision.model_validate(
            {
                **build_decision(
                    topic(), verdict=Verdict.APPROVED, decided_at=AT, source=SOURCE, worker_id="w"
                ).model_dump(),
                "queue": "workers",
            }
        )
    assert locations(caught.value) == [("queue",)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reasons": ["x" * 501]}, "reasons"),
        ({"reasons": [""]}, "reasons"),
        ({"reasons": ["r"] * 33}, "reasons"),
        ({"decided_at": datetime(2026, 1, 1)}, "decided_at"),
        ({"worker_id": ""}, "worker_id"),
    ],
)
def test_decision_built_without_validation_only_from_valid_inputs(
    change: dict[str, object], field: str
) -> None:
    # build_decision skips pydantic when its inputs pass a cheap check: that path must give
    # the validated model's exact bytes, and every input the check lets through must be one
    # validation accepts (everything else still raises, on the field).
    args: dict[str, object] = {
        "verdict": Verdict.NEEDS_REVIEW,
        "reasons": ["shouting: 80% capitals", "2 links (max 1)"],
        "decided_at": AT,
        "source": SOURCE,
        "worker_id": "worker-1.a",
    }
    fast = build_decision(message(), **args)  # type: ignore[arg-type]
    assert fast == Decision.model_validate(fast.model_dump())
    assert encode(fast) == encode(Decision.model_validate(fast.model_dump()))
    with pytest.raises(ValidationError) as caught:
        build_decision(message(), **{**args, **change})  # type: ignore[arg-type]
    assert locations(caught.value)[0][0] == field
