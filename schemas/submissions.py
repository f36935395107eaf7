"""The three submissions forum back ends publish, as one union discriminated on ``kind``.

Contract (``CONTRACT.md``, "Submission JSON"): every record is one JSON object with ``id``
(the idempotency key), ``kind`` and ``submitted_at`` plus the fields of its kind. Unknown
fields are kept (``model_extra``, and re-emitted by ``schemas.codec.encode``) but ignored, so
a newer producer never breaks an older worker.

Each model derives, in one place, what the pipeline routes by:

========================  ======================  ====================  ==================
kind                      ``key`` (partition)     ``queue_name``        ``queue_class``
========================  ======================  ====================  ==================
``topic``                 ``topic_id``            ``global_topics``     global_topics
``post``                  ``topic_id``            ``topic_{topic_id}``  topic_posts
``private_message``       ``"{a}:{b}"`` sorted    ``users_{a}:{b}``     private_messages
========================  ======================  ====================  ==================
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, TypeAlias

from pydantic import ConfigDict, Field, Strict, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.fields import EntityId, SubmissionId, Timestamp, WireModel, require_in_schema
from schemas.queues import QueueClass, conversation_queue_name, pair_key, topic_queue_name

MAX_BODY_LENGTH = 65_536
"""Longest body of any submission, in characters (code points)."""

MAX_TITLE_LENGTH = 300
"""Longest topic title, in characters."""

Body = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_BODY_LENGTH)]
"""A non-empty body of at most 65,536 characters."""

OptionalBody = Annotated[str, Strict(), StringConstraints(max_length=MAX_BODY_LENGTH)]
"""A body of at most 65,536 characters, possibly empty (a topic's opening text)."""

Title = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_TITLE_LENGTH)]
"""A topic title of 1–300 characters."""


class SubmissionKind(StrEnum):
    """The ``kind`` of a submission; also names its source topic (see ``schemas.topics``)."""

    TOPIC = "topic"
    POST = "post"
    PRIVATE_MESSAGE = "private_message"


QUEUE_CLASS_BY_KIND: dict[SubmissionKind, QueueClass] = {
    SubmissionKind.TOPIC: QueueClass.GLOBAL_TOPICS,
    SubmissionKind.POST: QueueClass.TOPIC_POSTS,
    SubmissionKind.PRIVATE_MESSAGE: QueueClass.PRIVATE_MESSAGES,
}
"""Which queue class moderates each kind."""


class _SubmissionBase(WireModel):
    """Fields every submission has."""

    model_config = ConfigDict(extra="allow")

    kind: str
    """Which submission this is; each model narrows it to its one value."""
    id: SubmissionId
    """Unique per submission: the idempotency key (1–64 chars of ``[A-Za-z0-9_-]``)."""
    submitted_at: Timestamp
    """When the forum accepted the submission (RFC 3339 with a UTC offset)."""
    seq: Annotated[int, Strict(), Field(ge=0)] | None = None
    """Optional per-key sequence number (load generators and order checkers use it)."""


class TopicSubmission(_SubmissionBase):
    """A new forum topic, moderated in the shared ``global_topics`` queue."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("kind"))

    kind: Literal["topic"] = "topic"
    topic_id: EntityId
    """The new topic's id (1–64 chars of ``[A-Za-z0-9_.-]``)."""
    author_id: EntityId
    """The user who opened the topic."""
    title: Title
    """1–300 characters."""
    body: OptionalBody
    """The opening text, at most 65,536 characters (may be empty)."""

    @property
    def key(self) -> str:
        """Partition key: the new topic's id."""
        return self.topic_id

    @property
    def queue_name(self) -> str:
        """Queue the submission waits in: the shared ``global_topics``."""
        return QueueClass.GLOBAL_TOPICS.value

    @property
    def queue_class(self) -> QueueClass:
        """``global_topics``."""
        return QueueClass.GLOBAL_TOPICS


class PostSubmission(_SubmissionBase):
    """A reply in a forum topic, moderated in strict order per topic."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("kind"))

    kind: Literal["post"] = "post"
    topic_id: EntityId
    """The topic the post replies in."""
    author_id: EntityId
    """The user who wrote the post."""
    body: Body
    """1–65,536 characters."""

    @property
    def key(self) -> str:
        """Partition key: the topic's id, so a topic's posts stay in order."""
        return self.topic_id

    @property
    def queue_name(self) -> str:
        """Per-key queue: ``topic_{topic_id}``."""
        return topic_queue_name(self.topic_id)

    @property
    def queue_class(self) -> QueueClass:
        """``topic_posts``."""
        return QueueClass.TOPIC_POSTS


class PrivateMessageSubmission(_SubmissionBase):
    """A private message, moderated in strict order per conversation."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("kind"))

    kind: Literal["private_message"] = "private_message"
    sender_id: EntityId
    """The user who sent the message."""
    recipient_id: EntityId
    """The user it is addressed to; never the sender."""
    body: Body
    """1–65,536 characters. Never leaves the data plane."""

    @field_validator("recipient_id")
    @classmethod
    def _differs_from_sender(cls, value: str, info: ValidationInfo) -> str:
        """Reject a message to oneself, naming ``recipient_id``."""
        if info.data.get("sender_id") == value:
            raise PydanticCustomError("recipient_is_sender", "must differ from sender_id")
        return value

    @property
    def key(self) -> str:
        """Partition key: the two user ids sorted as strings, ``"{a}:{b}"``."""
        return pair_key(self.sender_id, self.recipient_id)

    @property
    def queue_name(self) -> str:
        """Per-key queue: ``users_{a}:{b}``."""
        return conversation_queue_name(self.key)

    @property
    def queue_class(self) -> QueueClass:
        """``private_messages``."""
        return QueueClass.PRIVATE_MESSAGES


Submission: TypeAlias = Annotated[
    TopicSubmission | PostSubmission | PrivateMessageSubmission,
    Field(discriminator="kind"),
]
"""Any submission; pydantic picks the model by ``kind``."""

SubmissionModel: TypeAlias = TopicSubmission | PostSubmission | PrivateMessageSubmission
"""The same union without the discriminator, for ``isinstance`` and ``type[...]``."""

SUBMISSION_MODELS: dict[SubmissionKind, type[SubmissionModel]] = {
    SubmissionKind.TOPIC: TopicSubmission,
    SubmissionKind.POST: PostSubmission,
    SubmissionKind.PRIVATE_MESSAGE: PrivateMessageSubmission,
}
"""The model of each kind."""


def submission_kind(submission: Submission) -> SubmissionKind:
    """The submission's ``kind`` as the enum."""
    return SubmissionKind(submission.kind)
