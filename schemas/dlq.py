"""Dead-letter context: why a record is in ``forum.moderation.dlq``, carried in its headers.

Contract (``CONTRACT.md``): a DLQ record has the submission's key and its original value
bytes, unchanged; the context travels in headers, all prefixed ``modq.``, each value UTF-8
text (integers in decimal, times in RFC 3339):

=========================  ==========================================================
header                     value
=========================  ==========================================================
``modq.source.topic``      topic the record was read from
``modq.source.partition``  its partition
``modq.source.offset``     its offset
``modq.error.type``        ``invalid_json``, ``invalid_utf8``, ``validation``,
                           ``oversize`` or ``policy_error``
``modq.error.message``     what went wrong, at most 1,000 characters, never the input
``modq.error.field``       dotted path of the offending field (optional)
``modq.attempts``          how many times processing was tried (≥ 1)
``modq.worker.id``         the worker that gave up
``modq.failed_at``         when it gave up
=========================  ==========================================================

Other headers (a producer's own, tracing) are left alone and ignored when reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field, Strict, ValidationError

from schemas.decisions import SourcePosition
from schemas.errors import WHOLE_RECORD, ContractError, ErrorType, FieldError
from schemas.fields import EntityId, Label, Note, Timestamp, WireModel

HEADER_PREFIX = "modq."
MAX_ERROR_MESSAGE_LENGTH = 1000

HEADERS: dict[str, str] = {
    "source_topic": "modq.source.topic",
    "source_partition": "modq.source.partition",
    "source_offset": "modq.source.offset",
    "error_type": "modq.error.type",
    "error_message": "modq.error.message",
    "error_field": "modq.error.field",
    "attempts": "modq.attempts",
    "worker_id": "modq.worker.id",
    "failed_at": "modq.failed_at",
}
"""Header name of each context item (``source_*`` flatten ``DeadLetterContext.source``)."""

OPTIONAL_HEADERS = frozenset({"modq.error.field"})

_DECIMAL = re.compile(r"-?[0-9]{1,19}")
_INT_ITEMS = frozenset({"attempts"})

HeaderValue = bytes | str | None
Headers = Iterable[tuple[str, HeaderValue]]
"""What Kafka clients hand back: confluent-kafka and aiokafka both give (name, bytes) pairs."""


def _truncate(value: object) -> object:
    """Shorten an over-long message instead of failing to dead-letter a record."""
    if isinstance(value, str) and len(value) > MAX_ERROR_MESSAGE_LENGTH:
        return value[: MAX_ERROR_MESSAGE_LENGTH - 1] + "…"
    return value


class DeadLetterContext(WireModel):
    """Why and where a record was dead-lettered."""

    source: SourcePosition
    error_type: ErrorType
    error_message: Annotated[Note, BeforeValidator(_truncate)]
    """What went wrong; truncated to 1,000 characters. Never the input itself."""
    error_field: Label | None = None
    """Dotted path of the offending field, ``$`` for the whole record, or absent."""
    attempts: Annotated[int, Strict(), Field(ge=1)] = 1
    worker_id: EntityId
    failed_at: Timestamp

    def to_headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers of this context, in ``HEADERS`` order."""
        values = {
            "source_topic": self.source.topic,
            "source_partition": str(self.source.partition),
            "source_offset": str(self.source.offset),
            "error_type": self.error_type.value,
            "error_message": self.error_message,
            "error_field": self.error_field,
            "attempts": str(self.attempts),
            "worker_id": self.worker_id,
            "failed_at": self.failed_at.isoformat(),
        }
        return [
            (HEADERS[name], value.encode("utf-8"))
            for name, value in values.items()
            if value is not None
        ]

    @classmethod
    def from_headers(cls, headers: Headers | None) -> DeadLetterContext:
        """Read the context back from a DLQ record's headers (last value wins on repeats).

        Raises ``ContractError`` naming the header when one is missing or malformed.
        """
        names = {header: name for name, header in HEADERS.items()}
        found: dict[str, str] = {}
        for header, raw in headers or ():
            name = names.get(header)
            if name is None or raw is None:
                continue
            try:
                found[name] = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            except UnicodeDecodeError:
                raise ContractError(header, "not UTF-8", ErrorType.INVALID_UTF8) from None
        for name, header in HEADERS.items():
            if name not in found and header not in OPTIONAL_HEADERS:
                raise ContractError(header, "missing header", ErrorType.VALIDATION)
        payload: dict[str, object] = {
            name: _int_or_text(value) if name in _INT_ITEMS else value
            for name, value in found.items()
            if not name.startswith("source_")
        }
        payload["source"] = {
            "topic": found["source_topic"],
            "partition": _int_or_text(found["source_partition"]),
            "offset": _int_or_text(found["source_offset"]),
        }
        try:
            return cls.model_validate(payload)
        except ValidationError as error:
            problems = tuple(
                FieldError(_header_of(issue["loc"]), issue["msg"]) for issue in error.errors()
            )
            first = problems[0]
            raise ContractError(first.field, first.reason, ErrorType.VALIDATION, problems) from None


def dead_letter_context(
    error: ContractError | Exception,
    *,
    source: SourcePosition,
    worker_id: str,
    failed_at: datetime,
    attempts: int = 1,
    message: str | None = None,
) -> DeadLetterContext:
    """The context for a record that failed with ``error``.

    A ``ContractError`` keeps its type, message and field. Any other exception is a
    ``policy_error`` described by ``message`` or else by its class name only: an exception's
    own text may quote the submission, and a private message's body must not leave the data
    plane.
    """
    if isinstance(error, ContractError):
        error_type, text, field = error.error_type, str(error), error.field
    else:
        error_type, text, field = ErrorType.POLICY_ERROR, type(error).__name__, None
    return DeadLetterContext(
        source=source,
        error_type=error_type,
        error_message=text if message is None else message,
        error_field=field,
        attempts=attempts,
        worker_id=worker_id,
        failed_at=failed_at,
    )


def _header_of(loc: tuple[int | str, ...]) -> str:
    """The header a validation error location points at."""
    if not loc:
        return WHOLE_RECORD
    if loc[0] == "source" and len(loc) > 1:
        return HEADERS.get(f"source_{loc[1]}", WHOLE_RECORD)
    return HEADERS.get(str(loc[0]), WHOLE_RECORD)


def _int_or_text(text: str) -> int | str:
    """Decimal text as an int; anything else stays text so validation names it."""
    return int(text) if _DECIMAL.fullmatch(text) else text
