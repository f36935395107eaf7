"""Poison records and policy failures: into the DLQ with their reasons, nothing else stops."""

from __future__ import annotations

import json

import pytest

from schemas.codec import decode_decision, encode
from schemas.decisions import Verdict
from schemas.dlq import DeadLetterContext
from schemas.errors import ErrorType
from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings
from streams.moderation.testing import FailingPolicy
from tests.integration.worker_support import (
    at_least,
    check_order,
    interleaved_posts,
    new_topic,
    post,
    publish,
    read_until,
    reader,
    running_session,
    topics_of,
    with_,
)


def _poison(max_bytes: int) -> dict[bytes, tuple[bytes | None, ErrorType]]:
    """key -> (value, expected error type): one record of every poison class."""
    missing_body = post("poison-schema", 0).model_dump(mode="json")
    del missing_body["body"]
    oversize = encode(post("poison-size", 0, body="x" * (max_bytes + 100)))
    return {
        b"poison-json": (b'{"kind": "post", "id": ', ErrorType.INVALID_JSON),
        b"poison-utf8": (b'{"kind": "post", "body": "\xff\xfe"}', ErrorType.INVALID_UTF8),
        b"poison-size": (oversize, ErrorType.OVERSIZE),
        b"poison-schema": (json.dumps(missing_body).encode(), ErrorType.VALIDATION),
        b"poison-kind": (encode(new_topic("poison-kind")), ErrorType.VALIDATION),
        b"poison-null": (None, ErrorType.INVALID_JSON),
    }


@pytest.mark.parametrize(
    "guarantee", [ProcessingGuarantee.AT_LEAST_ONCE, ProcessingGuarantee.EXACTLY_ONCE]
)
async def test_poison_and_failing_records_go_to_the_dlq_while_others_flow(
    settings: Settings, guarantee: ProcessingGuarantee
) -> None:
    s = with_(
        settings,
        processing_guarantee=guarantee,
        max_record_bytes=2048,
        max_attempts=3,
        retry_backoff_seconds=0.01,
        max_in_flight_keys=4,
    )
    names = topics_of(s)
    poison = _poison(s.max_record_bytes)
    good = interleaved_posts(keys=20, per_key=5)
    failing = [post("bad", seq) for seq in range(4)]
    records: list[tuple[bytes | None, bytes | None]] = []
    for i, item in enumerate(good):
        records.append((item.key.encode(), encode(item)))
        if i % 10 == 0 and poison:  # poison spread among the good records
            key, (value, _type) = next(iter(poison.items()))
            records.append((key, value))
            del poison[key]
        if i % 20 == 0 and failing:
            bad = failing.pop(0)
            records.append((bad.key.encode(), encode(bad)))
    assert not poison
    assert not failing
    publish(s, names.submissions_posts, records)
    expected_poison = _poison(s.max_record_bytes)
    policy = FailingPolicy(fail_on_keys={"bad-1"})

    with reader(s, names.decisions) as decisions, reader(s, names.dlq) as dlq:
        async with running_session(s, QueueClass.TOPIC_POSTS, policy):
            decided = await read_until(decisions, at_least(len(good) + 4), 60)
            dead = await read_until(dlq, at_least(len(expected_poison) + 1), 30)
        decided = decisions.settle(quiet=0.5)
        dead = dlq.settle(quiet=0.5)

    expected = {f"k{k}": 5 for k in range(20)} | {"bad": 4}
    check_order(decided, expected).assert_ok(allow_duplicates=False)
    verdicts = {d.submission_id: d.verdict for d in (decode_decision(r.value) for r in decided)}
    assert verdicts["bad-1"] is Verdict.FAILED
    assert {verdicts[f"bad-{i}"] for i in (0, 2, 3)} == {Verdict.APPROVED}
    assert policy.attempts["bad-1"] == s.max_attempts

    assert len(dead) == len(expected_poison) + 1
    by_key = {r.key: r for r in dead}
    for key, (value, error_type) in expected_poison.items():
        record = by_key[key]
        assert record.value == value, f"{key!r}: DLQ value not the original bytes"
        context = DeadLetterContext.from_headers(record.headers.items())
        assert context.error_type is error_type, key
        assert context.source.topic == names.submissions_posts
        assert context.worker_id == "wt"
        assert context.attempts == 1
    failed = by_key[b"bad"]
    assert failed.value == encode(post("bad", 1))
    context = DeadLetterContext.from_headers(failed.headers.items())
    assert context.error_type is ErrorType.POLICY_ERROR
    assert context.attempts == s.max_attempts
    assert context.error_message == "PolicyError"  # the type only: never submission text
