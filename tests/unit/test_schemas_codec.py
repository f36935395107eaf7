"""encode/decode: round trips, and every class of bad input rejected with its field named."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime

import pytest

from schemas.codec import (
    decode_control,
    decode_decision,
    decode_submission,
    decode_visualization,
    encode,
)
from schemas.control import WorkerAssignment, WorkerHeartbeat, WorkerState
from schemas.decisions import Decision, SourcePosition, Verdict
from schemas.errors import ContractError, ErrorType, FieldError
from schemas.queues import QueueClass
from schemas.submissions import PrivateMessageSubmission, SubmissionKind
from schemas.visualization import KeyQueueView

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
VALID: dict[str, object] = {
    "kind": "private_message",
    "id": "m-1",
    "submitted_at": "2024-05-01T12:00:00Z",
    "sender_id": "zoe",
    "recipient_id": "adam",
    "body": "TOP SECRET body",
}


def raw(**overrides: object) -> bytes:
    record = {**VALID, **overrides}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def rejected(value: bytes | None, max_bytes: int = 1_000_000) -> ContractError:
    with pytest.raises(ContractError) as caught:
        decode_submission(value, max_bytes=max_bytes)
    return caught.value


def test_valid_submission_round_trips_with_its_extras() -> None:
    submission = decode_submission(raw(client="web/2"))
    assert isinstance(submission, PrivateMessageSubmission)
    assert submission.key == "adam:zoe"
    assert decode_submission(encode(submission)) == submission
    assert json.loads(encode(submission))["client"] == "web/2"


def test_encode_is_compact_utf8_json() -> None:
    encoded = encode(decode_submission(raw(body="héllo ✓")))
    assert b": " not in encoded
    assert b", " not in encoded
    assert "héllo ✓".encode() in encoded


@pytest.mark.parametrize(
    ("value", "error_type", "field"),
    [
        (None, ErrorType.INVALID_JSON, "$"),
        (b"", ErrorType.INVALID_JSON, "$"),
        (b"not json", ErrorType.INVALID_JSON, "$"),
        (b'{"kind": "post",', ErrorType.INVALID_JSON, "$"),
        (b"[1, 2]", ErrorType.INVALID_JSON, "$"),
        (b'"a string"', ErrorType.INVALID_JSON, "$"),
        (b"null", ErrorType.INVALID_JSON, "$"),
        (b"\xff\xfe{}", ErrorType.INVALID_UTF8, "$"),
        (b'{"body": "\xed\xa0\x80"}', ErrorType.INVALID_UTF8, "$"),
        (b'{"body": "\\ud800"}', ErrorType.INVALID_JSON, "$"),
        (raw(kind=...), ErrorType.VALIDATION, "kind"),
        (raw(kind="poll"), ErrorType.VALIDATION, "kind"),
        (raw(kind=3), ErrorType.VALIDATION, "kind"),
        (raw(id=5), ErrorType.VALIDATION, "id"),
        (raw(id="a" * 65), ErrorType.VALIDATION, "id"),
        (raw(id="no spaces"), ErrorType.VALIDATION, "id"),
        (raw(sender_id=...), ErrorType.VALIDATION, "sender_id"),
        (raw(sender_id="x:y"), ErrorType.VALIDATION, "sender_id"),
        (raw(recipient_id="zoe"), ErrorType.VALIDATION, "recipient_id"),
        (raw(recipient_id=["adam"]), ErrorType.VALIDATION, "recipient_id"),
        (raw(body=...), ErrorType.VALIDATION, "body"),
        (raw(body=""), ErrorType.VALIDATION, "body"),
        (raw(body="x" * 65_537), ErrorType.VALIDATION, "body"),
        (raw(body=None), ErrorType.VALIDATION, "body"),
        (raw(submitted_at="2024-05-01T12:00:00"), ErrorType.VALIDATION, "submitted_at"),
        (raw(submitted_at="yesterday"), ErrorType.VALIDATION, "submitted_at"),
        (raw(submitted_at=1_714_564_800), ErrorType.VALIDATION, "submitted_at"),
        (raw(seq=1.5), ErrorType.VALIDATION, "seq"),
    ],
)
def test_bad_input_is_rejected_with_its_type_and_field(
    value: bytes | None, error_type: ErrorType, field: str
) -> None:
    error = rejected(value)
    assert (error.error_type, error.field) == (error_type, field)
    assert str(error).startswith(f"{field}: ")
    assert error.errors[0] == FieldError(error.field, error.reason)


def test_equal_sender_and_recipient_reads_well() -> None:
    assert str(rejected(raw(recipient_id="zoe"))) == "recipient_id: must differ from sender_id"


def test_oversize_is_checked_before_parsing() -> None:
    error = rejected(b"\xff" * 11, max_bytes=10)
    assert (error.error_type, error.field) == (ErrorType.OVERSIZE, "$")
    assert rejected(raw(), max_bytes=len(raw()) - 1).error_type is ErrorType.OVERSIZE
    assert decode_submission(raw(), max_bytes=len(raw())).id == "m-1"


def test_default_limit_is_a_million_bytes() -> None:
    padded = raw(padding="x" * 1_000_000)
    assert rejected(padded).error_type is ErrorType.OVERSIZE


def test_every_problem_is_listed_first_one_first() -> None:
    error = rejected(raw(id="", sender_id=..., body=""))
    assert [problem.field for problem in error.errors] == ["id", "sender_id", "body"]
    assert str(error).endswith("(and 2 more)")


def test_errors_never_quote_the_input() -> None:
    error = rejected(raw(recipient_id="zoe", id="?", submitted_at="TOP SECRET"))
    assert "SECRET" not in repr(error)
    assert "SECRET" not in repr(error.errors)


def test_kind_must_match_the_topic_it_came_from() -> None:
    assert decode_submission(raw(), kind=SubmissionKind.PRIVATE_MESSAGE).id == "m-1"
    with pytest.raises(ContractError) as caught:
        decode_submission(raw(), kind=SubmissionKind.POST)
    assert (caught.value.field, caught.value.error_type) == ("kind", ErrorType.VALIDATION)


def test_contract_error_survives_pickling() -> None:
    error = rejected(raw(id="", body=""))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.field, copy.reason, copy.error_type, copy.errors) == (
        error.field,
        error.reason,
        error.error_type,
        error.errors,
    )
    assert str(copy) == str(error)


def test_decision_round_trips_and_rejects_nulls() -> None:
    decision = Decision(
        submission_id="m-1",
        kind=SubmissionKind.POST,
        queue="topic_t1",
        verdict=Verdict.NEEDS_REVIEW,
        reasons=("links.many",),
        decided_at=AT,
        source=SourcePosition(topic="forum.submissions.posts", partition=0, offset=9),
        worker_id="w1",
    )
    assert decode_decision(encode(decision)) == decision
    with pytest.raises(ContractError) as caught:
        decode_decision(None)
    assert caught.value.error_type is ErrorType.INVALID_JSON
    broken = json.loads(encode(decision))
    broken["source"]["offset"] = -1
    with pytest.raises(ContractError) as caught:
        decode_decision(json.dumps(broken).encode())
    assert caught.value.field == "source.offset"


def test_control_messages_round_trip_and_tombstones_are_none() -> None:
    heartbeat = WorkerHeartbeat(
        worker_id="w1",
        queue_class=QueueClass.TOPIC_POSTS,
        state=WorkerState.SERVING,
        in_flight=2,
        processed=10,
        last_progress_at=AT,
        sent_at=AT,
        pid=1234,
        host="box-1",
    )
    assignment = WorkerAssignment(
        worker_id="w1",
        queue_class=None,
        generation=3,
        reason="spare",
        assigned_at=AT,
        controller_id="c1",
    )
    assert decode_control(encode(heartbeat)) == heartbeat
    assert decode_control(encode(assignment)) == assignment
    assert decode_control(None) is None
    with pytest.raises(ContractError) as caught:
        decode_control(b'{"type": "heartbeat", "worker_id": "w1"}')
    assert caught.value.field == "state"


def test_visualization_records_round_trip_and_tombstones_are_none() -> None:
    view = KeyQueueView(
        queue="users_adam:zoe",
        queue_class=QueueClass.PRIVATE_MESSAGES,
        pending=1,
        oldest_pending_at=AT,
        verdicts={Verdict.APPROVED: 4},
        updated_at=AT,
    )
    assert decode_visualization(encode(view)) == view
    assert decode_visualization(None) is None
    with pytest.raises(ContractError) as caught:
        decode_visualization(b'{"type": "pie"}')
    assert caught.value.field == "type"
