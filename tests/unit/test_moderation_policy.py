"""The policy interface: models, verdict ordering, load_policy and the test policies."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.moderation import (
    DEFAULT_POLICY,
    ModerationInput,
    Policy,
    PolicyError,
    PolicyLoadError,
    PolicyResult,
    PolicyVerdict,
    RuleBasedPolicy,
    aclose_policy,
    load_policy,
    strongest,
)
from streams.moderation.testing import (
    ConcurrencyProbe,
    ConcurrencyProbePolicy,
    DelayPolicy,
    FailingPolicy,
    FlakyPolicy,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def item(
    body: str = "hello there",
    *,
    sid: str = "s1",
    kind: str = "post",
    author: str = "u1",
    title: str | None = None,
) -> ModerationInput:
    return ModerationInput.model_validate(
        {
            "submission_id": sid,
            "kind": kind,
            "author_id": author,
            "title": title,
            "body": body,
            "submitted_at": NOW - timedelta(seconds=1),
        }
    )


# --- models ------------------------------------------------------------------------------------


def test_input_is_frozen_and_hides_text_from_repr() -> None:
    pm = item("my secret plans", kind="private_message")
    with pytest.raises(ValidationError):
        pm.body = "changed"  # type: ignore[misc]
    assert "secret" not in repr(pm)
    assert "secret" not in str(pm)
    assert "s1" in repr(pm)


def test_input_requires_aware_time_and_known_kind() -> None:
    with pytest.raises(ValidationError):
        ModerationInput(
            submission_id="s",
            kind="post",
            author_id="u",
            body="b",
            submitted_at=datetime(2024, 1, 1),
        )
    with pytest.raises(ValidationError):
        item(kind="comment")
    with pytest.raises(ValidationError):
        ModerationInput.model_validate(
            {
                "submission_id": "s",
                "kind": "post",
                "author_id": "u",
                "body": "b",
                "submitted_at": NOW,
                "extra": 1,
            }
        )


def test_title_only_for_topics() -> None:
    assert item(kind="topic", title="A title").title == "A title"
    with pytest.raises(ValidationError, match="title is only allowed"):
        item(kind="post", title="nope")


def test_verdict_values_and_strength() -> None:
    assert {v.value for v in PolicyVerdict} == {"approved", "rejected", "needs_review"}
    assert PolicyVerdict.APPROVED.severity < PolicyVerdict.NEEDS_REVIEW.severity
    assert PolicyVerdict.NEEDS_REVIEW.severity < PolicyVerdict.REJECTED.severity
    assert strongest([]) is PolicyVerdict.APPROVED
    assert (
        strongest([PolicyVerdict.NEEDS_REVIEW, PolicyVerdict.APPROVED])
        is PolicyVerdict.NEEDS_REVIEW
    )
    assert (
        strongest([PolicyVerdict.NEEDS_REVIEW, PolicyVerdict.REJECTED, PolicyVerdict.APPROVED])
        is PolicyVerdict.REJECTED
    )


def test_result_is_frozen() -> None:
    result = PolicyResult(verdict=PolicyVerdict.REJECTED, reasons=("x",))
    with pytest.raises(ValidationError):
        result.verdict = PolicyVerdict.APPROVED  # type: ignore[misc]
    assert PolicyResult(verdict=PolicyVerdict.APPROVED).reasons == ()


def test_policy_error_carries_retryable() -> None:
    assert PolicyError("boom").retryable is True
    err = PolicyError("bad input", retryable=False)
    assert err.retryable is False
    assert str(err) == "bad input"


# --- load_policy: success -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "streams.moderation.rules:RuleBasedPolicy",
        "streams.moderation.rules.RuleBasedPolicy",
        DEFAULT_POLICY,
    ],
)
async def test_load_rule_based_policy(path: str) -> None:
    policy = load_policy(path, {"banned_terms": ["spam"], "max_links": 1})
    assert isinstance(policy, RuleBasedPolicy)
    assert isinstance(policy, Policy)
    assert policy.config.banned_terms == ("spam",)
    result = await policy.moderate(item("buy spam now"), NOW)
    assert result.verdict is PolicyVerdict.REJECTED
    await aclose_policy(policy)


async def test_load_test_policy_with_options() -> None:
    policy = load_policy("streams.moderation.testing:DelayPolicy", {"delay_seconds": 0.02})
    assert isinstance(policy, DelayPolicy)
    assert policy.delay_seconds == 0.02
    assert (await policy.moderate(item(), NOW)).verdict is PolicyVerdict.APPROVED
    assert load_policy("streams.moderation.testing.FlakyPolicy", {}) is not None


def test_load_accepts_a_factory_function() -> None:
    policy = load_policy(f"{__name__}:make_policy", {"label": "x"})
    assert isinstance(policy, AsyncPolicy)


# --- load_policy: failures ------------------------------------------------------------------------


class AsyncPolicy:
    def __init__(self, label: str = "") -> None:
        self.label = label

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        return PolicyResult(verdict=PolicyVerdict.APPROVED)


def make_policy(label: str) -> AsyncPolicy:
    return AsyncPolicy(label)


class SyncModerate:
    def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        return PolicyResult(verdict=PolicyVerdict.APPROVED)


class WrongArity:
    async def moderate(self, item: ModerationInput) -> PolicyResult:
        return PolicyResult(verdict=PolicyVerdict.APPROVED)


class SyncClose(AsyncPolicy):
    def aclose(self) -> None:
        return None


class Exploding:
    def __init__(self) -> None:
        raise RuntimeError("no database")


NOT_CALLABLE = 42


def load_error(path: str, options: dict[str, object] | None = None) -> PolicyLoadError:
    with pytest.raises(PolicyLoadError) as info:
        load_policy(path, options or {})
    err = info.value
    assert err.path == path
    assert err.reason
    assert path in str(err)
    assert err.reason in str(err)
    return err


@pytest.mark.parametrize("path", ["", "justaname", "module:", ":Name", "a:b:c", " : "])
def test_load_rejects_malformed_paths(path: str) -> None:
    assert "package.module:Name" in load_error(path).reason


def test_load_missing_module() -> None:
    err = load_error("streams.moderation.no_such_module:Policy")
    assert "cannot import module 'streams.moderation.no_such_module'" in err.reason
    assert "ModuleNotFoundError" in err.reason
    assert isinstance(err.__cause__, ModuleNotFoundError)


def test_load_missing_attribute() -> None:
    err = load_error("streams.moderation.rules:NoSuchPolicy")
    assert "has no attribute 'NoSuchPolicy'" in err.reason


def test_load_not_callable() -> None:
    assert "not a class or factory" in load_error(f"{__name__}:NOT_CALLABLE").reason


def test_load_bad_options() -> None:
    err = load_error(DEFAULT_POLICY, {"max_link": 3})
    assert "max_link" in err.reason
    assert isinstance(err.__cause__, ValidationError)
    err = load_error(DEFAULT_POLICY, {"max_links": -1})
    assert "max_links" in err.reason
    err = load_error("streams.moderation.testing:DelayPolicy", {"delay": 1})
    assert isinstance(err.__cause__, TypeError)
    assert "delay" in err.reason


def test_load_constructor_failure() -> None:
    err = load_error(f"{__name__}:Exploding")
    assert "RuntimeError: no database" in err.reason
    assert isinstance(err.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("collections:OrderedDict", "does not satisfy the Policy protocol"),
        (f"{__name__}:SyncModerate", "does not satisfy the Policy protocol"),
        (f"{__name__}:WrongArity", "must accept (item, now)"),
        (f"{__name__}:SyncClose", "aclose must be 'async def aclose(self)'"),
    ],
)
def test_load_rejects_objects_that_are_not_policies(name: str, expected: str) -> None:
    assert expected in load_error(name).reason


@pytest.fixture
def broken_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "modq_test_broken_policy_module"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            raise ImportError("optional dependency missing")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_load_module_that_fails_to_import(broken_module: str) -> None:
    err = load_error(f"{broken_module}:Policy")
    assert "optional dependency missing" in err.reason


# --- aclose_policy --------------------------------------------------------------------------------


async def test_aclose_is_optional() -> None:
    await aclose_policy(AsyncPolicy())
    closed: list[bool] = []

    class Closing(AsyncPolicy):
        async def aclose(self) -> None:
            closed.append(True)

    await aclose_policy(Closing())
    assert closed == [True]


# --- test policies --------------------------------------------------------------------------------


async def test_delay_policy_is_reproducible_and_approves() -> None:
    policies = [DelayPolicy(delay_seconds=0.0, jitter_seconds=0.01, seed=7) for _ in range(2)]
    jitters = [[p._rng.random() for _ in range(3)] for p in policies]
    assert jitters[0] == jitters[1]
    policy = DelayPolicy(delay_seconds=0.001, jitter_seconds=0.005, seed=1)
    results = await asyncio.gather(*(policy.moderate(item(sid=f"s{i}"), NOW) for i in range(5)))
    assert all(r.verdict is PolicyVerdict.APPROVED for r in results)
    assert policy.started == [f"s{i}" for i in range(5)]
    assert sorted(policy.finished) == sorted(policy.started)
    with pytest.raises(ValueError, match="delay_seconds"):
        DelayPolicy(delay_seconds=-1)


async def test_concurrency_probe_shared_and_private() -> None:
    ConcurrencyProbePolicy.probe.reset()
    shared = [ConcurrencyProbePolicy(delay_seconds=0.01) for _ in range(2)]
    await asyncio.gather(
        *(shared[i % 2].moderate(item(sid=f"s{i}"), NOW) for i in range(6)),
    )
    assert ConcurrencyProbePolicy.probe.max_in_flight == 6
    assert ConcurrencyProbePolicy.probe.calls == 6
    assert ConcurrencyProbePolicy.probe.in_flight == 0
    assert not ConcurrencyProbePolicy.probe.active

    private = ConcurrencyProbe()
    policy = ConcurrencyProbePolicy(delay_seconds=0.0, probe=private)
    for i in range(3):
        await policy.moderate(item(sid=f"s{i}"), NOW)
    assert private.max_in_flight == 1
    assert private.calls == 3
    assert policy.current_probe is private
    assert ConcurrencyProbePolicy.probe.calls == 6
    ConcurrencyProbePolicy.probe.reset()


async def test_failing_policy_by_key_and_substring() -> None:
    policy = FailingPolicy(fail_on_keys=["bad1"], fail_on_substring="FAILME")
    for _ in range(2):
        with pytest.raises(PolicyError) as info:
            await policy.moderate(item(sid="bad1", kind="private_message"), NOW)
        assert info.value.retryable is True
    with pytest.raises(PolicyError) as info:
        await policy.moderate(item("please FAILME now", sid="s2", kind="private_message"), NOW)
    assert "FAILME" not in str(info.value)  # messages carry ids, never text
    assert "s2" in str(info.value)
    ok = await policy.moderate(item("fine", sid="s3"), NOW)
    assert ok.verdict is PolicyVerdict.APPROVED
    assert policy.attempts == {"bad1": 2, "s2": 1, "s3": 1}


async def test_failing_policy_once_and_not_retryable() -> None:
    policy = load_policy(
        "streams.moderation.testing:FailingPolicy",
        {"fail_on_keys": ["k"], "always": False, "retryable": False},
    )
    with pytest.raises(PolicyError) as info:
        await policy.moderate(item(sid="k"), NOW)
    assert info.value.retryable is False
    assert (await policy.moderate(item(sid="k"), NOW)).verdict is PolicyVerdict.APPROVED
    with pytest.raises(TypeError):
        FailingPolicy(fail_on_keys="k")


async def test_flaky_policy_fails_first_attempts_per_submission() -> None:
    policy = FlakyPolicy(fail_times=2)
    for sid in ("a", "b"):
        for _ in range(2):
            with pytest.raises(PolicyError) as info:
                await policy.moderate(item(sid=sid), NOW)
            assert info.value.retryable is True
        assert (await policy.moderate(item(sid=sid), NOW)).verdict is PolicyVerdict.APPROVED
    assert policy.attempts == {"a": 3, "b": 3}
    never = FlakyPolicy(fail_times=0)
    assert (await never.moderate(item(), NOW)).verdict is PolicyVerdict.APPROVED
