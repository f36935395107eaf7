"""Control and visualization records: keys, consistency checks, and topic names/specs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.control import (
    WorkerAssignment,
    WorkerHeartbeat,
    WorkerState,
    control_key,
)
from schemas.queues import QueueClass
from schemas.submissions import SubmissionKind
from schemas.topics import TopicNames, default_topic_specs
from schemas.visualization import (
    BreakerState,
    ClassQueueView,
    ControllerDecisionView,
    KeyQueueView,
    StuckKey,
    StuckKeysView,
    VisualizationRecord,
    WorkerEntry,
    WorkerMove,
    WorkerPoolView,
    visualization_key,
)

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_control_messages_are_keyed_per_worker_and_type() -> None:
    heartbeat = WorkerHeartbeat(
        worker_id="w1",
        state=WorkerState.STARTING,
        in_flight=0,
        processed=0,
        sent_at=AT,
        pid=1,
        host="h",
    )
    assignment = WorkerAssignment(
        worker_id="w1",
        queue_class=QueueClass.GLOBAL_TOPICS,
        generation=1,
        reason="min_workers",
        assigned_at=AT,
        controller_id="c1",
    )
    assert (control_key(heartbeat), control_key(assignment)) == ("hb:w1", "assign:w1")


def test_every_visualization_record_is_keyed_by_its_queue() -> None:
    records: list[VisualizationRecord] = [
        ClassQueueView(
            queue=QueueClass.TOPIC_POSTS,
            length=3,
            oldest_wait_seconds=2.5,
            avg_wait_seconds=1,
            score=-0.5,
            workers_assigned=1,
            breaker=BreakerState.RECOVERING,
            in_rate=0.2,
            out_rate=0.1,
            min_workers=0,
            max_workers=1,
            updated_at=AT,
        ),
        KeyQueueView(
            queue="topic_t1", queue_class=QueueClass.TOPIC_POSTS, pending=0, updated_at=AT
        ),
        WorkerPoolView(
            workers=(
                WorkerEntry(
                    worker_id="w1",
                    queue_class=None,
                    state=WorkerState.IDLE,
                    in_flight=0,
                    heartbeat_age_seconds=0.4,
                    alive=True,
                ),
            ),
            updated_at=AT,
        ),
        ControllerDecisionView(
            controller_id="c1",
            leader=True,
            decided_at=AT,
            allocation={QueueClass.GLOBAL_TOPICS: ("w1",)},
            moves=(
                WorkerMove(
                    worker_id="w1",
                    from_class=None,
                    to_class=QueueClass.GLOBAL_TOPICS,
                    reason="below minimum",
                    rule="min_workers",
                ),
            ),
            updated_at=AT,
        ),
        StuckKeysView(
            queue="stuck_private_messages",
            queue_class=QueueClass.PRIVATE_MESSAGES,
            keys=(StuckKey(queue="users_a:b", pending=4, oldest_pending_at=AT),),
            updated_at=AT,
        ),
    ]
    assert [visualization_key(record) for record in records] == [
        "topic_posts",
        "topic_t1",
        "workers",
        "controller",
        "stuck_private_messages",
    ]


@pytest.mark.parametrize(
    ("queue", "queue_class", "field"),
    [
        ("users_a:b", QueueClass.TOPIC_POSTS, "queue_class"),
        ("topic_t1", QueueClass.GLOBAL_TOPICS, "queue_class"),
        ("global_topics", QueueClass.GLOBAL_TOPICS, "queue"),
        ("users_a", QueueClass.PRIVATE_MESSAGES, "queue"),
    ],
)
def test_key_queue_name_and_class_must_agree(
    queue: str, queue_class: QueueClass, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        KeyQueueView(queue=queue, queue_class=queue_class, pending=1, updated_at=AT)
    assert caught.value.errors()[0]["loc"] == (field,)


def test_stuck_view_name_must_match_its_class() -> None:
    with pytest.raises(ValidationError) as caught:
        StuckKeysView(
            queue="stuck_topic_posts", queue_class=QueueClass.PRIVATE_MESSAGES, updated_at=AT
        )
    assert caught.value.errors()[0]["loc"] == ("queue_class",)


def test_rates_and_waits_are_finite_and_non_negative() -> None:
    with pytest.raises(ValidationError) as caught:
        ClassQueueView.model_validate_json(
            '{"queue": "global_topics", "length": 0, "oldest_wait_seconds": -1,'
            ' "avg_wait_seconds": 0, "score": 0, "workers_assigned": 0, "breaker": "open",'
            ' "in_rate": 0, "out_rate": 0, "min_workers": 1, "max_workers": 1,'
            ' "updated_at": "2024-05-01T12:00:00Z"}'
        )
    assert [issue["loc"] for issue in caught.value.errors()] == [("oldest_wait_seconds",)]


def test_topic_names_follow_the_prefix() -> None:
    default = TopicNames.from_prefix()
    assert default.all() == (
        "forum.submissions.topics",
        "forum.submissions.posts",
        "forum.submissions.private_messages",
        "forum.moderation.decisions",
        "forum.moderation.dlq",
        "forum.queues.visualization",
        "forum.orchestrator.control",
    )
    acme = TopicNames.from_prefix("acme.")
    assert acme.submission_topic(SubmissionKind.POST) == "acme.submissions.posts"
    assert acme.submission_topic("private_message") == "acme.submissions.private_messages"
    assert acme.kind_of_topic("acme.submissions.topics") is SubmissionKind.TOPIC
    assert acme.kind_of_topic("forum.submissions.topics") is None
    assert TopicNames.from_prefix("").decisions == "moderation.decisions"


def test_bad_prefix_is_named() -> None:
    with pytest.raises(ValidationError) as caught:
        TopicNames.from_prefix("bad prefix/")
    assert caught.value.errors()[0]["loc"] == ("prefix",)


def test_default_specs_compact_state_and_delete_data() -> None:
    names = TopicNames.from_prefix()
    specs = {spec.name: spec for spec in default_topic_specs(names, partitions=12)}
    assert tuple(specs) == names.all()
    for state in (names.visualization, names.control):
        assert specs[state].config["cleanup.policy"] == "compact"
        assert specs[state].partitions == 1
    for data in (*names.submission_topics(), names.decisions, names.dlq):
        assert specs[data].config["cleanup.policy"] == "delete"
        assert specs[data].partitions == 12
    assert all(spec.keyed and spec.replication_factor == 1 for spec in specs.values())
    replicated = default_topic_specs(names, replication_factor=3)
    assert {spec.config["min.insync.replicas"] for spec in replicated} == {"2"}
