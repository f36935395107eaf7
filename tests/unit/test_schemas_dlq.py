"""Dead-letter context: headers out and back, and what they may say."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.codec import decode_submission
from schemas.decisions import SourcePosition
from schemas.dlq import (
    HEADERS,
    MAX_ERROR_MESSAGE_LENGTH,
    DeadLetterContext,
    dead_letter_context,
)
from schemas.errors import ContractError, ErrorType

AT = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
SOURCE = SourcePosition(topic="forum.submissions.private_messages", partition=2, offset=17)


def context(**overrides: object) -> DeadLetterContext:
    fields: dict[str, object] = {
        "source": SOURCE,
        "error_type": ErrorType.VALIDATION,
        "error_message": "recipient_id: must differ from sender_id",
        "error_field": "recipient_id",
        "attempts": 1,
        "worker_id": "worker-3",
        "failed_at": AT,
    }
    return DeadLetterContext.model_validate({**fields, **overrides})


def test_headers_are_prefixed_utf8_text() -> None:
    headers = dict(context().to_headers())
    assert headers == {
        "modq.source.topic": b"forum.submissions.private_messages",
        "modq.source.partition": b"2",
        "modq.source.offset": b"17",
        "modq.error.type": b"validation",
        "modq.error.message": b"recipient_id: must differ from sender_id",
        "modq.error.field": b"recipient_id",
        "modq.attempts": b"1",
        "modq.worker.id": b"worker-3",
        "modq.failed_at": b"2024-05-01T12:00:00.123000+00:00",
    }


def test_headers_round_trip_among_foreign_ones() -> None:
    original = context(error_field=None, attempts=4, error_type=ErrorType.POLICY_ERROR)
    headers: list[tuple[str, bytes | str | None]] = [
        ("traceparent", b"00-abc"),
        *original.to_headers(),
        ("other", None),
    ]
    assert "modq.error.field" not in dict(original.to_headers())
    assert DeadLetterContext.from_headers(headers) == original


def test_last_repeated_header_wins_and_text_values_are_accepted() -> None:
    headers: list[tuple[str, bytes | str | None]] = [
        *context().to_headers(),
        ("modq.attempts", "3"),
    ]
    assert DeadLetterContext.from_headers(headers).attempts == 3


@pytest.mark.parametrize(
    ("header", "value", "error_type"),
    [
        ("modq.source.offset", b"-1", ErrorType.VALIDATION),
        ("modq.source.partition", b"two", ErrorType.VALIDATION),
        ("modq.attempts", b"0", ErrorType.VALIDATION),
        ("modq.error.type", b"gremlins", ErrorType.VALIDATION),
        ("modq.failed_at", b"2024-05-01T12:00:00", ErrorType.VALIDATION),
        ("modq.worker.id", b"\xff", ErrorType.INVALID_UTF8),
    ],
)
def test_malformed_header_is_named(header: str, value: bytes, error_type: ErrorType) -> None:
    headers = [*context().to_headers(), (header, value)]
    with pytest.raises(ContractError) as caught:
        DeadLetterContext.from_headers(headers)
    assert (caught.value.field, caught.value.error_type) == (header, error_type)


@pytest.mark.parametrize("missing", [h for h in HEADERS.values() if h != "modq.error.field"])
def test_missing_header_is_named(missing: str) -> None:
    headers = [(name, value) for name, value in context().to_headers() if name != missing]
    with pytest.raises(ContractError) as caught:
        DeadLetterContext.from_headers(headers)
    assert caught.value.field == missing
    with pytest.raises(ContractError):
        DeadLetterContext.from_headers(None)


def test_long_messages_are_truncated_not_refused() -> None:
    message = context(error_message="x" * 5000).error_message
    assert len(message) == MAX_ERROR_MESSAGE_LENGTH
    assert message.endswith("…")


def test_context_from_a_contract_error_keeps_its_type_and_field() -> None:
    with pytest.raises(ContractError) as caught:
        decode_submission(b"{oops")
    built = dead_letter_context(caught.value, source=SOURCE, worker_id="w", failed_at=AT)
    assert built.error_type is ErrorType.INVALID_JSON
    assert built.error_field == "$"
    assert built.error_message.startswith("$: not JSON")


def test_context_from_a_policy_failure_never_quotes_the_exception() -> None:
    failure = RuntimeError("could not parse 'my secret message'")
    built = dead_letter_context(failure, source=SOURCE, worker_id="w", failed_at=AT, attempts=5)
    assert (built.error_type, built.error_message, built.attempts) == (
        ErrorType.POLICY_ERROR,
        "RuntimeError",
        5,
    )
    explained = dead_letter_context(
        failure, source=SOURCE, worker_id="w", failed_at=AT, message="rule engine timed out"
    )
    assert explained.error_message == "rule engine timed out"
