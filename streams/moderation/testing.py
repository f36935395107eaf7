"""Policies for testing workers: delays, concurrency probes and injected failures.

All take their options as keyword arguments, so they load like any other policy::

    load_policy("streams.moderation.testing:DelayPolicy", {"delay_seconds": 0.02})

Failure messages carry submission ids only, never text (they may end up in DLQ headers).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from streams.moderation.policy import ModerationInput, PolicyError, PolicyResult, PolicyVerdict

__all__ = [
    "ConcurrencyProbe",
    "ConcurrencyProbePolicy",
    "DelayPolicy",
    "FailingPolicy",
    "FlakyPolicy",
]

_APPROVED = PolicyResult(verdict=PolicyVerdict.APPROVED)


def _non_negative(name: str, value: float) -> float:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return float(value)


class DelayPolicy:
    """Approves everything after ``delay_seconds`` plus a uniform random jitter in
    ``[0, jitter_seconds]`` drawn from a generator seeded with ``seed`` (reproducible runs).

    ``started`` and ``finished`` list submission ids in the order calls began and ended."""

    def __init__(
        self, delay_seconds: float = 0.01, jitter_seconds: float = 0.0, seed: int | None = None
    ) -> None:
        self.delay_seconds = _non_negative("delay_seconds", delay_seconds)
        self.jitter_seconds = _non_negative("jitter_seconds", jitter_seconds)
        self._rng = random.Random(seed)  # noqa: S311 - test timing, not security
        self.started: list[str] = []
        self.finished: list[str] = []

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        self.started.append(item.submission_id)
        await asyncio.sleep(self.delay_seconds + self._rng.uniform(0.0, self.jitter_seconds))
        self.finished.append(item.submission_id)
        return _APPROVED

    async def aclose(self) -> None:
        return None


@dataclass
class ConcurrencyProbe:
    """Counts calls in flight. ``max_in_flight`` is the most seen at once; ``calls`` the total."""

    in_flight: int = 0
    max_in_flight: int = 0
    calls: int = 0
    active: set[str] = field(default_factory=set)

    def reset(self) -> None:
        self.in_flight = self.max_in_flight = self.calls = 0
        self.active.clear()


class ConcurrencyProbePolicy:
    """Approves after ``delay_seconds`` while recording concurrency in a probe.

    By default every instance shares the class attribute ``ConcurrencyProbePolicy.probe``, so a
    test can read it however the worker created its policies (reset it at the start of the
    test with ``ConcurrencyProbePolicy.probe.reset()``); pass ``probe=`` to use a private one.
    """

    probe: ClassVar[ConcurrencyProbe] = ConcurrencyProbe()

    def __init__(self, delay_seconds: float = 0.01, probe: ConcurrencyProbe | None = None) -> None:
        self.delay_seconds = _non_negative("delay_seconds", delay_seconds)
        self._probe = probe if probe is not None else ConcurrencyProbePolicy.probe

    @property
    def current_probe(self) -> ConcurrencyProbe:
        return self._probe

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        probe = self._probe
        probe.calls += 1
        probe.in_flight += 1
        probe.max_in_flight = max(probe.max_in_flight, probe.in_flight)
        probe.active.add(item.submission_id)
        try:
            await asyncio.sleep(self.delay_seconds)
        finally:
            probe.in_flight -= 1
            probe.active.discard(item.submission_id)
        return _APPROVED


class FailingPolicy:
    """Raises ``PolicyError(retryable=retryable)`` for matching submissions, approves the rest.

    A submission matches when its ``submission_id`` is in ``fail_on_keys`` or its title or body
    contains ``fail_on_substring``. With ``always=True`` every attempt fails (the worker ends in
    DLQ + ``failed``); with ``always=False`` only the first attempt per submission fails.
    ``attempts`` counts calls per submission id."""

    def __init__(
        self,
        fail_on_keys: Iterable[str] = (),
        fail_on_substring: str | None = None,
        always: bool = True,
        retryable: bool = True,
    ) -> None:
        if isinstance(fail_on_keys, str):
            raise TypeError("fail_on_keys must be a collection of submission ids, not a string")
        self.fail_on_keys = frozenset(fail_on_keys)
        if fail_on_substring == "":
            raise ValueError("fail_on_substring must not be empty")
        self.fail_on_substring = fail_on_substring
        self.always = always
        self.retryable = retryable
        self.attempts: dict[str, int] = {}

    def matches(self, item: ModerationInput) -> bool:
        if item.submission_id in self.fail_on_keys:
            return True
        needle = self.fail_on_substring
        return needle is not None and (needle in item.body or needle in (item.title or ""))

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        attempt = self.attempts.get(item.submission_id, 0) + 1
        self.attempts[item.submission_id] = attempt
        if self.matches(item) and (self.always or attempt == 1):
            raise PolicyError(
                f"injected failure for submission {item.submission_id} (attempt {attempt})",
                retryable=self.retryable,
            )
        return _APPROVED


class FlakyPolicy:
    """Fails the first ``fail_times`` attempts of every submission with
    ``PolicyError(retryable=True)``, then approves. ``attempts`` counts calls per id."""

    def __init__(self, fail_times: int = 1) -> None:
        if fail_times < 0:
            raise ValueError(f"fail_times must not be negative, got {fail_times!r}")
        self.fail_times = fail_times
        self.attempts: dict[str, int] = {}

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        attempt = self.attempts.get(item.submission_id, 0) + 1
        self.attempts[item.submission_id] = attempt
        if attempt <= self.fail_times:
            raise PolicyError(
                f"flaky failure {attempt}/{self.fail_times} for submission {item.submission_id}",
                retryable=True,
            )
        return _APPROVED
