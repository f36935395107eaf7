"""Bounded memory: with a backlog and a slow policy, a session never holds more records
(consumed, not committed) than its bound, because it stops consuming there."""

from __future__ import annotations

from schemas.queues import QueueClass
from schemas.settings import Settings
from streams.moderation.testing import DelayPolicy
from tests.integration.worker_support import (
    Out,
    check_order,
    interleaved_posts,
    publish_submissions,
    read_until,
    reader,
    running_session,
    topics_of,
    wait_for,
    with_,
)


async def test_buffered_records_stay_within_the_bound(settings: Settings) -> None:
    s = with_(settings, max_in_flight_keys=4)
    posts = interleaved_posts(keys=40, per_key=10)  # four times the bound
    publish_submissions(s, posts)
    seen: list[int] = []
    with reader(s, topics_of(s).decisions) as decisions:
        async with running_session(
            s, QueueClass.TOPIC_POSTS, DelayPolicy(delay_seconds=0.005), max_buffered=100
        ) as session:

            def sampled_until_done(records: list[Out]) -> bool:
                seen.append(session.buffered)
                return len(records) >= len(posts)

            await wait_for(lambda: session.pauses > 0, 30, "backpressure to hold off fetching")
            records = await read_until(decisions, sampled_until_done, 60)
            assert session.pauses >= 2, "consumption was held off and resumed more than once"
            assert session.peak_buffered == session.max_buffered == 100
    check_order(records, {f"k{k}": 10 for k in range(40)}).assert_ok(allow_duplicates=False)
    assert len(records) == len(posts)
    assert max(seen) <= 100
