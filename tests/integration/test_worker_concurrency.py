"""Concurrency shape of the data plane: one record per key at a time, keys in parallel up
to ``max_in_flight_keys``, global topics in batches of five, a lone record not stuck."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from schemas.queues import QueueClass
from schemas.settings import Settings
from streams.moderation import ModerationInput, PolicyResult, PolicyVerdict
from streams.moderation.testing import ConcurrencyProbe, ConcurrencyProbePolicy
from tests.integration.worker_support import (
    at_least,
    check_order,
    interleaved_posts,
    new_topic,
    publish_submissions,
    read_until,
    reader,
    running_session,
    split_id,
    topics_of,
    wait_for,
    with_,
)


@dataclass
class KeyProbePolicy:
    """Approves after ``delay`` while recording concurrency per key and overall."""

    delay: float
    active: Counter[str] = field(default_factory=Counter)
    max_per_key: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    calls: int = 0

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        key, _seq = split_id(item.submission_id)
        self.calls += 1
        self.active[key] += 1
        self.max_per_key[key] = max(self.max_per_key[key], self.active[key])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active[key] -= 1
            self.in_flight -= 1
        return PolicyResult(verdict=PolicyVerdict.APPROVED)


async def test_one_record_per_key_at_a_time_and_keys_up_to_the_limit(settings: Settings) -> None:
    s = with_(settings, max_in_flight_keys=8)
    posts = interleaved_posts(keys=40, per_key=5)
    publish_submissions(s, posts)
    policy = KeyProbePolicy(delay=0.02)
    with reader(s, topics_of(s).decisions) as decisions:
        async with running_session(s, QueueClass.TOPIC_POSTS, policy):
            records = await read_until(decisions, at_least(len(posts)), 60)
    check_order(records, {f"k{k}": 5 for k in range(40)}).assert_ok(allow_duplicates=False)
    assert set(policy.max_per_key.values()) == {1}, "two records of one key ran at once"
    assert len(policy.max_per_key) == 40
    assert policy.max_in_flight == 8, "keys did not run concurrently up to the limit"


async def test_max_in_flight_keys_one_moderates_one_record_at_a_time(settings: Settings) -> None:
    s = with_(settings, max_in_flight_keys=1)
    posts = interleaved_posts(keys=10, per_key=3)
    publish_submissions(s, posts)
    policy = KeyProbePolicy(delay=0.005)
    with reader(s, topics_of(s).decisions) as decisions:
        async with running_session(s, QueueClass.TOPIC_POSTS, policy):
            records = await read_until(decisions, at_least(len(posts)), 60)
    check_order(records, {f"k{k}": 3 for k in range(10)}).assert_ok(allow_duplicates=False)
    assert policy.calls == len(posts)
    assert policy.max_in_flight == 1


async def test_new_topics_are_moderated_in_parallel_batches_of_five(settings: Settings) -> None:
    topics = [new_topic(f"t{i}") for i in range(20)]
    publish_submissions(settings, topics)  # all queued before the worker starts
    probe = ConcurrencyProbe()
    policy = ConcurrencyProbePolicy(delay_seconds=0.1, probe=probe)
    with reader(settings, topics_of(settings).decisions) as decisions:
        async with running_session(settings, QueueClass.GLOBAL_TOPICS, policy):
            records = await read_until(decisions, at_least(len(topics)), 60)
    assert probe.calls == len(topics)
    assert probe.max_in_flight == settings.batch_size == 5
    check_order(records, {f"t{i}": 1 for i in range(20)}).assert_ok(allow_duplicates=False)


async def test_a_lone_new_topic_is_decided_after_the_batch_wait(settings: Settings) -> None:
    s = with_(settings, batch_wait_seconds=0.5)
    probe = ConcurrencyProbe()
    policy = ConcurrencyProbePolicy(delay_seconds=0.01, probe=probe)
    with reader(s, topics_of(s).decisions) as decisions:
        async with running_session(s, QueueClass.GLOBAL_TOPICS, policy) as session:
            await wait_for(lambda: len(session.assigned) == 3, 30, "partition assignment")
            sent = time.monotonic()
            publish_submissions(s, [new_topic("lonely")])
            records = await read_until(decisions, at_least(1), 10)
            elapsed = time.monotonic() - sent
    assert len(records) == 1
    assert probe.max_in_flight == 1
    # batch wait (0.5 s) + moderation + commit + our 0.2 s polling: well under 0.5 + 1.5
    assert elapsed < s.batch_wait_seconds + 1.5, f"lone record took {elapsed:.2f}s"
