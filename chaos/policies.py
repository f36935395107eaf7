"""Policies the slow scenarios load into ``modq worker`` subprocesses by ``MODQ_POLICY``.

:class:`PoisonKeyPolicy` is the default rule-based policy, except that it raises a retryable
:class:`~streams.moderation.policy.PolicyError` on every attempt for a submission whose body
contains :data:`POISON_MARKER`: the worker retries it in place (its key waits), then gives up
with a DLQ record and a ``failed`` decision, and the key moves on. Everything else costs what
it costs under the default policy, so a baseline run with the same policy is a fair baseline.
"""

from __future__ import annotations

from datetime import datetime

from streams.moderation.policy import ModerationInput, PolicyError, PolicyResult
from streams.moderation.rules import RuleBasedPolicy

POISON_MARKER = "CHAOS-POISON-KEY-7f3a"
"""Body text that makes :class:`PoisonKeyPolicy` fail."""


class PoisonKeyPolicy:
    """The rule-based policy, failing every attempt on bodies containing the marker."""

    def __init__(self) -> None:
        self._rules = RuleBasedPolicy()
        self.failures = 0

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        if POISON_MARKER in item.body:
            self.failures += 1
            raise PolicyError(f"poisoned submission {item.submission_id}", retryable=True)
        return await self._rules.moderate(item, now)
