"""The moderation policy interface: input, result, the ``Policy`` protocol and its loader.

Pure: no Kafka, no clock. The worker builds a :class:`ModerationInput` from a validated
submission, calls ``await policy.moderate(item, now)`` with the time it reads itself, and turns
the :class:`PolicyResult` into a decision. Any exception from ``moderate`` is a processing
failure the worker may retry in place; :class:`PolicyError` says by attribute whether a retry
can help.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ModerationInput",
    "Policy",
    "PolicyError",
    "PolicyLoadError",
    "PolicyResult",
    "PolicyVerdict",
    "SubmissionKind",
    "aclose_policy",
    "load_policy",
    "strongest",
]

SubmissionKind = Literal["topic", "post", "private_message"]


class ModerationInput(BaseModel):
    """What a policy sees of one submission.

    ``author_id`` is the sender for private messages. ``title`` is set for topics only.
    ``title`` and ``body`` are left out of ``repr()`` so that logging an input never leaks a
    private-message body.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    submission_id: str = Field(min_length=1)
    kind: SubmissionKind
    author_id: str = Field(min_length=1)
    title: str | None = Field(default=None, repr=False)
    body: str = Field(repr=False)
    submitted_at: AwareDatetime

    @model_validator(mode="after")
    def _title_only_for_topics(self) -> ModerationInput:
        if self.title is not None and self.kind != "topic":
            raise ValueError(f"title is only allowed for kind 'topic', not {self.kind!r}")
        return self


class PolicyVerdict(StrEnum):
    """A policy's verdict. (The decision's ``failed`` is the worker's, never a policy's.)"""

    APPROVED = "approved"
    NEEDS_REVIEW = "needs_review"
    REJECTED = "rejected"

    @property
    def severity(self) -> int:
        """0 approved < 1 needs_review < 2 rejected."""
        return _SEVERITY[self]


_SEVERITY: dict[PolicyVerdict, int] = {
    PolicyVerdict.APPROVED: 0,
    PolicyVerdict.NEEDS_REVIEW: 1,
    PolicyVerdict.REJECTED: 2,
}


def strongest(verdicts: Iterable[PolicyVerdict]) -> PolicyVerdict:
    """The strongest of the verdicts (rejected > needs_review > approved); approved if none."""
    return max(verdicts, key=_SEVERITY.__getitem__, default=PolicyVerdict.APPROVED)


class PolicyResult(BaseModel):
    """A verdict and the human-readable reasons for it (empty for a plain approval).

    Reasons carry rule names, configured terms and counts, never submission text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verdict: PolicyVerdict
    reasons: tuple[str, ...] = ()


class PolicyError(Exception):
    """A policy could not decide. ``retryable`` tells the worker whether trying the same
    submission again may succeed (decided by this attribute, never by the message text).

    The message may end up in DLQ headers: never put submission text in it."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class PolicyLoadError(Exception):
    """``load_policy`` could not produce a policy: ``path`` is what was asked for and
    ``reason`` says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot load moderation policy {path!r}: {reason}")
        self.path = path
        self.reason = reason


@runtime_checkable
class Policy(Protocol):
    """A moderation policy. ``now`` is the worker's current time (aware); policies never read a
    clock themselves. Implementations may also define ``async def aclose(self) -> None`` to
    release resources; call it through :func:`aclose_policy`."""

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult: ...


async def aclose_policy(policy: Policy) -> None:
    """Call the policy's optional ``aclose()`` if it has one."""
    aclose = getattr(policy, "aclose", None)
    if aclose is not None:
        await aclose()


def _split_path(path: str) -> tuple[str, str]:
    """``pkg.mod:Name`` or ``pkg.mod.Name`` -> (module, attribute path)."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    module_name, attr = module_name.strip(), attr.strip()
    if not module_name or not attr or ":" in attr:
        raise PolicyLoadError(path, "expected 'package.module:Name' or 'package.module.Name'")
    return module_name, attr


def load_policy(dotted_path: str, options: Mapping[str, object] | None = None) -> Policy:
    """Import ``package.module:Name`` (or ``package.module.Name``) and call it with ``options``
    as keyword arguments. The result must have an ``async def moderate(item, now)`` (and, if it
    has ``aclose``, that must be async too). Every failure raises :class:`PolicyLoadError`
    chained to the underlying exception."""
    module_name, attr = _split_path(dotted_path)
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:
        raise PolicyLoadError(
            dotted_path, f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise PolicyLoadError(
                dotted_path, f"module {module_name!r} has no attribute {attr!r}"
            ) from exc
    if not callable(target):
        raise PolicyLoadError(
            dotted_path, f"{attr!r} is a {type(target).__name__}, not a class or factory"
        )
    kwargs = dict(options or {})
    bad_keys = [key for key in kwargs if not isinstance(key, str)]
    if bad_keys:
        raise PolicyLoadError(dotted_path, f"option names must be strings, got {bad_keys!r}")
    try:
        policy: object = target(**kwargs)
    except Exception as exc:
        raise PolicyLoadError(
            dotted_path,
            f"creating it with options {sorted(kwargs)} failed: {type(exc).__name__}: {exc}",
        ) from exc
    moderate = getattr(policy, "moderate", None)
    if moderate is None or not inspect.iscoroutinefunction(moderate):
        raise PolicyLoadError(
            dotted_path,
            f"{type(policy).__name__} does not satisfy the Policy protocol: "
            "it needs 'async def moderate(self, item, now)'",
        )
    try:
        inspect.signature(moderate).bind(None, None)
    except (TypeError, ValueError) as exc:
        raise PolicyLoadError(
            dotted_path,
            f"{type(policy).__name__}.moderate must accept (item, now): {exc}",
        ) from exc
    aclose = getattr(policy, "aclose", None)
    if aclose is not None and not inspect.iscoroutinefunction(aclose):
        raise PolicyLoadError(
            dotted_path, f"{type(policy).__name__}.aclose must be 'async def aclose(self)'"
        )
    if not isinstance(policy, Policy):  # pragma: no cover - implied by the checks above
        raise PolicyLoadError(dotted_path, "does not satisfy the Policy protocol")
    return policy
