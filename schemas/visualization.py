"""Queue-state records on ``forum.queues.visualization`` (compacted, keyed by queue name).

Read from the beginning, the topic is the full current state (architecture invariant 5): one
record per key, the latest wins, and a tombstone (null value) removes a per-key queue that
emptied. Records are JSON objects told apart by ``type``; ``queue`` is the record key
(``visualization_key``):

=======================  ===================================  ==========================
``type``                 ``queue`` (the key)                  model
=======================  ===================================  ==========================
``class_queue``          ``global_topics`` … (a class)        ``ClassQueueView``
``key_queue``            ``topic_{id}`` / ``users_{a}:{b}``   ``KeyQueueView``
``worker_pool``          ``workers``                          ``WorkerPoolView``
``controller``           ``controller``                       ``ControllerDecisionView``
``stuck_keys``           ``stuck_{class}``                    ``StuckKeysView``
=======================  ===================================  ==========================

Records carry ids, counts, rates and times only: never a submission body (invariant 6).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, TypeAlias

from pydantic import (
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from schemas.control import WorkerState
from schemas.decisions import Verdict
from schemas.fields import (
    Count,
    EntityId,
    Label,
    Note,
    Seconds,
    Timestamp,
    WireModel,
    require_in_schema,
)
from schemas.queues import (
    CONTROLLER_QUEUE,
    KEY_QUEUE_PATTERN,
    WORKERS_QUEUE,
    QueueClass,
    key_queue_class,
    stuck_queue_name,
)

MAX_STUCK_KEYS = 50
"""Most keys one ``StuckKeysView`` lists."""

KeyQueueName = Annotated[str, Strict(), StringConstraints(pattern=KEY_QUEUE_PATTERN)]
"""``topic_{topic_id}`` or ``users_{a}:{b}``."""


class BreakerState(StrEnum):
    """A queue class's circuit breaker."""

    CLOSED = "closed"
    """Normal: the class gets workers by its score."""
    OPEN = "open"
    """Tripped: the class is held at its minimum while the breaker cools down."""
    RECOVERING = "recovering"
    """Half-open: the class may grow again, watched."""


class ClassQueueView(WireModel):
    """The state of one queue class, as the controller measures it."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("type"))

    type: Literal["class_queue"] = "class_queue"
    queue: QueueClass
    length: Count
    """Records waiting (consumer lag over the class's source topic)."""
    oldest_wait_seconds: Seconds
    avg_wait_seconds: Seconds
    score: Annotated[float, Strict(), Field(allow_inf_nan=False)]
    """The allocation policy's priority score; higher gets workers first."""
    workers_assigned: Count
    breaker: BreakerState
    in_rate: Seconds
    """Records arriving per second."""
    out_rate: Seconds
    """Records decided per second."""
    min_workers: Count
    max_workers: Count
    updated_at: Timestamp


class KeyQueueView(WireModel):
    """The state of one per-key queue (a forum topic's posts or one conversation)."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("type"))

    type: Literal["key_queue"] = "key_queue"
    queue: KeyQueueName
    queue_class: QueueClass
    """``topic_posts`` for ``topic_…``, ``private_messages`` for ``users_…``."""
    pending: Count
    """Submissions without a decision yet."""
    oldest_pending_at: Timestamp | None = None
    """When the oldest pending submission was submitted; ``None`` when nothing is pending."""
    last_decision_at: Timestamp | None = None
    verdicts: dict[Verdict, Count] = Field(default_factory=dict)
    """Decisions so far, by verdict."""
    updated_at: Timestamp

    @field_validator("queue_class")
    @classmethod
    def _class_matches_name(cls, value: QueueClass, info: ValidationInfo) -> QueueClass:
        """The queue's name prefix and its class agree."""
        queue = info.data.get("queue")
        if queue is not None and key_queue_class(queue) is not value:
            raise PydanticCustomError("queue_class_mismatch", "does not match the queue name")
        return value


class WorkerEntry(WireModel):
    """One worker as the pool sees it."""

    worker_id: EntityId
    queue_class: QueueClass | None = None
    state: WorkerState
    in_flight: Count
    heartbeat_age_seconds: Seconds
    """Seconds since its latest heartbeat was sent."""
    alive: bool
    """Whether its heartbeat is recent enough to count it."""


class WorkerPoolView(WireModel):
    """The worker pool: every worker the controller knows of."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("type", "queue"))

    type: Literal["worker_pool"] = "worker_pool"
    queue: Literal["workers"] = WORKERS_QUEUE
    workers: tuple[WorkerEntry, ...] = ()
    updated_at: Timestamp


class WorkerMove(WireModel):
    """One worker the controller moved, and why."""

    worker_id: EntityId
    from_class: QueueClass | None
    """``None``: it was idle (or new)."""
    to_class: QueueClass | None
    """``None``: it is parked idle."""
    reason: Note
    rule: Label
    """The policy rule that made the move."""


class ControllerDecisionView(WireModel):
    """The leading controller's latest allocation."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("type", "queue"))

    type: Literal["controller"] = "controller"
    queue: Literal["controller"] = CONTROLLER_QUEUE
    controller_id: EntityId
    leader: bool
    decided_at: Timestamp
    """When this allocation was decided."""
    allocation: dict[QueueClass, tuple[EntityId, ...]] = Field(default_factory=dict)
    """Worker ids serving each class."""
    moves: tuple[WorkerMove, ...] = ()
    """What changed at ``decided_at``."""
    reasons: tuple[Note, ...] = ()
    """Why, in words (scores, breaker trips, bounds)."""
    updated_at: Timestamp
    """When the controller last confirmed this allocation (it republishes while leading)."""


class StuckKey(WireModel):
    """A per-key queue that waits longer than the others of its class."""

    queue: KeyQueueName
    pending: Count
    oldest_pending_at: Timestamp


class StuckKeysView(WireModel):
    """A class's most delayed per-key queues, oldest first."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("type"))

    type: Literal["stuck_keys"] = "stuck_keys"
    queue: Annotated[str, Strict(), StringConstraints(pattern=r"^stuck_[a-z_]+$")]
    """``stuck_{class}``."""
    queue_class: QueueClass
    keys: Annotated[tuple[StuckKey, ...], Field(max_length=MAX_STUCK_KEYS)] = ()
    updated_at: Timestamp

    @field_validator("queue_class")
    @classmethod
    def _class_matches_name(cls, value: QueueClass, info: ValidationInfo) -> QueueClass:
        """``queue`` is ``stuck_{queue_class}``."""
        queue = info.data.get("queue")
        if queue is not None and queue != stuck_queue_name(value):
            raise PydanticCustomError("queue_class_mismatch", "does not match the queue name")
        return value


VisualizationRecord: TypeAlias = Annotated[
    ClassQueueView | KeyQueueView | WorkerPoolView | ControllerDecisionView | StuckKeysView,
    Field(discriminator="type"),
]
"""Any visualization record; pydantic picks the model by ``type``."""


def visualization_key(record: VisualizationRecord) -> str:
    """The record key to publish ``record`` under: its queue name."""
    return str(record.queue)
