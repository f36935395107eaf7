"""At-least-once crash recovery: records finished beyond the committed offset (recorded in the
commit metadata) are not decided again by the next owner."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from confluent_kafka import Consumer, TopicPartition

from schemas.codec import decode_decision
from schemas.queues import QueueClass
from schemas.settings import Settings
from streams.flow import group_id
from streams.metrics import WorkerMetrics
from streams.moderation import ModerationInput, PolicyResult, PolicyVerdict
from streams.session import ClassSession
from tests.integration.worker_support import (
    Out,
    interleaved_posts,
    post,
    processor,
    publish_submissions,
    read_until,
    reader,
    topics_of,
    wait_for,
)


class GatedPolicy:
    """Approves at once, except the key ``slow``, which waits for ``gate``."""

    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        del now
        if item.submission_id.startswith("slow"):
            await self.gate.wait()
        return PolicyResult(verdict=PolicyVerdict.APPROVED)


def _ids(records: list[Out]) -> list[str]:
    return [decode_decision(r.value).submission_id for r in records]


def _metadata_written(settings: Settings) -> bool:
    names = topics_of(settings)
    consumer = Consumer(
        {
            "bootstrap.servers": str(settings.kafka_bootstrap_servers),
            "group.id": group_id(names, QueueClass.TOPIC_POSTS),
        }
    )
    try:
        parts = consumer.committed(
            [TopicPartition(names.submissions_posts, p) for p in range(3)], timeout=10
        )
    finally:
        consumer.close()
    return any((tp.metadata or "").startswith("modq1:") for tp in parts)


def _session(settings: Settings, gate: asyncio.Event) -> ClassSession:
    return ClassSession(
        settings,
        worker_id="wc",
        queue_class=QueueClass.TOPIC_POSTS,
        processor=processor(settings, GatedPolicy(gate), "wc"),
        metrics=WorkerMetrics("wc"),
    )


async def test_a_crash_does_not_redecide_records_finished_past_the_commit(
    settings: Settings,
) -> None:
    posts = [post("slow", 0), *interleaved_posts(keys=30, per_key=5)]
    publish_submissions(settings, posts)
    fast = len(posts) - 1
    closed = asyncio.Event()
    with reader(settings, topics_of(settings).decisions) as decisions:
        first = _session(settings, closed)
        task = asyncio.create_task(first.serve())
        seen = await read_until(decisions, lambda r: len(r) >= fast, 60)
        assert "slow-0" not in _ids(seen)
        await wait_for(lambda: _metadata_written(settings), 20, "finished offsets in metadata")
        task.cancel()  # a crash: no drain, no commit on the way out
        with contextlib.suppress(asyncio.CancelledError):
            await task

        opened = asyncio.Event()
        opened.set()
        second = _session(settings, opened)
        task = asyncio.create_task(second.serve())
        try:
            records = await read_until(decisions, lambda r: "slow-0" in _ids(r), 60)
            await wait_for(lambda: second.processed >= 1, 20, "the slow record decided")
        finally:
            second.request_stop()
            await asyncio.wait_for(task, 60)
    ids = _ids(records)
    assert ids.count("slow-0") == 1
    duplicates = len(ids) - len(set(ids))
    assert second.skipped > 0, "the new owner skipped records finished by the crashed one"
    assert duplicates == 0, f"{duplicates} records decided twice"
    assert second.processed == 1  # only the slow record was left to do
