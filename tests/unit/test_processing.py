"""RecordProcessor: decisions, every dead-letter class, in-place retries, failed decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from schemas.codec import decode_decision, encode
from schemas.decisions import Verdict
from schemas.dlq import DeadLetterContext
from schemas.errors import ErrorType
from schemas.submissions import PostSubmission, PrivateMessageSubmission, TopicSubmission
from schemas.topics import TopicNames
from streams.kafka_io import Record
from streams.moderation import Policy
from streams.moderation.testing import DelayPolicy, FailingPolicy, FlakyPolicy
from streams.processing import Outcome, RecordProcessor, RetryPolicy

NAMES = TopicNames.from_prefix("u.")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MAX_BYTES = 2048


def _processor(policy: Policy, max_attempts: int = 3) -> RecordProcessor:
    return RecordProcessor(
        policy=policy,
        topics=NAMES,
        worker_id="w1",
        retry=RetryPolicy(max_attempts, 0.0),
        max_record_bytes=MAX_BYTES,
        clock=lambda: NOW,
    )


def _post(seq: int = 0, body: str = "hello") -> PostSubmission:
    return PostSubmission(
        kind="post",
        id=f"p{seq}",
        submitted_at=NOW,
        topic_id="t1",
        author_id="u1",
        body=body,
    )


def _record(value: bytes | None, key: bytes | None = b"t1", topic: str | None = None) -> Record:
    return Record(
        topic=topic or NAMES.submissions_posts,
        partition=2,
        offset=41,
        key=key,
        value=value,
        headers=(),
        timestamp_ms=0,
    )


def _dead_letter(outcome: Outcome) -> DeadLetterContext:
    dlq = outcome.messages[0]
    assert dlq.topic == NAMES.dlq
    return DeadLetterContext.from_headers(dlq.headers)


async def test_a_valid_submission_becomes_one_decision_keyed_like_it() -> None:
    outcome = await _processor(DelayPolicy(0)).process(_record(encode(_post())))
    assert outcome.verdict is Verdict.APPROVED
    assert not outcome.dead_lettered
    assert outcome.attempts == 1
    assert outcome.submitted_at == NOW
    (message,) = outcome.messages
    assert message.topic == NAMES.decisions
    assert message.key == b"t1"
    decision = decode_decision(message.value)
    assert decision.submission_id == "p0"
    assert decision.queue == "topic_t1"
    assert decision.worker_id == "w1"
    assert (decision.source.topic, decision.source.partition, decision.source.offset) == (
        NAMES.submissions_posts,
        2,
        41,
    )


def _missing_body() -> bytes:
    data = _post().model_dump(mode="json")
    del data["body"]
    return json.dumps(data).encode()


def _wrong_kind() -> bytes:
    return encode(
        TopicSubmission(
            kind="topic",
            id="x1",
            submitted_at=NOW,
            topic_id="t9",
            author_id="u1",
            title="title",
            body="b",
        )
    )


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        (b"{not json", ErrorType.INVALID_JSON),
        (b"[1, 2]", ErrorType.INVALID_JSON),
        (None, ErrorType.INVALID_JSON),
        (b'{"kind": "post", "body": "\xc3\x28"}', ErrorType.INVALID_UTF8),
        (encode(_post(body="x" * MAX_BYTES)), ErrorType.OVERSIZE),
        (_missing_body(), ErrorType.VALIDATION),
        (_wrong_kind(), ErrorType.VALIDATION),
    ],
    ids=["not-json", "not-object", "null", "utf8", "oversize", "schema", "wrong-kind"],
)
async def test_invalid_records_go_to_the_dlq_unchanged_with_their_reason(
    value: bytes | None, error_type: ErrorType
) -> None:
    policy = DelayPolicy(0)
    outcome = await _processor(policy).process(_record(value, key=b"\x00raw-key"))
    assert outcome.dead_lettered
    assert outcome.verdict is None  # no decision: there is no valid submission to decide
    (dlq,) = outcome.messages
    assert dlq.key == b"\x00raw-key"
    assert dlq.value == value  # the original bytes, unchanged
    context = _dead_letter(outcome)
    assert context.error_type is error_type
    assert context.attempts == 1
    assert context.worker_id == "w1"
    assert (context.source.partition, context.source.offset) == (2, 41)
    assert policy.started == []  # the policy never saw it


async def test_transient_policy_failures_are_retried_in_place() -> None:
    policy = FlakyPolicy(fail_times=2)
    outcome = await _processor(policy, max_attempts=3).process(_record(encode(_post())))
    assert outcome.verdict is Verdict.APPROVED
    assert outcome.attempts == 3
    assert not outcome.dead_lettered
    assert policy.attempts == {"p0": 3}


async def test_exhausted_retries_give_a_dead_letter_then_a_failed_decision() -> None:
    policy = FailingPolicy(fail_on_keys={"p0"})
    value = encode(_post())
    outcome = await _processor(policy, max_attempts=4).process(_record(value))
    assert outcome.verdict is Verdict.FAILED
    assert outcome.dead_lettered
    assert outcome.attempts == 4
    assert policy.attempts == {"p0": 4}
    dlq, decision = outcome.messages  # the dead letter first
    assert dlq.value == value
    context = _dead_letter(outcome)
    assert context.error_type is ErrorType.POLICY_ERROR
    assert context.attempts == 4
    assert decision.topic == NAMES.decisions
    assert decision.key == b"t1"
    failed = decode_decision(decision.value)
    assert failed.verdict is Verdict.FAILED
    assert failed.submission_id == "p0"


async def test_a_non_retryable_policy_error_is_not_retried() -> None:
    policy = FailingPolicy(fail_on_keys={"p0"}, retryable=False)
    outcome = await _processor(policy, max_attempts=5).process(_record(encode(_post())))
    assert outcome.verdict is Verdict.FAILED
    assert outcome.attempts == 1
    assert policy.attempts == {"p0": 1}


async def test_private_message_text_never_leaves_in_decisions_or_dead_letter_context() -> None:
    secret = "my-very-secret-words"
    pm = PrivateMessageSubmission(
        kind="private_message",
        id="m1",
        submitted_at=NOW,
        sender_id="bob",
        recipient_id="alice",
        body=secret,
    )
    record = _record(encode(pm), key=pm.key.encode(), topic=NAMES.submissions_private_messages)
    policy = FailingPolicy(fail_on_substring=secret)
    outcome = await _processor(policy, max_attempts=2).process(record)
    dlq, decision = outcome.messages
    assert dlq.value == record.value  # the dead letter itself keeps the original bytes
    assert decision.key == b"alice:bob"
    assert decision.value is not None
    assert secret.encode() not in decision.value
    assert all(secret.encode() not in value for _name, value in dlq.headers)


def test_back_off_doubles_up_to_its_cap() -> None:
    retry = RetryPolicy(max_attempts=10, backoff_seconds=0.1, max_backoff_seconds=0.5)
    assert [retry.delay(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
