"""Backpressure: the rule that keeps a session's held records within its bound."""

from __future__ import annotations

import pytest

from schemas.queues import QueueClass
from schemas.topics import TopicNames
from streams.flow import Backpressure, class_topic, default_max_buffered, group_id


def test_consume_batches_never_overshoot_the_bound() -> None:
    flow = Backpressure(limit=100, batch=500)
    assert flow.batch_size(0) == 100
    assert flow.batch_size(60) == 40
    assert flow.batch_size(100) == 0  # full: do not consume at all
    assert Backpressure(limit=10_000, batch=500).batch_size(0) == 500


def test_hold_at_the_bound_counts_each_time_it_is_reached() -> None:
    flow = Backpressure(limit=100)
    assert flow.update(99) is False
    assert flow.update(100) is True
    assert flow.update(120) is True  # still the same hold
    assert flow.holds == 1
    assert flow.update(40) is False
    assert flow.update(100) is True
    assert flow.holds == 2


def test_a_simulated_backlog_stays_within_the_bound() -> None:
    flow = Backpressure(limit=100, batch=30)
    held, peak = 0, 0
    for step in range(200):
        if not flow.update(held):
            held += flow.batch_size(held)  # the broker always has more
        peak = max(peak, held)
        if step % 3 == 0:
            held = max(0, held - 25)  # a slow worker commits some
    assert peak == 100
    assert flow.holds > 1


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        Backpressure(limit=0)


def test_names() -> None:
    names = TopicNames.from_prefix("x.")
    assert group_id(names, QueueClass.TOPIC_POSTS) == "x.modq.topic_posts"
    assert class_topic(names, QueueClass.PRIVATE_MESSAGES) == names.submissions_private_messages
    assert default_max_buffered(1) == 5000
    assert default_max_buffered(64) == 5000  # the default settings: 5 MiB-ish
    assert default_max_buffered(256) == 16_384  # 64 per key in flight
    assert default_max_buffered(1000) == 32_768  # capped
    assert default_max_buffered(100_000) == 1_600_000  # never under 16 per key
