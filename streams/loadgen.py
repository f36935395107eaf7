"""Realistic, reproducible load for demos and benchmarks (pure: no I/O, no clock).

A :class:`LoadGenerator` turns a :class:`LoadProfile` and a seed into the same stream of
records every time:

- **kinds** by the profile's ``mix`` weights (topics, posts, private messages);
- **keys** by a Zipf law (:class:`ZipfChooser`): a few hot forum topics and conversations
  get most of the traffic, as on a real forum. Post keys are forum topics
  ``{run_id}.t{rank}``; conversation keys are pairs of users ``{run_id}.u{2r}`` /
  ``{run_id}.u{2r+1}`` (sender and recipient drawn in either direction); every new topic
  gets a fresh id ``{run_id}.n{n}``. The run id in every key keeps runs apart downstream;
- **seq**: every valid record carries its key's sequence number (0, 1, 2, ... per key, in
  generation order), so a consumer can check per-key order;
- **bodies** of ``body_bytes`` on average (uniform in [½, 1½]×), plain words;
- **bad records**, a ``bad_fraction`` of the stream, one of the :class:`Defect` classes, as
  raw bytes that a worker must send to the DLQ. They carry no ``seq`` and take no seq number.

``now`` is passed in: ``submitted_at`` is whatever the caller says the time is.
"""

from __future__ import annotations

import bisect
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import accumulate
from typing import Any, TypeAlias

from schemas.fields import MAX_ID_LENGTH
from schemas.queues import pair_key
from schemas.submissions import (
    MAX_BODY_LENGTH,
    MAX_TITLE_LENGTH,
    PostSubmission,
    PrivateMessageSubmission,
    SubmissionKind,
    SubmissionModel,
    TopicSubmission,
)

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_VOCABULARY = (
    "the forum thread reply moderation queue kafka partition offset broker topic post message "
    "user answer question thanks agree disagree maybe later weekend release bug patch review "
    "great idea small change works fine here there today tomorrow coffee garden music travel "
    "photo recipe cycling chess python rust music library update"
)
_WORDS = _VOCABULARY.split()


