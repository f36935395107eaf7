"""Moderation policies for the data plane (pure: no Kafka, no clock reads).

The worker turns a submission into a :class:`ModerationInput`, calls
``await policy.moderate(item, now)`` and publishes the :class:`PolicyResult` as a decision.
:class:`RuleBasedPolicy` is the default; :func:`load_policy` loads any other by dotted path.
Test policies (delays, concurrency probes, failures) live in :mod:`streams.moderation.testing`.
"""

from streams.moderation.flood import FloodTracker
from streams.moderation.policy import (
    ModerationInput,
    Policy,
    PolicyError,
    PolicyLoadError,
    PolicyResult,
    PolicyVerdict,
    SubmissionKind,
    aclose_policy,
    load_policy,
    strongest,
)
from streams.moderation.rules import RuleBasedPolicy, RulesConfig

DEFAULT_POLICY = "streams.moderation.rules:RuleBasedPolicy"

__all__ = [
    "DEFAULT_POLICY",
    "FloodTracker",
    "ModerationInput",
    "Policy",
    "PolicyError",
    "PolicyLoadError",
    "PolicyResult",
    "PolicyVerdict",
    "RuleBasedPolicy",
    "RulesConfig",
    "SubmissionKind",
    "aclose_policy",
    "load_policy",
    "strongest",
]
