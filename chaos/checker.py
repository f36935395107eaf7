"""The checker: a pure function from a recorded :class:`History` to a :class:`Report`.

What it counts (each a :class:`Violation`):

``lost``
    submitted (acknowledged) records missing from the submission topics when read back
    (only when ``History.stored`` was recorded).
``unresolved``
    submitted records with neither a decision (by id) nor a dead letter (by source position).
``duplicate_decisions`` / ``duplicate_dead_letters``
    extra copies beyond the first for one submission id / one source position. Tolerated
    under at-least-once, violations under exactly-once.
``order_violations``
    per key (source topic + key), the first decision of each submission must appear in
    submission order (``seq`` when every record of the key has one, else the source
    offset). Each first decision that comes after one of a later submission counts once.
``phantom_decisions`` / ``phantom_dead_letters``
    decisions for ids never submitted; dead letters whose source was never submitted.
``private_body_leaks``
    a private-message body (at least :data:`MIN_LEAK_CHARS` characters, so short common
    words do not match by chance) appearing in a visualization record or a decision reason.
``failed_without_dead_letter`` / ``policy_dead_letter_without_failed``
    the rule "a policy failure gives both a DLQ record and a ``failed`` decision", from both
    sides (matched by source position).

No I/O, no clock: the same history always gives the same report.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from chaos.history import (
    DeadLetter,
    DecidedRecord,
    History,
    Position,
    SubmittedRecord,
    VisualizationLeak,
)
from schemas.settings import ProcessingGuarantee

MIN_LEAK_CHARS = 16
"""Shortest private-message body the leak check looks for."""

MAX_EXAMPLES = 5
"""Ids or positions kept per violation class, for the report."""

POLICY_ERROR = "policy_error"
FAILED = "failed"


class Violation(StrEnum):
    """The classes of findings a report counts."""

    LOST = "lost"
    UNRESOLVED = "unresolved"
    DUPLICATE_DECISIONS = "duplicate_decisions"
    DUPLICATE_DEAD_LETTERS = "duplicate_dead_letters"
    ORDER = "order_violations"
    PHANTOM_DECISIONS = "phantom_decisions"
    PHANTOM_DEAD_LETTERS = "phantom_dead_letters"
    PRIVATE_BODY_LEAKS = "private_body_leaks"
    FAILED_WITHOUT_DEAD_LETTER = "failed_without_dead_letter"
    POLICY_DEAD_LETTER_WITHOUT_FAILED = "policy_dead_letter_without_failed"


TOLERATED: Mapping[ProcessingGuarantee, frozenset[Violation]] = {
    ProcessingGuarantee.AT_LEAST_ONCE: frozenset(
        {Violation.DUPLICATE_DECISIONS, Violation.DUPLICATE_DEAD_LETTERS}
    ),
    ProcessingGuarantee.EXACTLY_ONCE: frozenset(),
}
"""Findings that do not fail a run under each guarantee."""


@dataclass(frozen=True)
class Report:
    """Counts per violation class, totals, and a few examples of each finding."""

    guarantee: ProcessingGuarantee
    counts: Mapping[Violation, int]
    examples: Mapping[Violation, tuple[str, ...]]
    submitted: int
    valid: int
    decided: int
    decisions_total: int
    dead_letters_total: int
    leaks: tuple[VisualizationLeak, ...] = field(default=())

    def count(self, violation: Violation) -> int:
        """How many findings of ``violation``."""
        return self.counts.get(violation, 0)

    @property
    def failures(self) -> dict[Violation, int]:
        """The non-zero counts that the guarantee does not tolerate."""
        tolerated = TOLERATED[self.guarantee]
        return {v: n for v, n in self.counts.items() if n and v not in tolerated}

    @property
    def ok(self) -> bool:
        """True when nothing the guarantee forbids happened."""
        return not self.failures


class _Tally:
    """Mutable accumulator used only inside :func:`check`."""

    def __init__(self) -> None:
        self.counts: Counter[Violation] = Counter()
        self.examples: dict[Violation, list[str]] = defaultdict(list)

    def add(self, violation: Violation, example: str, n: int = 1) -> None:
        self.counts[violation] += n
        kept = self.examples[violation]
        if len(kept) < MAX_EXAMPLES:
            kept.append(example)


def check(history: History, guarantee: ProcessingGuarantee | str) -> Report:
    """Judge ``history`` under ``guarantee``; see the module docstring for the classes."""
    guarantee = ProcessingGuarantee(guarantee)
    tally = _Tally()
    submitted = history.submitted
    by_id = {s.id: s for s in submitted if s.valid}
    decisions = sorted(history.decided, key=lambda d: (d.partition, d.offset))
    dead_letters = sorted(history.dead_letters, key=lambda d: (d.partition, d.offset))
    decision_counts = Counter(d.submission_id for d in decisions)
    dead_counts = Counter(d.source for d in dead_letters)

    if history.stored is not None:
        for s in submitted:
            if s.position not in history.stored:
                tally.add(Violation.LOST, s.id)
    _copies(tally, by_id, {s.position for s in submitted}, decision_counts, dead_counts)
    for s in submitted:
        if decision_counts.get(s.id, 0) == 0 and dead_counts.get(s.position, 0) == 0:
            tally.add(Violation.UNRESOLVED, s.id)
    for example in _order_violations(submitted, by_id, decisions):
        tally.add(Violation.ORDER, example)
    _policy_failures(tally, decisions, dead_letters)
    leaks = tuple(find_leaks(history))
    for leak in leaks:
        tally.add(Violation.PRIVATE_BODY_LEAKS, f"{leak.where}@{leak.offset}:{leak.submission_id}")

    return Report(
        guarantee=guarantee,
        counts={v: tally.counts.get(v, 0) for v in Violation},
        examples={v: tuple(tally.examples.get(v, ())) for v in Violation},
        submitted=len(submitted),
        valid=len(by_id),
        decided=sum(1 for i in decision_counts if i in by_id),
        decisions_total=len(decisions),
        dead_letters_total=len(dead_letters),
        leaks=leaks,
    )


def _copies(
    tally: _Tally,
    by_id: Mapping[str, SubmittedRecord],
    positions: Collection[Position],
    decision_counts: Mapping[str, int],
    dead_counts: Mapping[Position, int],
) -> None:
    """Phantom and duplicate decisions and dead letters."""
    for submission_id, n in decision_counts.items():
        if submission_id not in by_id:
            tally.add(Violation.PHANTOM_DECISIONS, submission_id, n)
        elif n > 1:
            tally.add(Violation.DUPLICATE_DECISIONS, submission_id, n - 1)
    for source, n in dead_counts.items():
        if source not in positions:
            tally.add(Violation.PHANTOM_DEAD_LETTERS, _where(source), n)
        elif n > 1:
            tally.add(Violation.DUPLICATE_DEAD_LETTERS, _where(source), n - 1)


def _policy_failures(
    tally: _Tally, decisions: Iterable[DecidedRecord], dead_letters: Iterable[DeadLetter]
) -> None:
    """A policy failure gives both a DLQ record and a ``failed`` decision (by source)."""
    dead_sources = {d.source for d in dead_letters if d.error_type == POLICY_ERROR}
    all_dead = {d.source for d in dead_letters}
    failed_sources: set[Position] = set()
    for d in decisions:
        if d.verdict == FAILED:
            failed_sources.add(d.source)
            if d.source not in all_dead:
                tally.add(Violation.FAILED_WITHOUT_DEAD_LETTER, d.submission_id)
    for source in sorted(dead_sources - failed_sources):
        tally.add(Violation.POLICY_DEAD_LETTER_WITHOUT_FAILED, _where(source))


def _where(position: Position) -> str:
    return f"{position.topic}/{position.partition}/{position.offset}"


def _order_violations(
    submitted: Iterable[SubmittedRecord],
    by_id: Mapping[str, SubmittedRecord],
    decisions: Iterable[DecidedRecord],
) -> Iterator[str]:
    """First decisions per (source topic, key) that come after a later submission's."""
    groups: dict[tuple[str, str], list[SubmittedRecord]] = defaultdict(list)
    for s in submitted:
        if s.valid:
            groups[(s.topic, s.key)].append(s)
    rank: dict[str, int] = {}
    for records in groups.values():
        by_seq = all(r.seq is not None for r in records)
        ordered = sorted(records, key=lambda r: (r.seq if by_seq else 0, r.partition, r.offset))
        rank.update((r.id, i) for i, r in enumerate(ordered))
    highest: dict[tuple[str, str], int] = {}
    seen: set[str] = set()
    for d in decisions:
        record = by_id.get(d.submission_id)
        if record is None or d.submission_id in seen:
            continue
        seen.add(d.submission_id)
        group = (record.topic, record.key)
        r = rank[record.id]
        if r < highest.get(group, -1):
            yield f"{record.key}:{record.id}"
        else:
            highest[group] = r


