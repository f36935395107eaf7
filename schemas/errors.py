"""The one error the contract raises, and the failure types the DLQ records.

``ContractError`` carries its data as attributes so callers branch on them, never on the
message text:

- ``field``: dotted path of the offending field (``recipient_id``, ``reasons.2``), or ``$``
  for the record as a whole (not JSON, not an object, too big);
- ``reason``: what is wrong, in words;
- ``error_type``: an ``ErrorType``, the value a worker writes to the DLQ's
  ``modq.error.type`` header;
- ``errors``: every problem found, first one first (the first is ``field``/``reason``).

Neither the message nor the attributes ever contain the input itself, so they are safe to
log and to put in DLQ headers even when the input was a private message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

WHOLE_RECORD = "$"
"""``ContractError.field`` when the problem is the record as a whole."""


class ErrorType(StrEnum):
    """Why a record went to the dead-letter queue."""

    INVALID_JSON = "invalid_json"
    """Not JSON, or JSON but not an object (or a null value)."""
    INVALID_UTF8 = "invalid_utf8"
    """The value bytes are not UTF-8."""
    VALIDATION = "validation"
    """A JSON object that breaks the contract: a missing, malformed or over-long field."""
    OVERSIZE = "oversize"
    """Larger than the size limit; rejected before parsing."""
    POLICY_ERROR = "policy_error"
    """Valid, but moderating it failed after every retry (comes with a ``failed`` decision)."""


class FieldError(NamedTuple):
    """One problem: where and what."""

    field: str
    reason: str


class ContractError(Exception):
    """A record that breaks the wire contract. ``str(error)`` is ``"{field}: {reason}"``."""

    field: str
    reason: str
    error_type: ErrorType
    errors: tuple[FieldError, ...]

    def __init__(
        self,
        field: str,
        reason: str,
        error_type: ErrorType = ErrorType.VALIDATION,
        errors: tuple[FieldError, ...] = (),
    ) -> None:
        self.field = field
        self.reason = reason
        self.error_type = ErrorType(error_type)
        self.errors = errors or (FieldError(field, reason),)
        more = len(self.errors) - 1
        suffix = f" (and {more} more)" if more > 0 else ""
        super().__init__(f"{field}: {reason}{suffix}")

    def __reduce__(self) -> tuple[type[ContractError], tuple[object, ...]]:
        """Pickle by constructor arguments, so the error crosses process boundaries."""
        return (type(self), (self.field, self.reason, self.error_type, self.errors))
