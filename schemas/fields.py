"""Field types shared by every wire model, and the base model they live in.

Each alias is an ``Annotated`` type that carries its own validation, so a model states its
contract through its annotations alone. The rules are the same whether a model is built from
JSON (``schemas.codec``) or in Python:

- ids are ``str`` only (never coerced from numbers) and bounded to 64 characters;
- timestamps are timezone-aware: a ``datetime`` with ``tzinfo``, or an RFC 3339 string with a
  UTC offset (``Z`` or ``±hh:mm``); naive values and epoch numbers are rejected;
- counts are non-negative ``int`` (never ``bool``, never ``"5"``, never ``5.0``);
- no validation message ever includes the offending input, so errors are safe to log even
  when the input was a private message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

MAX_ID_LENGTH = 64
"""Longest submission, user, topic, worker or controller id."""

SUBMISSION_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
"""Characters of a submission id (the idempotency key)."""

ENTITY_ID_PATTERN = r"^[A-Za-z0-9_.-]+$"
"""Characters of user, topic, worker and controller ids: no ``:``, so pair keys are unambiguous."""

KAFKA_TOPIC_PATTERN = r"^[A-Za-z0-9._-]+$"
"""Characters Kafka allows in a topic name."""

MAX_KAFKA_TOPIC_LENGTH = 249

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})",
)


def _check_timestamp(value: object) -> object:
    """Let ``datetime`` objects and RFC 3339 strings with an offset through; reject the rest."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    raise PydanticCustomError(
        "timestamp_format",
        "must be an RFC 3339 date-time with a UTC offset, e.g. 2024-05-01T12:00:00Z",
    )


SubmissionId = Annotated[
    str,
    Strict(),
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=SUBMISSION_ID_PATTERN),
]
"""A submission id: 1–64 characters of ``[A-Za-z0-9_-]``."""

EntityId = Annotated[
    str,
    Strict(),
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ENTITY_ID_PATTERN),
]
"""A user, topic, worker or controller id: 1–64 characters of ``[A-Za-z0-9_.-]``."""

Timestamp = Annotated[AwareDatetime, BeforeValidator(_check_timestamp)]
"""A timezone-aware instant; on the wire an RFC 3339 string with a UTC offset."""

Count = Annotated[int, Strict(), Field(ge=0)]
"""A non-negative integer count, offset or partition."""

Seconds = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
"""A non-negative, finite number of seconds (or a rate per second)."""

KafkaTopic = Annotated[
    str,
    Strict(),
    StringConstraints(min_length=1, max_length=MAX_KAFKA_TOPIC_LENGTH, pattern=KAFKA_TOPIC_PATTERN),
]
"""A Kafka topic name."""

Label = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=200)]
"""A short machine-readable word: a rule name, a host name, a reason code."""

Note = Annotated[str, Strict(), StringConstraints(max_length=1000)]
"""A short human-readable sentence; never carries submission bodies."""


def require_in_schema(*names: str) -> Callable[[dict[str, Any]], None]:
    """JSON Schema hook: list ``names`` as required even though they have defaults.

    Discriminators (``kind``, ``type``) default to their only value so Python callers need
    not repeat them, but every record on the wire carries them.
    """

    def hook(schema: dict[str, Any]) -> None:
        required = list(schema.get("required", []))
        schema["required"] = [*(name for name in names if name not in required), *required]

    return hook


class WireModel(BaseModel):
    """Base of every message: immutable, tolerant of unknown fields, quiet about inputs.

    Unknown fields are ignored (a newer producer never breaks an older reader); submissions
    override this to keep them.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )
