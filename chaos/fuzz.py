"""Random and adversarial submission payloads for the fuzzing scenario (issue 8, #8).

Payloads come from :mod:`hypothesis` strategies, collected by a ``@given`` loop run with a
fixed ``@seed`` and ``max_examples`` (:func:`generate_cases`), so a run is reproducible and
needs no ``.example()``. The families (:data:`FAMILIES`):

``raw``        arbitrary bytes, classic non-objects (``null``, ``[]``, ``""``), a null value;
``valid``      well-formed submissions with generated text, timestamps and extra fields,
               sometimes on the wrong submission topic;
``mutated``    a valid submission's bytes truncated, with bytes flipped, inserted, deleted or
               a slice duplicated;
``deep``       nesting thousands of levels deep, as the whole value or inside a field;
``number``     huge, tiny, non-finite and malformed numbers in any field;
``wrong_type`` one field deleted or replaced by a value of another JSON type;
``unicode``    lone surrogates, BOM, NUL, bidi controls, noncharacters, overlong and
               CESU-8 sequences, code points past U+10FFFF;
``near_limit`` records a few bytes under or over the worker's size limit, and ids, titles
               and bodies at their length limit and one past it.

A :class:`FuzzCase` is a template: :func:`render` puts a unique id where the template has
:data:`ID_SLOT` (so valid payloads never share an idempotency key), pads near-limit records to
their target size, and classifies the result with :func:`schemas.codec.decode_submission`
exactly as a worker would (size limit and the source topic's kind included). The checker then
expects every valid payload decided and every invalid one dead-lettered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from chaos.fuzz_corpus import (
    BAD_UTF8,
    EDGE_TEXT,
    NUMBERS,
    RAW_VALUES,
    TIMESTAMP,
    TIMESTAMPS,
    WRONG_VALUES,
)
from chaos.workload import PlannedRecord
from schemas.codec import decode_submission
from schemas.errors import ContractError
from schemas.submissions import MAX_BODY_LENGTH, MAX_TITLE_LENGTH, SubmissionKind

ID_SLOT = "@ID@"
"""Replaced by a unique submission id when a case is rendered ('@' is never valid in an id)."""

PAD_SLOT = "@PAD@"
"""Replaced by filler up to a near-limit case's target size."""

MAX_ID_LENGTH = 64

FAMILIES = (
    "raw",
    "valid",
    "mutated",
    "deep",
    "number",
    "wrong_type",
    "unicode",
    "near_limit",
)

KINDS = tuple(kind.value for kind in SubmissionKind)

_ENTITY_POOL = tuple(f"e{i}" for i in range(8))
"""Small pools of topic and user ids so keys repeat and per-key order is exercised."""


@dataclass(frozen=True, slots=True)
class FuzzCase:
    """One payload template: the submission topic (by kind), the record key for an invalid
    payload, the value bytes (``None``: a null value), and rendering instructions."""

    family: str
    topic_kind: str
    key: str
    template: bytes | None
    id_length: int | None = None
    """Pad the unique id to this many characters (an id at or past its length limit)."""
    size_delta: int | None = None
    """Pad :data:`PAD_SLOT` so the record is ``max_bytes + size_delta`` bytes long."""
    pad_char: str = "x"


# --- strategies ---------------------------------------------------------------------------


def _fields(kind: str, entity: Callable[[int], str], text: str, title: str) -> dict[str, Any]:
    """A valid submission of ``kind`` (with :data:`ID_SLOT` as its id)."""
    common: dict[str, Any] = {"id": ID_SLOT, "kind": kind, "submitted_at": TIMESTAMP}
    if kind == "topic":
        return {
            **common,
            "topic_id": entity(0),
            "author_id": entity(1),
            "title": title,
            "body": text,
        }
    if kind == "post":
        return {**common, "topic_id": entity(0), "author_id": entity(1), "body": text or "."}
    sender, recipient = entity(0), entity(1)
    if recipient == sender:
        recipient = f"{sender}x"
    return {**common, "sender_id": sender, "recipient_id": recipient, "body": text or "."}


_kinds = st.sampled_from(KINDS)
_keys = st.one_of(st.sampled_from(_ENTITY_POOL), st.text(max_size=20))
"""Record keys of invalid payloads (valid ones are published under their own key)."""
_plain_text = st.text(max_size=300)
"""Text without surrogates (hypothesis's default alphabet)."""
_edge_text = st.lists(
    st.one_of(st.sampled_from(EDGE_TEXT), st.text(max_size=8)), min_size=1, max_size=12
).map("".join)


_entity_pair = st.lists(st.sampled_from(_ENTITY_POOL), min_size=2, max_size=2)
_titles = st.text(min_size=1, max_size=40)
_extras = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _plain_text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
"""Unknown extra fields (kept but ignored by the contract)."""


