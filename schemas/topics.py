"""Kafka topic names and the specs ``modq topics`` creates them with.

Default names (``CONTRACT.md``, "Topics") start with ``forum.``; ``MODQ_TOPIC_PREFIX``
replaces that leading ``forum.`` (``TopicNames.from_prefix("acme.")`` gives
``acme.submissions.posts``). An empty prefix is allowed.

Partitions (``default_topic_specs``):

- submissions, decisions and the DLQ get ``partitions`` each (default 6) so that keys spread
  over workers; decisions and the DLQ are keyed like the submissions, so with equal counts a
  key's submission, decision and dead letter share a partition number.
- ``visualization`` and ``control`` get **one** partition. Both are small, compacted state
  logs (a record per queue or per worker, a few per second), and one partition gives every
  reader a single ordered log: a dashboard reads it from the beginning to the end offset and
  has the full current state, and a worker sees assignment generations in the order the
  controller wrote them, with no consumer group or partition assignment to coordinate.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, StringConstraints

from schemas.fields import KafkaTopic, WireModel
from schemas.submissions import SubmissionKind

DEFAULT_PREFIX = "forum."
"""The prefix of the contract's default topic names."""

_DAY_MS = 24 * 60 * 60 * 1000

TopicPrefix = Annotated[
    str, Strict(), StringConstraints(max_length=200, pattern=r"^[A-Za-z0-9._-]*$")
]
"""A topic-name prefix: Kafka topic characters only, possibly empty."""


class TopicNames(WireModel):
    """The seven topic names of one deployment. Build with ``from_prefix``."""

    prefix: TopicPrefix = DEFAULT_PREFIX
    submissions_topics: KafkaTopic
    submissions_posts: KafkaTopic
    submissions_private_messages: KafkaTopic
    decisions: KafkaTopic
    dlq: KafkaTopic
    visualization: KafkaTopic
    control: KafkaTopic

    @classmethod
    def from_prefix(cls, prefix: str = DEFAULT_PREFIX) -> TopicNames:
        """The names with ``prefix`` in place of the leading ``forum.``.

        Raises ``pydantic.ValidationError`` (naming ``prefix``) for characters Kafka does not
        allow in topic names.
        """
        return cls.model_validate(
            {
                "prefix": prefix,
                "submissions_topics": f"{prefix}submissions.topics",
                "submissions_posts": f"{prefix}submissions.posts",
                "submissions_private_messages": f"{prefix}submissions.private_messages",
                "decisions": f"{prefix}moderation.decisions",
                "dlq": f"{prefix}moderation.dlq",
                "visualization": f"{prefix}queues.visualization",
                "control": f"{prefix}orchestrator.control",
            }
        )

    def submission_topic(self, kind: SubmissionKind | str) -> str:
        """The topic submissions of ``kind`` are published to."""
        return {
            SubmissionKind.TOPIC: self.submissions_topics,
            SubmissionKind.POST: self.submissions_posts,
            SubmissionKind.PRIVATE_MESSAGE: self.submissions_private_messages,
        }[SubmissionKind(kind)]

    def submission_topics(self) -> tuple[str, str, str]:
        """The three submission topics: topics, posts, private messages."""
        return (
            self.submissions_topics,
            self.submissions_posts,
            self.submissions_private_messages,
        )

    def kind_of_topic(self, topic: str) -> SubmissionKind | None:
        """The submission kind ``topic`` carries; ``None`` if it is not a submission topic."""
        for kind in SubmissionKind:
            if self.submission_topic(kind) == topic:
                return kind
        return None

    def all(self) -> tuple[str, ...]:
        """All seven names, submissions first."""
        return (
            *self.submission_topics(),
            self.decisions,
            self.dlq,
            self.visualization,
            self.control,
        )


class TopicSpec(WireModel):
    """How to create one topic."""

    name: KafkaTopic
    partitions: Annotated[int, Strict(), Field(ge=1)]
    replication_factor: Annotated[int, Strict(), Field(ge=1)]
    config: dict[str, str] = Field(default_factory=dict)
    """Topic-level configs, as Kafka's admin API takes them."""
    keyed: bool = True
    """Whether every record has a key (all of modq's topics do)."""


def default_topic_specs(
    names: TopicNames, partitions: int = 6, replication_factor: int = 1
) -> tuple[TopicSpec, ...]:
    """Specs for all seven topics, in ``names.all()`` order; see the module docstring.

    Data topics delete by time (submissions and decisions after 7 days, dead letters after
    30 so someone can look). The two state topics compact, and keep tombstones a day so a
    dashboard that falls behind still sees a queue disappear. ``min.insync.replicas`` is 2
    when there are at least 3 replicas (``acks=all`` then survives one broker), else 1.
    """
    common = {"min.insync.replicas": "2" if replication_factor >= 3 else "1"}
    delete_week = {**common, "cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)}
    delete_month = {**common, "cleanup.policy": "delete", "retention.ms": str(30 * _DAY_MS)}
    compact = {
        **common,
        "cleanup.policy": "compact",
        "delete.retention.ms": str(_DAY_MS),
        "segment.ms": str(60 * 60 * 1000),
        "min.cleanable.dirty.ratio": "0.1",
    }
    plan = [
        (names.submissions_topics, partitions, delete_week),
        (names.submissions_posts, partitions, delete_week),
        (names.submissions_private_messages, partitions, delete_week),
        (names.decisions, partitions, delete_week),
        (names.dlq, partitions, delete_month),
        (names.visualization, 1, compact),
        (names.control, 1, compact),
    ]
    return tuple(
        TopicSpec(
            name=name,
            partitions=count,
            replication_factor=replication_factor,
            config=dict(config),
        )
        for name, count, config in plan
    )
