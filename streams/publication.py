"""What publishing means, without Kafka: deliveries, errors, options, and validation.

Pure values and functions used by :mod:`streams.publisher` (the SDK's front ends) and
:mod:`streams.producer_engine` (its librdkafka shell). ``prepare`` validates one input with
the contract's models and derives its topic, key and value; it raises ``ContractError``
naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

import pydantic_core

from schemas.codec import decode_submission, encode
from schemas.errors import WHOLE_RECORD, ContractError, ErrorType
from schemas.kafka_config import ConfigValue
from schemas.submissions import (
    PostSubmission,
    PrivateMessageSubmission,
    SubmissionKind,
    SubmissionModel,
    TopicSubmission,
)
from schemas.topics import TopicNames

_MODELS = (TopicSubmission, PostSubmission, PrivateMessageSubmission)

SubmissionInput: TypeAlias = SubmissionModel | Mapping[str, Any] | bytes | str
"""What ``publish`` accepts: a model, a mapping of its fields, or its JSON text."""


# --- values and errors ------------------------------------------------------------------------


class Delivery(NamedTuple):
    """Where an acknowledged record now lives (a tuple: cheap to build per record)."""

    topic: str
    partition: int
    offset: int
    key: str
    submission_id: str


class PublishError(Exception):
    """A record was not (or may not have been) written.

    ``code`` is librdkafka's error name (``_MSG_TIMED_OUT``, ``_QUEUE_FULL``,
    ``_PURGE_QUEUE``, ``TOPIC_AUTHORIZATION_FAILED``, ...); ``retriable`` says whether sending
    the same submission again may succeed (its ``id`` makes a retry idempotent downstream).
    """

    def __init__(
        self,
        topic: str,
        key: str | None,
        code: str,
        reason: str,
        *,
        retriable: bool = False,
        fatal: bool = False,
        submission_id: str | None = None,
    ) -> None:
        where = f"{topic} (key {key!r})" if key is not None else topic
        super().__init__(f"publish to {where} failed: {code}: {reason}")
        self.topic = topic
        self.key = key
        self.code = code
        self.reason = reason
        self.retriable = retriable
        self.fatal = fatal
        self.submission_id = submission_id


class PublisherClosedError(PublishError):
    """``publish`` after ``close`` (or before ``start``)."""

    def __init__(self, topic: str = "", key: str | None = None) -> None:
        super().__init__(topic or "?", key, "_STATE", "the publisher is not open")


class BatchPublishError(PublishError):
    """Some records of a ``publish_many`` batch failed; the others were delivered.

    ``results`` holds, in input order, a :class:`Delivery` or a :class:`PublishError` per
    record; the exception's own attributes are those of the first failure.
    """

    def __init__(self, results: tuple[Delivery | PublishError, ...]) -> None:
        self.results = results
        self.errors = tuple(r for r in results if isinstance(r, PublishError))
        first = self.errors[0]
        super().__init__(
            first.topic,
            first.key,
            first.code,
            f"{first.reason} ({len(self.errors)} of {len(results)} records failed)",
            retriable=all(e.retriable for e in self.errors),
            fatal=any(e.fatal for e in self.errors),
            submission_id=first.submission_id,
        )


@dataclass(frozen=True, slots=True)
class PublisherOptions:
    """Buffering and timeouts. Durations in seconds, sizes as named."""

    delivery_timeout_s: float = 30.0
    """How long librdkafka keeps trying to deliver one record (``message.timeout.ms``)."""
    enqueue_timeout_s: float = 5.0
    """How long a publish waits for room when the local buffer is full."""
    max_buffered_messages: int = 100_000
    """Records waiting in the local buffer, at most (``queue.buffering.max.messages``)."""
    max_buffered_kbytes: int = 65_536
    """KiB waiting in the local buffer, at most (``queue.buffering.max.kbytes``)."""
    close_timeout_s: float | None = None
    """How long ``close`` flushes before purging; default ``delivery_timeout_s`` + 5."""
    client_id: str = "modq-publisher"
    extra: Mapping[str, ConfigValue] = field(default_factory=dict)
    """Further librdkafka settings (cannot weaken idempotence, acks or the partitioner)."""

    def __post_init__(self) -> None:
        for name in ("delivery_timeout_s", "enqueue_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive")
        if self.max_buffered_messages < 1 or self.max_buffered_kbytes < 1:
            raise ValueError("max_buffered_messages/max_buffered_kbytes: must be at least 1")
        protected = {"enable.idempotence", "acks", "partitioner"} & set(self.extra)
        if protected:
            raise ValueError(f"extra: {sorted(protected)} are fixed by the contract")

    @property
    def flush_timeout_s(self) -> float:
        """How long ``close`` waits for outstanding reports."""
        if self.close_timeout_s is not None:
            return self.close_timeout_s
        return self.delivery_timeout_s + 5.0


# --- validation (pure) -----------------------------------------------------------------------


class Outgoing(NamedTuple):
    """A validated record, ready for the wire."""

    topic: str
    key: str
    value: bytes
    submission_id: str


def topics_by_kind(names: TopicNames) -> dict[str, str]:
    """The submission topic of each ``kind`` value (a plain dict: looked up per record)."""
    return {kind.value: names.submission_topic(kind) for kind in SubmissionKind}


def prepare(submission: SubmissionInput, topics: Mapping[str, str], max_bytes: int) -> Outgoing:
    """Validate ``submission`` and derive its topic (from ``topics_by_kind``), key and value.

    Models are valid by construction (they are frozen and validated by pydantic), so only
    their size is checked; mappings and JSON go through ``decode_submission``, exactly what a
    worker will run on the bytes. Raises ``ContractError`` naming the field.
    """
    if isinstance(submission, _MODELS):
        model: SubmissionModel = submission
        value = encode(model)
        if len(value) > max_bytes:
            raise ContractError(
                WHOLE_RECORD, f"{len(value)} bytes, more than {max_bytes}", ErrorType.OVERSIZE
            )
    else:
        if isinstance(submission, str):
            raw = submission.encode("utf-8")
        elif isinstance(submission, bytes):
            raw = submission
        elif isinstance(submission, Mapping):
            try:
                raw = pydantic_core.to_json(dict(submission))
            except pydantic_core.PydanticSerializationError:
                raise ContractError(
                    WHOLE_RECORD, "not JSON-serialisable", ErrorType.INVALID_JSON
                ) from None
        else:
            raise TypeError(f"cannot publish a {type(submission).__name__}")
        model = decode_submission(raw, max_bytes=max_bytes)
        value = encode(model)
    return Outgoing(topics[model.kind], model.key, value, model.id)