@st.composite
def _submission(draw: st.DrawFn, text: st.SearchStrategy[str] = _plain_text) -> dict[str, Any]:
    kind = draw(_kinds)
    fields = _fields(kind, draw(_entity_pair).__getitem__, draw(text), draw(_titles))
    if draw(st.booleans()):
        fields["seq"] = draw(st.integers(min_value=0, max_value=2**40))
    if draw(st.integers(0, 3)) == 0:
        fields["submitted_at"] = draw(st.sampled_from(TIMESTAMPS))
    if draw(st.integers(0, 3)) == 0:
        fields[draw(st.sampled_from(["extra", "x-meta", "labels", "\u00e9"]))] = draw(_extras)
    return fields


def _dumps(fields: dict[str, Any], ascii_only: bool = True) -> bytes:
    text = json.dumps(fields, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def _topic_for(draw: st.DrawFn, kind: str) -> str:
    """Mostly the kind's own topic; one time in ten another one (a misplaced submission)."""
    return kind if draw(st.integers(0, 9)) else draw(_kinds)


_raw_values = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from(RAW_VALUES),
    st.none(),
)
_inserts = st.one_of(
    st.binary(min_size=1, max_size=8), st.sampled_from([b'"', b",", b"}", b"\\", b"\\u"])
)
_depths = st.one_of(st.integers(1, 200), st.integers(200, 5000))
_numbers = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(1, 6000).map(lambda n: "9" * n),
    st.integers(1, 400).map(lambda n: f"1e{'-' if n % 2 else ''}{n * 3}"),
    st.integers().map(str),
    st.floats().map(json.dumps),
)
_unicode_fields = st.lists(
    st.sampled_from(["title", "id", "topic_id", "author_id", "sender_id", "kind"]), max_size=2
)


@st.composite
def raw_cases(draw: st.DrawFn) -> FuzzCase:
    value = draw(_raw_values)
    return FuzzCase("raw", draw(_kinds), draw(_keys), value)


@st.composite
def valid_cases(draw: st.DrawFn) -> FuzzCase:
    fields = draw(_submission())
    value = _dumps(fields, ascii_only=draw(st.booleans()))
    return FuzzCase("valid", _topic_for(draw, fields["kind"]), draw(_keys), value)


@st.composite
def mutated_cases(draw: st.DrawFn) -> FuzzCase:
    fields = draw(_submission())
    data = bytearray(_dumps(fields, ascii_only=draw(st.booleans())))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(_inserts)
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
    return FuzzCase("mutated", _topic_for(draw, fields["kind"]), draw(_keys), bytes(data))


@st.composite
def deep_cases(draw: st.DrawFn) -> FuzzCase:
    depth = draw(_depths)
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    closed = draw(st.integers(0, 9)) > 0
    nested = opener * depth + "1" + (closer * depth if closed else "")
    fields = draw(_submission())
    where = draw(st.sampled_from(["whole", "body", "extra", "id"]))
    if where == "whole":
        value = nested.encode()
    else:
        text = json.dumps({**fields, where: "@NEST@"}).replace('"@NEST@"', nested)
        value = text.encode()
    return FuzzCase("deep", _topic_for(draw, fields["kind"]), draw(_keys), value)


@st.composite
def number_cases(draw: st.DrawFn) -> FuzzCase:
    number = draw(_numbers)
    fields = draw(_submission())
    where = draw(
        st.sampled_from(["whole", "seq", "id", "submitted_at", "body", "kind", "topic_id", "extra"])
    )
    if where == "whole":
        value = number.encode()
    else:
        value = json.dumps({**fields, where: "@NUM@"}).replace('"@NUM@"', number).encode()
    return FuzzCase("number", _topic_for(draw, fields["kind"]), draw(_keys), value)


@st.composite
def wrong_type_cases(draw: st.DrawFn) -> FuzzCase:
    fields = draw(_submission())
    kind = fields["kind"]
    name = draw(st.sampled_from(sorted(fields)))
    if draw(st.integers(0, 4)) == 0:
        del fields[name]
    else:
        fields[name] = draw(st.sampled_from(WRONG_VALUES))
    if draw(st.integers(0, 5)) == 0:  # a message to oneself
        fields["recipient_id"] = fields.get("sender_id", "e0")
    return FuzzCase("wrong_type", _topic_for(draw, kind), draw(_keys), _dumps(fields))


@st.composite
def unicode_cases(draw: st.DrawFn) -> FuzzCase:
    fields = draw(_submission(text=_edge_text))
    kind = fields["kind"]
    for name in draw(_unicode_fields):
        if name in fields:
            fields[name] = draw(_edge_text)
    data = _dumps(fields, ascii_only=draw(st.booleans()))
    if draw(st.booleans()):
        at = data.find(b'"body": "') + len(b'"body": "')
        data = data[:at] + draw(st.sampled_from(BAD_UTF8)) + data[at:]
    if draw(st.integers(0, 5)) == 0:
        data = b"\xef\xbb\xbf" + data
    return FuzzCase("unicode", _topic_for(draw, kind), draw(_keys), data)


