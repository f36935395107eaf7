"""Partition keys and queue names, for all ids the contract allows (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.control import assignment_key, heartbeat_key, parse_control_key
from schemas.queues import (
    QueueClass,
    conversation_queue_name,
    key_queue_class,
    pair_key,
    stuck_queue_name,
    topic_queue_name,
)
from schemas.submissions import PostSubmission, PrivateMessageSubmission

AT = datetime(2024, 5, 1, tzinfo=UTC)
ID_ALPHABET = "ABCXYZabcxyz0189_.-"
"""Every character class the contract allows in user and topic ids, kept small so collisions
between generated ids (the interesting case) are frequent."""

ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=64)
quick = settings(database=None, max_examples=200, deadline=None)


@quick
@given(ids, ids)
def test_pair_key_is_symmetric(a: str, b: str) -> None:
    assert pair_key(a, b) == pair_key(b, a)


@quick
@given(ids, ids, ids, ids)
def test_distinct_unordered_pairs_never_share_a_key(a: str, b: str, c: str, d: str) -> None:
    if {a, b} != {c, d}:
        assert pair_key(a, b) != pair_key(c, d)
    else:
        assert pair_key(a, b) == pair_key(c, d)


@quick
@given(ids, ids)
def test_pair_key_splits_back_into_the_sorted_ids(a: str, b: str) -> None:
    first, second = pair_key(a, b).split(":")
    assert (first, second) == tuple(sorted((a, b)))


@quick
@given(ids, ids)
def test_private_message_key_and_queue_do_not_depend_on_direction(a: str, b: str) -> None:
    if a == b:
        return
    there = PrivateMessageSubmission(
        id="m", submitted_at=AT, sender_id=a, recipient_id=b, body="hi"
    )
    back = PrivateMessageSubmission(id="m", submitted_at=AT, sender_id=b, recipient_id=a, body="hi")
    assert there.key == back.key == pair_key(a, b)
    assert there.queue_name == back.queue_name == conversation_queue_name(pair_key(a, b))
    assert key_queue_class(there.queue_name) is QueueClass.PRIVATE_MESSAGES


@quick
@given(ids, ids)
def test_post_queue_names_are_injective_and_classed(t1: str, t2: str) -> None:
    assert (topic_queue_name(t1) == topic_queue_name(t2)) == (t1 == t2)
    post = PostSubmission(id="p", submitted_at=AT, topic_id=t1, author_id="u", body="b")
    assert (post.key, post.queue_name) == (t1, topic_queue_name(t1))
    assert key_queue_class(post.queue_name) is QueueClass.TOPIC_POSTS


@quick
@given(ids, ids, ids)
def test_topic_and_conversation_queues_never_collide(topic_id: str, a: str, b: str) -> None:
    assert topic_queue_name(topic_id) != conversation_queue_name(pair_key(a, b))


@quick
@given(ids)
def test_per_key_queues_never_collide_with_pool_controller_or_stuck_names(any_id: str) -> None:
    reserved = {"workers", "controller", *(stuck_queue_name(c) for c in QueueClass)}
    reserved |= {QueueClass.GLOBAL_TOPICS.value, QueueClass.PRIVATE_MESSAGES.value}
    assert topic_queue_name(any_id) not in reserved
    assert conversation_queue_name(pair_key(any_id, "z")) not in reserved


@quick
@given(ids)
def test_control_keys_parse_back_and_never_collide(worker_id: str) -> None:
    assert parse_control_key(assignment_key(worker_id)) == ("assignment", worker_id)
    assert parse_control_key(heartbeat_key(worker_id)) == ("heartbeat", worker_id)
    assert assignment_key(worker_id) != heartbeat_key(worker_id)


def test_foreign_control_keys_are_not_ours() -> None:
    assert parse_control_key("w1") is None
