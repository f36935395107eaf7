"""Backpressure: the rule that keeps a session's held records within its bound."""

from __future__ import annotations

import pytest

from schemas.queues import QueueClass
from schemas.topics import TopicNames
from streams.flow import Backpressure, FlowAction, class_topic, default_max_buffered, group_id

A, B, C = ("t", 0), ("t", 1), ("t", 2)


def test_consume_batches_never_overshoot_the_bound() -> None:
    flow = Backpressure(limit=100, batch=500)
    assert flow.batch_size(0) == 100
    assert flow.batch_size(60) == 40
    assert flow.batch_size(100) == 1  # still poll (rebalance callbacks), one record at most
    assert Backpressure(limit=10_000, batch=500).batch_size(0) == 500


def test_pause_at_the_bound_and_resume_at_half() -> None:
    flow = Backpressure(limit=100)
    assert flow.update(99) is FlowAction.NONE
    assert flow.update(100) is FlowAction.PAUSE
    assert flow.to_pause([A, B]) == [A, B]
    assert (flow.update(80), flow.paused) == (FlowAction.NONE, True)  # hysteresis
    assert (flow.update(50), flow.paused) == (FlowAction.RESUME, False)
    assert flow.to_pause([A, B]) == []


def test_partitions_assigned_while_paused_are_paused_too() -> None:
    flow = Backpressure(limit=10)
    flow.update(10)
    assert flow.to_pause([A]) == [A]
    assert flow.to_pause([A, B]) == [B]
    assert flow.to_pause([A, B]) == []
    flow.forget([A])  # revoked; if it comes back the client has it unpaused
    assert flow.to_pause([A, B]) == [A]


def test_a_simulated_backlog_stays_within_the_bound() -> None:
    flow = Backpressure(limit=100, batch=30)
    held, paused, peak = 0, False, 0
    for step in range(200):
        action = flow.update(held)
        paused = action is FlowAction.PAUSE or (paused and action is not FlowAction.RESUME)
        if not paused:
            held += flow.batch_size(held)  # the broker always has more
        peak = max(peak, held)
        if step % 3 == 0:
            held = max(0, held - 25)  # a slow worker commits some
    assert peak == 100


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        Backpressure(limit=0)


def test_names() -> None:
    names = TopicNames.from_prefix("x.")
    assert group_id(names, QueueClass.TOPIC_POSTS) == "x.modq.topic_posts"
    assert class_topic(names, QueueClass.PRIVATE_MESSAGES) == names.submissions_private_messages
    assert default_max_buffered(1) == 1000
    assert default_max_buffered(1000) == 8000