def find_leaks(history: History) -> Iterator[VisualizationLeak]:
    """Private-message bodies found in visualization records or decision reasons."""
    index: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for s in history.submitted:
        body = s.private_body
        if body is not None and len(body) >= MIN_LEAK_CHARS:
            index[body[:MIN_LEAK_CHARS]].append((body, s.id))
    if not index:
        return
    for v in history.visualization:
        if v.text is not None:
            for submission_id in _bodies_in(_texts_of(v.text), index):
                yield VisualizationLeak("visualization", v.offset, submission_id)
    for d in history.decided:
        for submission_id in _bodies_in(d.reasons, index):
            yield VisualizationLeak("decision", d.offset, submission_id)


def _texts_of(raw: str) -> list[str]:
    """The raw text, plus its JSON string leaves (bodies are escaped inside JSON)."""
    texts = [raw]
    with contextlib.suppress(ValueError):
        texts.extend(_string_leaves(json.loads(raw)))
    return texts


def _string_leaves(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _string_leaves(v)
    elif isinstance(value, list):
        for item in value:
            yield from _string_leaves(item)


def _bodies_in(texts: Iterable[str], index: Mapping[str, list[tuple[str, str]]]) -> set[str]:
    """Ids of the indexed bodies that occur in any of ``texts``."""
    found: set[str] = set()
    for text in texts:
        for i in range(len(text) - MIN_LEAK_CHARS + 1):
            for body, submission_id in index.get(text[i : i + MIN_LEAK_CHARS], ()):
                if text.startswith(body, i):
                    found.add(submission_id)
    return found


@dataclass(frozen=True, slots=True)
class DeadLetterScores:
    """How well the DLQ matches the records that should have been dead-lettered."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """Dead letters that were expected, over all dead-lettered positions (1.0 if none)."""
        total = self.true_positives + self.false_positives
        return self.true_positives / total if total else 1.0

    @property
    def recall(self) -> float:
        """Expected positions that were dead-lettered, over all expected (1.0 if none)."""
        total = self.true_positives + self.false_negatives
        return self.true_positives / total if total else 1.0


def dead_letter_scores(history: History, expected: Collection[Position]) -> DeadLetterScores:
    """Precision and recall of the DLQ against the positions expected to be dead-lettered."""
    got = {d.source for d in history.dead_letters}
    want = set(expected)
    return DeadLetterScores(
        true_positives=len(got & want),
        false_positives=len(got - want),
        false_negatives=len(want - got),
    )