def text_body(size: int, seed: int) -> str:
    """Deterministic plain text of exactly ``size`` characters (``size`` ≥ 1)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    parts: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:size].rstrip().ljust(size, ".")


class ZipfChooser:
    """Ranks ``0..n-1`` drawn with probability ∝ 1/(rank+1)^s (rank 0 the hottest)."""

    def __init__(self, n: int, s: float) -> None:
        if n < 1:
            raise ValueError("n: must be at least 1")
        if s < 0:
            raise ValueError("s: must not be negative")
        self.n = n
        self._cumulative = list(accumulate(1.0 / (rank + 1) ** s for rank in range(n)))

    def probability(self, rank: int) -> float:
        """The chance of drawing ``rank``."""
        low = self._cumulative[rank - 1] if rank else 0.0
        return float((self._cumulative[rank] - low) / self._cumulative[-1])

    def choose(self, rng: random.Random) -> int:
        """One rank (O(log n))."""
        point = rng.random() * self._cumulative[-1]
        return min(bisect.bisect_right(self._cumulative, point), self.n - 1)


class Defect(StrEnum):
    """The classes of deliberately bad records, and the field a worker's error names."""

    NOT_JSON = "not_json"
    WRONG_TYPE = "wrong_type"
    MISSING_FIELD = "missing_field"
    TOO_LONG = "too_long"
    BAD_ID = "bad_id"
    SELF_MESSAGE = "self_message"


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record that breaks the contract on purpose; ``field`` is where (``$``: whole)."""

    kind: SubmissionKind
    key: str
    value: bytes
    defect: Defect
    field: str


Generated: TypeAlias = SubmissionModel | BadRecord

DEFAULT_MIX: Mapping[SubmissionKind, float] = {
    SubmissionKind.TOPIC: 1.0,
    SubmissionKind.POST: 6.0,
    SubmissionKind.PRIVATE_MESSAGE: 3.0,
}


@dataclass(frozen=True, slots=True)
class LoadProfile:
    """What to generate. Counts are numbers of keys; ``body_bytes`` is the mean body size."""

    run_id: str = "load"
    seed: int = 1
    mix: Mapping[SubmissionKind, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    topics: int = 100
    user_pairs: int = 100
    zipf_s: float = 1.1
    body_bytes: int = 300
    bad_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not _RUN_ID.match(self.run_id):
            raise ValueError("run_id: 1-40 characters of [A-Za-z0-9_-]")
        if not self.mix or any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError("mix: weights must be non-negative and not all zero")
        if self.topics < 1 or self.user_pairs < 1:
            raise ValueError("topics/user_pairs: must be at least 1")
        if not 1 <= self.body_bytes <= MAX_BODY_LENGTH:
            raise ValueError(f"body_bytes: must be between 1 and {MAX_BODY_LENGTH}")
        if not 0.0 <= self.bad_fraction <= 1.0:
            raise ValueError("bad_fraction: must be between 0 and 1")


def parse_mix(text: str) -> dict[SubmissionKind, float]:
    """``"topic=1,post=6,private_message=3"`` → weights; raises ``ValueError`` naming the part."""
    mix: dict[SubmissionKind, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        try:
            kind = SubmissionKind(name.strip())
            mix[kind] = float(weight) if sep else 1.0
        except ValueError:
            kinds = ", ".join(k.value for k in SubmissionKind)
            raise ValueError(f"mix: {part!r} is not KIND=WEIGHT with KIND one of {kinds}") from None
    if not mix:
        raise ValueError("mix: empty")
    return mix


class LoadGenerator:
    """Deterministic record stream for one :class:`LoadProfile` (see the module docstring)."""

    def __init__(self, profile: LoadProfile) -> None:
        self.profile = profile
        self._rng = random.Random(profile.seed)  # noqa: S311 - reproducible load
        self._kinds = [k for k, w in profile.mix.items() if w > 0]
        self._kind_weights = list(accumulate(profile.mix[k] for k in self._kinds))
        self._topics = ZipfChooser(profile.topics, profile.zipf_s)
        self._pairs = ZipfChooser(profile.user_pairs, profile.zipf_s)
        # One corpus, sliced at random offsets: cheap bodies that still differ per record.
        longest = min(MAX_BODY_LENGTH, profile.body_bytes * 3 // 2 + 1)
        self._corpus = text_body(longest + 4096, profile.seed)
        self._seq: dict[str, int] = {}
        self.generated = 0

    @property
    def sequences(self) -> dict[str, int]:
        """How many valid records each key got so far (its next ``seq``)."""
        return dict(self._seq)

    def next(self, now: datetime) -> Generated:
        """The next record, submitted at ``now``."""
        n = self.generated
        self.generated += 1
        kind = self._kinds[
            bisect.bisect_right(self._kind_weights, self._rng.random() * self._kind_weights[-1])
            if len(self._kinds) > 1
            else 0
        ]
        bad = self.profile.bad_fraction > 0 and self._rng.random() < self.profile.bad_fraction
        fields = self._fields(kind, n, now)
        if bad:
            return self._break(kind, fields)
        key = _key_of(kind, fields)
        seq = self._seq.get(key, 0)
        self._seq[key] = seq + 1
        return _MODEL[kind](**fields, seq=seq)

    def take(self, count: int, now: datetime) -> list[Generated]:
        """The next ``count`` records, all submitted at ``now``."""
        return [self.next(now) for _ in range(count)]

    def _fields(self, kind: SubmissionKind, n: int, now: datetime) -> dict[str, Any]:
        run = self.profile.run_id
        common: dict[str, Any] = {"id": f"{run}-{n}", "submitted_at": now}
        if kind is SubmissionKind.TOPIC:
            return {
                **common,
                "topic_id": f"{run}.n{n}",
                "author_id": self._user(),
                "title": self._body(max(1, min(MAX_TITLE_LENGTH, self.profile.body_bytes // 8))),
                "body": self._body(self._size()),
            }
        if kind is SubmissionKind.POST:
            return {
                **common,
                "topic_id": f"{run}.t{self._topics.choose(self._rng)}",
                "author_id": self._user(),
                "body": self._body(self._size()),
            }
        rank = self._pairs.choose(self._rng)
        a, b = f"{run}.u{2 * rank}", f"{run}.u{2 * rank + 1}"
        if self._rng.random() < 0.5:
            a, b = b, a
        return {**common, "sender_id": a, "recipient_id": b, "body": self._body(self._size())}

    def _user(self) -> str:
        return f"{self.profile.run_id}.u{self._rng.randrange(2 * self.profile.user_pairs)}"

    def _size(self) -> int:
        mean = self.profile.body_bytes
        low, high = max(1, mean // 2), min(MAX_BODY_LENGTH, mean + mean // 2)
        return self._rng.randint(low, max(low, high))

    def _body(self, size: int) -> str:
        start = self._rng.randrange(len(self._corpus) - size + 1)
        text = self._corpus[start : start + size]
        # A slice may start or end on a space; the contract only needs 1+ characters.
        return text if text.strip() else "x" * size

    def _break(self, kind: SubmissionKind, fields: dict[str, Any]) -> BadRecord:
        defect = self._rng.choice(list(Defect))
        doc: dict[str, Any] = {"kind": kind.value, **fields}
        doc["submitted_at"] = fields["submitted_at"].isoformat()
        key = _key_of(kind, fields)
        if defect is Defect.NOT_JSON:
            raw = json.dumps(doc).encode()
            return BadRecord(kind, key, raw[: len(raw) // 2], defect, "$")
        if defect is Defect.WRONG_TYPE:
            wrong = {"topic": "title", "post": "topic_id", "private_message": "recipient_id"}
            doc[wrong[kind.value]] = 12345
            return _bad(kind, key, doc, defect, wrong[kind.value])
        if defect is Defect.MISSING_FIELD:
            del doc["submitted_at"]
            return _bad(kind, key, doc, defect, "submitted_at")
        if defect is Defect.TOO_LONG:
            name = "title" if kind is SubmissionKind.TOPIC else "body"
            limit = MAX_TITLE_LENGTH if kind is SubmissionKind.TOPIC else MAX_BODY_LENGTH
            doc[name] = "y" * (limit + 1)
            return _bad(kind, key, doc, defect, name)
        if defect is Defect.BAD_ID:
            doc["id"] = f"{doc['id']} bad!"[:MAX_ID_LENGTH]
            return _bad(kind, key, doc, defect, "id")
        # SELF_MESSAGE only exists for private messages: turn this record into one.
        user = f"{self.profile.run_id}.u0"
        doc = {
            "kind": SubmissionKind.PRIVATE_MESSAGE.value,
            "id": doc["id"],
            "submitted_at": doc["submitted_at"],
            "sender_id": user,
            "recipient_id": user,
            "body": self._body(self._size()),
        }
        return _bad(SubmissionKind.PRIVATE_MESSAGE, f"{user}:{user}", doc, defect, "recipient_id")


_MODEL: dict[SubmissionKind, type[SubmissionModel]] = {
    SubmissionKind.TOPIC: TopicSubmission,
    SubmissionKind.POST: PostSubmission,
    SubmissionKind.PRIVATE_MESSAGE: PrivateMessageSubmission,
}


def _key_of(kind: SubmissionKind, fields: Mapping[str, Any]) -> str:
    if kind is SubmissionKind.PRIVATE_MESSAGE:
        return pair_key(fields["sender_id"], fields["recipient_id"])
    return str(fields["topic_id"])


def _bad(
    kind: SubmissionKind, key: str, doc: dict[str, Any], defect: Defect, field_name: str
) -> BadRecord:
    return BadRecord(kind, key, json.dumps(doc).encode(), defect, field_name)


def records_due(elapsed_s: float, rate: float) -> int:
    """How many records a run at ``rate`` per second should have sent after ``elapsed_s``.

    ``rate`` ≤ 0 means unpaced (as fast as possible): effectively unlimited.
    """
    if rate <= 0:
        return 2**62
    return int(elapsed_s * rate) + 1
