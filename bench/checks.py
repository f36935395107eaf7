"""Pure helpers of the benchmarks: order checks, rates, percentiles, medians (no I/O).

An *output* is one record read back from the decisions topic, reduced to what the checks
need: where it was written, its key, which submission it answers (the submission's own
partition and offset: ``decision.source`` for modq and faust, headers for the passthrough)
and when the reader saw it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Source = tuple[int, int]
"""A submission's (partition, offset) in the submissions topic."""


@dataclass(frozen=True, slots=True)
class Output:
    """One decision (or passthrough record) read back."""

    partition: int
    offset: int
    key: bytes | None
    source: Source
    received_s: float


@dataclass(frozen=True, slots=True)
class OrderReport:
    """Per-key order and completeness of the outputs of one run."""

    expected: int
    unique: int
    duplicates: int
    missing: int
    unexpected: int
    violations: int
    keys: int
    duplicates_allowed: bool

    @property
    def ok(self) -> bool:
        """Every submission answered, per-key order kept, duplicates only where allowed."""
        return (
            self.missing == 0
            and self.violations == 0
            and self.unexpected == 0
            and (self.duplicates_allowed or self.duplicates == 0)
        )

    def as_dict(self) -> dict[str, int | bool]:
        """JSON-ready fields (``ok`` included)."""
        return {
            "ok": self.ok,
            "expected": self.expected,
            "unique": self.unique,
            "duplicates": self.duplicates,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "violations": self.violations,
            "keys": self.keys,
        }


def first_occurrences(outputs: Iterable[Output]) -> list[Output]:
    """The first output per source, in (partition, offset) order of the output topic."""
    seen: set[Source] = set()
    firsts: list[Output] = []
    for out in sorted(outputs, key=lambda o: (o.partition, o.offset)):
        if out.source not in seen:
            seen.add(out.source)
            firsts.append(out)
    return firsts


def check_order(
    outputs: Sequence[Output], expected: Iterable[Source], *, duplicates_allowed: bool
) -> OrderReport:
    """Check the contract's invariant 1 on one run's outputs.

    Per key, the first occurrences must answer the key's submissions in submission order
    (all of a key's submissions share a partition, so that is increasing source offsets),
    and every expected submission must be answered. At-least-once may repeat some.
    """
    wanted = set(expected)
    last: dict[bytes | None, Source] = {}
    violations = 0
    firsts = first_occurrences(outputs)
    for out in firsts:
        before = last.get(out.key)
        if before is not None and (before[0] != out.source[0] or before[1] >= out.source[1]):
            violations += 1
        last[out.key] = out.source
    answered = {o.source for o in firsts}
    return OrderReport(
        expected=len(wanted),
        unique=len(answered),
        duplicates=len(outputs) - len(firsts),
        missing=len(wanted - answered),
        unexpected=len(answered - wanted),
        violations=violations,
        keys=len(last),
        duplicates_allowed=duplicates_allowed,
    )


def drain_rate(outputs: Iterable[Output]) -> float:
    """Messages per second between the first and the last answer becoming visible.

    Visible means: seen by the driver's read-committed reader (so exactly-once answers count
    when their transaction commits). Start-up (process launch, group join) is excluded: the
    clock starts at the first answer.
    """
    seen: dict[Source, float] = {}
    for out in outputs:
        previous = seen.get(out.source)
        if previous is None or out.received_s < previous:
            seen[out.source] = out.received_s
    if len(seen) < 2:
        return 0.0
    span = max(seen.values()) - min(seen.values())
    return (len(seen) - 1) / span if span > 0 else math.inf


def latencies_ms(outputs: Iterable[Output], sent_at: Mapping[Source, float]) -> list[float]:
    """Milliseconds from ``submitted_at`` to the reader seeing the first answer, per source
    present in ``sent_at`` (the submissions of one phase)."""
    got: dict[Source, float] = {}
    for out in outputs:
        if out.source in sent_at:
            previous = got.get(out.source)
            if previous is None or out.received_s < previous:
                got[out.source] = out.received_s
    return [(received - sent_at[src]) * 1000.0 for src, received in got.items()]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Iterable[float]) -> float:
    """The median of the finite values; NaN when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def ratio(numerator: float | None, denominator: float | None) -> float:
    """``numerator / denominator``; NaN when either is missing or the denominator is 0."""
    if numerator is None or denominator is None:
        return math.nan
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return math.nan
    return numerator / denominator


def finite_or_none(value: object) -> object:
    """``value`` with every NaN/infinite float (nested in lists and dicts) made ``None``,
    so that it can be written as strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value
