"""Per-key order under concurrency: many keys, many lanes, random policy delays."""

from __future__ import annotations

import pytest

from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings
from streams.moderation.testing import DelayPolicy
from tests.integration.worker_support import (
    check_order,
    distinct_ids_at_least,
    interleaved_posts,
    publish_submissions,
    read_until,
    reader,
    running_session,
    topics_of,
    with_,
)


@pytest.mark.parametrize(
    ("guarantee", "keys", "per_key"),
    [
        (ProcessingGuarantee.AT_LEAST_ONCE, 500, 6),
        (ProcessingGuarantee.EXACTLY_ONCE, 200, 5),
    ],
)
async def test_every_key_is_decided_in_submission_order(
    settings: Settings, guarantee: ProcessingGuarantee, keys: int, per_key: int
) -> None:
    s = with_(settings, processing_guarantee=guarantee, max_in_flight_keys=32)
    posts = interleaved_posts(keys, per_key)
    publish_submissions(s, posts)
    policy = DelayPolicy(delay_seconds=0.001, jitter_seconds=0.01, seed=7)
    with reader(s, topics_of(s).decisions) as decisions:
        async with running_session(s, QueueClass.TOPIC_POSTS, policy) as session:
            records = await read_until(decisions, distinct_ids_at_least(len(posts)), 90)
            assert session.peak_buffered <= session.max_buffered
        records = decisions.settle(quiet=1.0)
    report = check_order(records, {f"k{k}": per_key for k in range(keys)})
    report.assert_ok(allow_duplicates=False)  # one stable member: nothing is re-read
    assert len(report.decisions) == len(posts)
    # the jitter really reordered work across keys: completion order is not submission order
    assert policy.finished != [p.id for p in posts]