@st.composite
def near_limit_cases(draw: st.DrawFn) -> FuzzCase:
    fields = draw(_submission())
    kind = fields["kind"]
    limit = draw(st.sampled_from(["record", "id", "title", "body"]))
    delta = draw(st.sampled_from([-2, -1, 0, 1, 2]))
    if limit == "record":
        fields["body"] = PAD_SLOT
        pad = draw(st.sampled_from(["x", "é", "€", "\U0001f4a9"]))
        return FuzzCase(
            "near_limit",
            kind,
            draw(_keys),
            _dumps(fields, ascii_only=False),
            size_delta=delta,
            pad_char=pad,
        )
    if limit == "id":
        return FuzzCase(
            "near_limit", kind, draw(_keys), _dumps(fields), id_length=MAX_ID_LENGTH + min(delta, 1)
        )
    length = (MAX_TITLE_LENGTH if limit == "title" else MAX_BODY_LENGTH) + min(delta, 1)
    fields[limit if kind == "topic" or limit == "body" else "body"] = "y" * length
    return FuzzCase("near_limit", kind, draw(_keys), _dumps(fields))


CASES: st.SearchStrategy[FuzzCase] = st.one_of(
    raw_cases(),
    valid_cases(),
    mutated_cases(),
    deep_cases(),
    number_cases(),
    wrong_type_cases(),
    unicode_cases(),
    near_limit_cases(),
)
"""Every family, drawn with (roughly) equal weight."""


def generate_cases(count: int, *, seed_value: int = 8) -> list[FuzzCase]:
    """``count`` cases from :data:`CASES`, collected by a seeded ``@given`` loop (generate
    phase only, no example database: the same seed gives the same cases)."""
    collected: list[FuzzCase] = []
    round_seed = seed_value
    while len(collected) < count:

        @seed(round_seed)
        @settings(
            max_examples=count - len(collected),
            database=None,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(CASES)
        def collect(case: FuzzCase) -> None:
            collected.append(case)

        collect()
        round_seed += 1
    return collected[:count]


# --- rendering and classification ----------------------------------------------------------


def _unique_id(run: str, index: int, length: int | None) -> str:
    base = f"{run}-{index}"
    return base if length is None else (base + "_" * length)[:length]


def _pad(value: bytes, target: int, char: str) -> bytes:
    """Replace :data:`PAD_SLOT` with filler so ``value`` is ``target`` bytes long (or as close
    as whole characters allow, topped up with ASCII)."""
    slot = PAD_SLOT.encode()
    room = max(0, target - (len(value) - len(slot)))
    unit = char.encode()
    filler = unit * (room // len(unit)) + b"x" * (room % len(unit))
    return value.replace(slot, filler, 1)


def render(case: FuzzCase, *, run: str, index: int, max_bytes: int) -> PlannedRecord:
    """The record to publish for ``case``: unique id in place, padded, and classified like a
    worker would (``kind`` ``None`` when it must be dead-lettered)."""
    value = case.template
    if value is not None:
        unique = _unique_id(run, index, case.id_length)
        value = value.replace(ID_SLOT.encode(), unique.encode())
        if case.size_delta is not None:
            value = _pad(value, max_bytes + case.size_delta, case.pad_char)
    try:
        submission = decode_submission(
            value, max_bytes=max_bytes, kind=SubmissionKind(case.topic_kind)
        )
    except ContractError:
        return PlannedRecord(case.topic_kind, case.key, value, "", None, None)
    body = submission.body if submission.kind == "private_message" else None
    return PlannedRecord(
        case.topic_kind, submission.key, value, submission.id, None, submission.kind, body
    )


@dataclass(frozen=True, slots=True)
class FuzzPlan:
    """The rendered records and what they hold."""

    records: tuple[PlannedRecord, ...]
    families: dict[str, int]
    valid: int
    invalid: int
    dropped_duplicate_ids: int


def plan_fuzz(cases: Iterable[FuzzCase], *, run: str, max_bytes: int) -> FuzzPlan:
    """Render ``cases``; a valid payload whose id repeats an earlier one (a mutation can turn
    one unique id into another) is dropped, so every valid id stays an idempotency key."""
    records: list[PlannedRecord] = []
    families: dict[str, int] = {}
    seen: set[str] = set()
    dropped = 0
    for index, case in enumerate(cases):
        record = render(case, run=run, index=index, max_bytes=max_bytes)
        if record.kind is not None:
            if record.id in seen:
                dropped += 1
                continue
            seen.add(record.id)
        records.append(record)
        families[case.family] = families.get(case.family, 0) + 1
    valid = sum(1 for r in records if r.kind is not None)
    return FuzzPlan(tuple(records), families, valid, len(records) - valid, dropped)
