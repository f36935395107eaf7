"""The faust adapter's table logic in faust's own agent test context (no broker)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import encode
from schemas.decisions import SourcePosition, Verdict, build_decision
from schemas.settings import Settings
from schemas.submissions import PostSubmission, TopicSubmission
from streams.queue_state.faust_app import REREAD_AFTER_S, QueueStateApp
from streams.queue_state.options import QueueStateOptions
from streams.queue_state.state import Outcome


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(tmp_path: Path, clock: Clock) -> QueueStateApp:
    settings = Settings(
        kafka_bootstrap_servers="127.0.0.1:1", topic_prefix="unit.", state_dir=tmp_path
    )
    qs = QueueStateApp(
        settings, QueueStateOptions(empty_grace_seconds=60.0), partitions=3, clock=clock
    )
    qs.app.finalize()
    qs.app.flow_control.resume()
    return qs


async def put(qs: QueueStateApp, topic: str, items: Sequence[tuple[bytes, bytes, int]]) -> None:
    channel = qs.app.topic(topic, key_serializer="raw", value_serializer="raw")
    agent: Any
    async with qs.agent.test_context(channel=channel) as agent:
        # faust names test messages after the agent's original channel, a multi-topic one
        # here ("<internal>"); name them after the topic this test plays instead.
        agent.original_channel = channel
        for key, value, partition in items:
            await agent.put(value, key=key, partition=partition)


def post(n: int) -> PostSubmission:
    return PostSubmission(
        id=f"p{n}",
        topic_id="t1",
        author_id="a",
        body="hello",
        submitted_at=datetime.fromtimestamp(100 + n, UTC),
    )


def decision(sub: PostSubmission | TopicSubmission) -> bytes:
    return encode(
        build_decision(
            sub,
            verdict=Verdict.APPROVED,
            decided_at=datetime.fromtimestamp(900, UTC),
            source=SourcePosition(topic="x", partition=1, offset=0),
            worker_id="w1",
        )
    )


async def test_agent_folds_records_into_tables(tmp_path: Path) -> None:
    clock = Clock()
    qs = make_app(tmp_path, clock)
    names = qs.names
    await put(qs, names.submissions_posts, [(b"t1", encode(post(n)), 1) for n in (1, 2, 3)])
    await put(qs, names.submissions_posts, [(b"t1", b"not json", 1)])
    new_topic = TopicSubmission(
        id="nt", topic_id="t9", author_id="a", title="x", body="", submitted_at=post(1).submitted_at
    )
    await put(qs, names.submissions_topics, [(b"t9", encode(new_topic), 2)])
    await put(
        qs,
        names.decisions,
        [
            (b"t1", decision(post(1)), 1),
            (b"t1", decision(post(1)), 1),
            (b"t9", decision(new_topic), 2),
        ],
    )
    stored = qs.keys["topic_t1"]
    assert (stored.partition, stored.state.pending, stored.state.oldest_pending_at) == (1, 2, 102.0)
    assert qs.counters[Outcome.DUPLICATE.value] == 1
    assert qs.counters["invalid"] == 1
    assert qs.dirty == {"topic_t1"}  # the new topic's internal key is never published
    assert qs.keys["global_topics:t9"].state.pending == 0
    posts = qs.classes["topic_posts@1"]
    assert (posts.pending, posts.arrivals, posts.decisions) == (2, 3, 1)
    assert qs.classes["global_topics@2"].pending == 0
    assert [e.queue for e in qs.stuck.values()] == ["topic_t1"]

    # the empty internal state is deleted once a later event of its partition comes after
    # the grace period; the busy key stays
    clock.now += 61.0
    other = post(7).model_copy(update={"topic_id": "t5"})
    await put(qs, names.decisions, [(b"t5", decision(other), 2)])
    assert "global_topics:t9" not in qs.keys
    assert qs.keys["topic_t5"].state.pending == 0  # remembered, empty (grace starts now)
    assert qs.keys["topic_t1"].state.pending == 2

    qs.dirty.clear()
    qs.rebuild()
    assert qs.dirty == {"topic_t1", "topic_t5"}
    assert set(qs.stuck) == {"topic_t1"}


async def test_inputs_are_re_read_once_a_moment_after_each_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    qs = make_app(tmp_path, clock)
    rereads: list[float] = []
    published: list[float] = []

    async def reread() -> None:
        rereads.append(clock.now)

    async def publish(now: float) -> int:
        published.append(now)
        return 0

    monkeypatch.setattr(qs, "ready", lambda: True)
    monkeypatch.setattr(qs, "reread_inputs", reread)
    monkeypatch.setattr(qs, "publish", publish)
    await qs._tick()  # the first tick after a recovery rebuilds, and schedules the re-read
    assert (qs.needs_rebuild, rereads) == (False, [])
    clock.now += REREAD_AFTER_S / 2
    await qs._tick()
    assert rereads == []
    clock.now += REREAD_AFTER_S
    await qs._tick()
    await qs._tick()
    assert rereads == [clock.now]  # once
    qs.needs_rebuild = True  # the next rebalance: once more
    await qs._tick()
    clock.now += REREAD_AFTER_S
    await qs._tick()
    assert len(rereads) == 2
    assert len(published) == 6  # the timer still publishes on every tick
