"""The most bytes a submission can encode to, from the contract's field limits alone.

A publisher that validates a whole batch before sending any of it must know each record's
size first. Encoding every record up front and sending afterwards serialises the two (on 2
cores that cost a batch 11-29 % of its throughput: the "encode first" row of
``python -m bench.publisher``, against the loop that encodes as it sends).
When no instance of a model class can exceed the size limit, its size needs no check, and
its encoding can wait until it is sent. This module says when that is so.

The bound holds for instances built by validation, with no extra fields and a ``seq`` below
:data:`SEQ_LIMIT`; anything else must be encoded and measured.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, StringConstraints

from schemas.codec import encode
from schemas.submissions import SubmissionModel

SEQ_LIMIT = 10**18
"""``seq`` values below this (at most 18 digits) are within the bound."""

_WIDEST_CHAR = "\x00"
"""JSON writes it as ``\\u0000``: 6 bytes, the most any one code point takes (non-ASCII is
written as UTF-8, at most 4 bytes)."""

_WIDEST_TIME = datetime(
    9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(-timedelta(hours=23, minutes=59))
)
"""The longest RFC 3339 form: microseconds and a non-UTC offset."""


def _widest_value(annotation: Any, metadata: list[Any]) -> Any:
    """The value of a field that encodes to the most bytes, or ``None`` if unbounded here."""
    if annotation is str:
        limits = [
            m.max_length
            for m in metadata
            if isinstance(m, StringConstraints) and m.max_length is not None
        ]
        return _WIDEST_CHAR * min(limits) if limits else None
    if get_origin(annotation) is Literal:
        return max((str(a) for a in get_args(annotation)), key=len)
    if annotation is AwareDatetime:
        return _WIDEST_TIME
    return None


def _is_optional_int(annotation: Any) -> bool:
    if get_origin(annotation) not in (Union, UnionType):
        return False
    members = [a for a in get_args(annotation) if a is not NoneType]
    base = [get_args(a)[0] if get_origin(a) is Annotated else a for a in members]
    return base == [int]


@functools.cache
def max_encoded_bytes(cls: type[SubmissionModel]) -> int | None:
    """The most bytes an instance of ``cls`` encodes to (``schemas.codec.encode``), if it has
    no extra fields and ``seq`` is below :data:`SEQ_LIMIT`; ``None`` when a field's type
    has no bound here (then every instance must be measured)."""
    values: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        if name == "seq" and _is_optional_int(info.annotation):
            widest: Any = SEQ_LIMIT - 1  # within_bound checks it per record
        else:
            widest = _widest_value(info.annotation, info.metadata)
        if widest is None:
            return None
        values[name] = widest
    return len(encode(cls.model_construct(**values)))


def within_bound(model: SubmissionModel) -> bool:
    """Whether ``model`` is one :func:`max_encoded_bytes` covers (cheap: per record)."""
    seq = model.seq
    return not model.__pydantic_extra__ and (seq is None or seq < SEQ_LIMIT)
