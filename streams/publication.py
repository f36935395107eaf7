"""What publishing means, without Kafka: deliveries, errors, options, and validation.

Pure values and functions used by :mod:`streams.publisher` (the SDK's front ends) and
:mod:`streams.producer_engine` (its librdkafka shell). ``prepare`` validates one input with
the contract's models and derives its topic, key and value; it raises ``ContractError``
naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias, overload

import pydantic_core

from schemas.codec import decode_submission, encode
from schemas.errors import WHOLE_RECORD, ContractError, ErrorType
from schemas.kafka_config import ConfigValue
from schemas.size_bounds import max_encoded_bytes, within_bound
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


_new_tuple = tuple.__new__
"""Builds a NamedTuple from a tuple: a NamedTuple's own ``__new__`` is a Python-level lambda,
2.3x slower, and a batch builds one Outgoing and one Delivery per record."""


class Delivery(NamedTuple):
    """Where an acknowledged record now lives (a tuple: cheap to build per record)."""

    topic: str
    partition: int
    offset: int
    key: str
    submission_id: str


class Deliveries(Sequence[Delivery]):
    """A batch's deliveries, in input order: an immutable sequence of :class:`Delivery`.

    Kept as columns (five lists) and each Delivery built when it is read: a batch of 50,000
    as a list of tuples is 50,000 objects the garbage collector tracks and traverses in every
    full collection, a large share of ``publish_many``'s time (seen while profiling).
    Indexing, slicing (another ``Deliveries``), iteration, ``len`` and equality with any
    sequence of Delivery work as for a list.
    """

    __slots__ = ("_ids", "_keys", "_offsets", "_partitions", "_topics")

    def __init__(
        self,
        topics: Sequence[str],
        partitions: Sequence[int],
        offsets: Sequence[int],
        keys: Sequence[str],
        submission_ids: Sequence[str],
    ) -> None:
        if not len(topics) == len(partitions) == len(offsets) == len(keys) == len(submission_ids):
            raise ValueError("Deliveries: the columns differ in length")
        self._topics = topics
        self._partitions = partitions
        self._offsets = offsets
        self._keys = keys
        self._ids = submission_ids

    def __len__(self) -> int:
        return len(self._topics)

    @overload
    def __getitem__(self, index: int) -> Delivery: ...
    @overload
    def __getitem__(self, index: slice) -> Deliveries: ...
    def __getitem__(self, index: int | slice) -> Delivery | Deliveries:
        if isinstance(index, slice):
            return Deliveries(
                self._topics[index],
                self._partitions[index],
                self._offsets[index],
                self._keys[index],
                self._ids[index],
            )
        return Delivery(
            self._topics[index],
            self._partitions[index],
            self._offsets[index],
            self._keys[index],
            self._ids[index],
        )

    def __iter__(self) -> Iterator[Delivery]:
        columns = (self._topics, self._partitions, self._offsets, self._keys, self._ids)
        for row in zip(*columns, strict=True):
            yield _new_tuple(Delivery, row)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # equal to lists, so unhashable like them

    def __repr__(self) -> str:
        return f"Deliveries({list(self)!r})"


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

    def for_record(self, topic: str, key: str | None, submission_id: str | None) -> PublishError:
        """The same failure, naming another record (one never tried because of this one)."""
        return PublishError(
            topic,
            key,
            self.code,
            self.reason,
            retriable=self.retriable,
            fatal=self.fatal,
            submission_id=submission_id,
        )


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
            raise _oversize(len(value), max_bytes)
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
    return _new_tuple(Outgoing, (topics[model.kind], model.key, value, model.id))


def _oversize(size: int, max_bytes: int) -> ContractError:
    return ContractError(WHOLE_RECORD, f"{size} bytes, more than {max_bytes}", ErrorType.OVERSIZE)


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """Validated records as columns, in input order.

    Columns rather than a list of :class:`Outgoing`: their items are str and bytes, which the
    garbage collector does not track, while a tuple per record of a large batch is traversed
    by every full collection until the batch is done (a large share of ``publish_many``'s
    time, seen while profiling).

    ``values[i]`` is ``None`` when record ``i`` is a model whose size needs no check
    (``schemas.size_bounds``): ``models[i]`` is then encoded as it is sent (:meth:`value`), so
    that encoding overlaps with librdkafka's sending instead of preceding all of it.
    """

    topics: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    models: list[SubmissionModel | None] = field(default_factory=list)
    submission_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.topics)

    def value(self, index: int) -> bytes:
        """Record ``index``'s bytes (encoding a deferred model: the bytes ``prepare`` gives)."""
        value = self.values[index]
        if value is None:
            model = self.models[index]
            assert model is not None, "a record with neither bytes nor a model"
            return encode(model)
        return value

    def outgoing(self, index: int) -> Outgoing:
        """Record ``index`` as an Outgoing (for error reports; the hot path builds none)."""
        return Outgoing(
            self.topics[index], self.keys[index], self.value(index), self.submission_ids[index]
        )


_MODEL_TYPES = frozenset(_MODELS)


def prepare_many(
    submissions: Iterable[SubmissionInput], topics: Mapping[str, str], max_bytes: int
) -> PreparedBatch:
    """:func:`prepare` every input, in order; the first invalid one raises its ContractError.

    The same checks and the same bytes as ``prepare`` (a test pins both). Instances of the
    contract's own model classes take ``prepare``'s model branch inlined (a function call
    and a tuple less per record); and when their class cannot encode to more than
    ``max_bytes`` (``schemas.size_bounds``), they are not encoded here at all but as they are
    sent (``PreparedBatch.value``), which spares a batch the 11-29 % that encoding everything
    before sending anything costs.
    """
    batch = PreparedBatch()
    add_topic, add_key = batch.topics.append, batch.keys.append
    add_value, add_model = batch.values.append, batch.models.append
    add_id = batch.submission_ids.append
    unchecked = {c for c in _MODEL_TYPES if (max_encoded_bytes(c) or max_bytes + 1) <= max_bytes}
    for submission in submissions:
        kind = type(submission)
        if kind in _MODEL_TYPES:
            model: SubmissionModel = submission  # type: ignore[assignment]
            if kind in unchecked and within_bound(model):
                add_value(None)
                add_model(model)
            else:
                value = encode(model)
                if len(value) > max_bytes:
                    raise _oversize(len(value), max_bytes)
                add_value(value)
                add_model(None)
            add_topic(topics[model.kind])
            add_key(model.key)
            add_id(model.id)
        else:
            topic, key, value, submission_id = prepare(submission, topics, max_bytes)
            add_topic(topic)
            add_key(key)
            add_id(submission_id)
            add_value(value)
            add_model(None)
    return batch
