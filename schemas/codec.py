"""Bytes on the wire ⇄ models: the only place that parses or writes message JSON.

``encode`` writes compact UTF-8 JSON. Every ``decode_*`` checks, in this order, and raises
``ContractError`` with the matching ``ErrorType`` at the first failure:

1. a null value where a record is required → ``invalid_json`` (field ``$``);
2. more than ``max_bytes`` bytes → ``oversize`` (field ``$``), before any parsing;
3. not UTF-8 → ``invalid_utf8`` (field ``$``);
4. not JSON, or JSON but not an object → ``invalid_json`` (field ``$``);
5. an object that breaks the contract → ``validation``, ``field`` the dotted path of the
   first problem (``recipient_id``, ``source.offset``, ``reasons.0``) and ``errors`` all of
   them. A missing or unknown discriminator (``kind``, ``type``) is reported on that field.

Compacted topics use null values as tombstones: ``decode_control`` and
``decode_visualization`` return ``None`` for them.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from schemas.control import ControlMessage
from schemas.decisions import Decision
from schemas.errors import WHOLE_RECORD, ContractError, ErrorType, FieldError
from schemas.submissions import Submission, SubmissionKind
from schemas.visualization import VisualizationRecord

DEFAULT_MAX_BYTES: Final = 1_000_000
"""Largest record value accepted by default, in bytes (Kafka's default limit is ~1 MiB)."""

T = TypeVar("T")

_SUBMISSION: TypeAdapter[Submission] = TypeAdapter(Submission)
_DECISION: TypeAdapter[Decision] = TypeAdapter(Decision)
_CONTROL: TypeAdapter[ControlMessage] = TypeAdapter(ControlMessage)
_VISUALIZATION: TypeAdapter[VisualizationRecord] = TypeAdapter(VisualizationRecord)

_SUBMISSION_TAGS = frozenset(kind.value for kind in SubmissionKind)
_CONTROL_TAGS = frozenset({"heartbeat", "assignment"})
_VISUALIZATION_TAGS = frozenset(
    {"class_queue", "key_queue", "worker_pool", "controller", "stuck_keys"}
)
_NOT_AN_OBJECT = frozenset({"dict_type", "model_type", "model_attributes_type"})
_BAD_TAG = frozenset({"union_tag_not_found", "union_tag_invalid"})


def encode(model: BaseModel) -> bytes:
    """Compact UTF-8 JSON of ``model`` (extra fields of a submission included).

    The model's own serializer straight to bytes: the same bytes as
    ``model_dump_json().encode()`` without the str round trip (~40% cheaper; every decision
    and every published submission goes through here)."""
    return model.__pydantic_serializer__.to_json(model)


def decode_submission(
    raw: bytes | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    kind: SubmissionKind | None = None,
) -> Submission:
    """Parse a submission record's value.

    With ``kind`` (the kind the source topic carries), a submission of another kind is a
    ``validation`` error on ``kind``.
    """
    submission = _decode(_SUBMISSION, _require(raw), max_bytes, _SUBMISSION_TAGS, "kind")
    if kind is not None and submission.kind != kind.value:
        raise ContractError("kind", f"expected {kind.value!r} on this topic")
    return submission


def decode_decision(raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Decision:
    """Parse a decision record's value."""
    return _decode(_DECISION, _require(raw), max_bytes, frozenset(), "")


def decode_control(
    raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> ControlMessage | None:
    """Parse a control-topic value; ``None`` for a tombstone (a retired worker)."""
    if raw is None:
        return None
    return _decode(_CONTROL, raw, max_bytes, _CONTROL_TAGS, "type")


def decode_visualization(
    raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> VisualizationRecord | None:
    """Parse a visualization-topic value; ``None`` for a tombstone (an emptied queue)."""
    if raw is None:
        return None
    return _decode(_VISUALIZATION, raw, max_bytes, _VISUALIZATION_TAGS, "type")


def _require(raw: bytes | None) -> bytes:
    """The value, or ``invalid_json`` for a null one."""
    if raw is None:
        raise ContractError(
            WHOLE_RECORD, "null value, expected a JSON object", ErrorType.INVALID_JSON
        )
    return raw


def _decode(
    adapter: TypeAdapter[T],
    raw: bytes,
    max_bytes: int,
    tags: frozenset[str],
    discriminator: str,
) -> T:
    """Run checks 2–5 of the module docstring."""
    if len(raw) > max_bytes:
        raise ContractError(
            WHOLE_RECORD, f"{len(raw)} bytes, more than {max_bytes}", ErrorType.OVERSIZE
        )
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContractError(
            WHOLE_RECORD, f"not UTF-8 (byte {error.start})", ErrorType.INVALID_UTF8
        ) from None
    try:
        return adapter.validate_json(text)
    except ValidationError as error:
        raise _contract_error(error.errors(include_url=False), tags, discriminator) from None


def _contract_error(
    issues: list[ErrorDetails], tags: frozenset[str], discriminator: str
) -> ContractError:
    """One ``ContractError`` for pydantic's list of problems."""
    first = issues[0]
    if first["type"] == "json_invalid":
        reason = first.get("ctx", {}).get("error", "not JSON")
        return ContractError(WHOLE_RECORD, f"not JSON: {reason}", ErrorType.INVALID_JSON)
    if first["type"] in _NOT_AN_OBJECT and not first["loc"]:
        return ContractError(WHOLE_RECORD, "not a JSON object", ErrorType.INVALID_JSON)
    problems = tuple(_field_error(issue, tags, discriminator) for issue in issues)
    return ContractError(problems[0].field, problems[0].reason, ErrorType.VALIDATION, problems)


def _field_error(issue: ErrorDetails, tags: frozenset[str], discriminator: str) -> FieldError:
    """Where and what, with the union's tag taken off the location."""
    loc: tuple[Any, ...] = tuple(issue["loc"])
    if issue["type"] in _BAD_TAG:
        return FieldError(discriminator, _tag_reason(issue, tags))
    if loc and loc[0] in tags:
        loc = loc[1:]
    field = ".".join(str(part) for part in loc) or WHOLE_RECORD
    return FieldError(field, issue["msg"])


def _tag_reason(issue: ErrorDetails, tags: frozenset[str]) -> str:
    """Missing or unknown discriminator, listing the values it may take."""
    expected = ", ".join(sorted(tags))
    if issue["type"] == "union_tag_not_found":
        return f"required, one of {expected}"
    return f"must be one of {expected}"
