"""Control-plane messages on ``forum.orchestrator.control`` (compacted, internal).

Workers publish ``WorkerHeartbeat``; the leading controller publishes ``WorkerAssignment``.
Both are JSON objects told apart by ``type``, and both are keyed by the worker id with a
prefix so that compaction keeps the latest message *of each type* per worker:

- ``assign:{worker_id}`` (``assignment_key``): the worker's current assignment. A restarted
  worker reads it back and serves its last assignment even while no controller is up
  (architecture invariant 4).
- ``hb:{worker_id}`` (``heartbeat_key``): the worker's latest heartbeat.

Were both keyed by the bare worker id (as ``CONTRACT.md`` puts it loosely), a heartbeat would
compact away the assignment. Worker ids cannot contain ``:``, so ``parse_control_key`` is
exact. A tombstone (null value) under either key retires a worker.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, TypeAlias

from pydantic import ConfigDict, Field, Strict

from schemas.fields import (
    Count,
    EntityId,
    Label,
    Note,
    Timestamp,
    WireModel,
    require_in_schema,
)
from schemas.queues import QueueClass

ASSIGNMENT_KEY_PREFIX = "assign:"
HEARTBEAT_KEY_PREFIX = "hb:"


class WorkerState(StrEnum):
    """Where a worker is in its life."""

    STARTING = "starting"
    """Connecting; serves nothing yet."""
    IDLE = "idle"
    """Up, with no queue class to serve (a spare)."""
    SERVING = "serving"
    """Consuming and moderating its queue class."""
    SWITCHING = "switching"
    """Finishing in-flight work to move to another queue class."""
    DRAINING = "draining"
    """Finishing in-flight work before stopping."""
    STOPPING = "stopping"
    """Committing and closing; the last heartbeat a worker sends."""


class WorkerHeartbeat(WireModel):
    """A worker's periodic report of what it serves and how it is doing."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("type"))

    type: Literal["heartbeat"] = "heartbeat"
    worker_id: EntityId
    queue_class: QueueClass | None = None
    """The class it serves now; ``None`` while starting or idle."""
    generation: Annotated[int, Strict(), Field(ge=0)] | None = None
    """Generation of the assignment it applies; ``None`` before its first assignment."""
    state: WorkerState
    in_flight: Count
    """Records read and not yet decided."""
    processed: Count
    """Records decided (or dead-lettered) since the process started."""
    last_progress_at: Timestamp | None = None
    """When it last finished a record; ``None`` if it has not yet."""
    sent_at: Timestamp
    pid: Count
    host: Label


class WorkerAssignment(WireModel):
    """The controller's instruction: serve this queue class (or none) from now on."""

    model_config = ConfigDict(json_schema_extra=require_in_schema("type"))

    type: Literal["assignment"] = "assignment"
    worker_id: EntityId
    queue_class: QueueClass | None
    """The class to serve; ``None`` parks the worker as an idle spare."""
    generation: Count
    """Increases with every assignment a controller makes; workers ignore older ones."""
    reason: Note
    """Why, in a few words (the policy rule that moved the worker)."""
    assigned_at: Timestamp
    controller_id: EntityId


ControlMessage: TypeAlias = Annotated[
    WorkerHeartbeat | WorkerAssignment, Field(discriminator="type")
]
"""Any control-topic message; pydantic picks the model by ``type``."""


def assignment_key(worker_id: str) -> str:
    """Control-topic key of a worker's assignment: ``assign:{worker_id}``."""
    return f"{ASSIGNMENT_KEY_PREFIX}{worker_id}"


def heartbeat_key(worker_id: str) -> str:
    """Control-topic key of a worker's heartbeat: ``hb:{worker_id}``."""
    return f"{HEARTBEAT_KEY_PREFIX}{worker_id}"


def control_key(message: ControlMessage) -> str:
    """The key to publish ``message`` under."""
    if isinstance(message, WorkerAssignment):
        return assignment_key(message.worker_id)
    return heartbeat_key(message.worker_id)


def parse_control_key(key: str) -> tuple[Literal["assignment", "heartbeat"], str] | None:
    """``("assignment" | "heartbeat", worker_id)`` for a control key; ``None`` if foreign."""
    if key.startswith(ASSIGNMENT_KEY_PREFIX):
        return "assignment", key.removeprefix(ASSIGNMENT_KEY_PREFIX)
    if key.startswith(HEARTBEAT_KEY_PREFIX):
        return "heartbeat", key.removeprefix(HEARTBEAT_KEY_PREFIX)
    return None
