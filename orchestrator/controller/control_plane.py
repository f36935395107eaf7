"""The control topic as the leading controller sees it: pure state, no I/O, no clock.

:class:`ControlLog` folds control records (``hb:{id}`` heartbeats, ``assign:{id}``
assignments, tombstones) into the latest heartbeat and assignment per worker and the highest
assignment generation ever written. A controller that takes over re-reads the compacted topic
from the beginning, so generations keep increasing across failovers: compaction keeps each
worker's latest assignment, which holds that worker's highest generation, and the global
maximum is the largest of those.

It also turns what it knows into the allocation policy's inputs (:meth:`ControlLog.workers`,
:meth:`ControlLog.seed_state`) and a policy move into a :class:`WorkerAssignment`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError

from orchestrator.policy import ControllerState, Move
from orchestrator.policy import WorkerState as PolicyWorker
from schemas.codec import decode_control
from schemas.control import (
    WorkerAssignment,
    WorkerHeartbeat,
    WorkerState,
    parse_control_key,
)
from schemas.errors import ContractError
from schemas.queues import QueueClass

_LOG = logging.getLogger("modq.controller")
_MAX_NOTE = 1000


class ControlLog:
    """Latest heartbeat and assignment per worker id, and the generation counter."""

    def __init__(self) -> None:
        self.heartbeats: dict[str, WorkerHeartbeat] = {}
        self.assignments: dict[str, WorkerAssignment] = {}
        self.max_generation = -1

    def reset(self) -> None:
        """Forget everything (before re-reading the topic from the beginning)."""
        self.heartbeats.clear()
        self.assignments.clear()
        self.max_generation = -1

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one control record; foreign keys and malformed values are ignored."""
        if key is None:
            return
        parsed = parse_control_key(key.decode("utf-8", "replace"))
        if parsed is None:
            return
        kind, worker_id = parsed
        try:
            message = decode_control(value)
        except (ContractError, ValidationError) as exc:
            _LOG.warning("ignoring malformed control record %r: %s", key, exc)
            return
        if message is None:
            (self.assignments if kind == "assignment" else self.heartbeats).pop(worker_id, None)
            return
        if isinstance(message, WorkerAssignment):
            self.record(message)
        elif isinstance(message, WorkerHeartbeat):
            self.heartbeats[worker_id] = message
            if message.generation is not None:
                self.max_generation = max(self.max_generation, message.generation)

    def record(self, assignment: WorkerAssignment) -> None:
        """Remember an assignment (read back, or just published by this controller)."""
        self.max_generation = max(self.max_generation, assignment.generation)
        held = self.assignments.get(assignment.worker_id)
        if held is None or assignment.generation >= held.generation:
            self.assignments[assignment.worker_id] = assignment

    def is_alive(self, worker_id: str, now: datetime, timeout_seconds: float) -> bool:
        """A fresh heartbeat (at most ``timeout_seconds`` old) that is not a goodbye."""
        beat = self.heartbeats.get(worker_id)
        if beat is None or beat.state is WorkerState.STOPPING:
            return False
        return heartbeat_age(beat, now) <= timeout_seconds

    def known(self, now: datetime, forget_seconds: float) -> list[WorkerHeartbeat]:
        """Heartbeats of workers heard from within ``forget_seconds``, by worker id."""
        return sorted(
            (b for b in self.heartbeats.values() if heartbeat_age(b, now) <= forget_seconds),
            key=lambda b: b.worker_id,
        )

    def class_of(self, worker_id: str) -> QueueClass | None:
        """The class a worker holds: its latest assignment, else what it reports serving."""
        assignment = self.assignments.get(worker_id)
        if assignment is not None:
            return assignment.queue_class
        beat = self.heartbeats.get(worker_id)
        return None if beat is None else beat.queue_class

    def workers(
        self,
        now: datetime,
        timeout_seconds: float,
        forget_seconds: float,
        previous: Mapping[str, QueueClass | None] | None = None,
    ) -> list[PolicyWorker]:
        """The policy's view of every worker heard from within ``forget_seconds``.

        An alive worker holds its latest assignment (else the class it reports). A dead one
        holds what ``previous`` (the policy's last assignments) gave it, so its loss is
        reported once, not on every tick; without ``previous`` (a new leader) it holds its
        latest assignment."""
        result: list[PolicyWorker] = []
        for beat in self.known(now, forget_seconds):
            worker_id = beat.worker_id
            assignment = self.assignments.get(worker_id)
            alive = self.is_alive(worker_id, now, timeout_seconds)
            held = self.class_of(worker_id)
            if not alive and previous is not None:
                held = previous.get(worker_id)
            result.append(
                PolicyWorker(
                    worker_id=worker_id,
                    queue_class=held,
                    alive=alive,
                    assigned_at=None if assignment is None else assignment.assigned_at,
                )
            )
        return result

    def seed_state(self, workers: list[PolicyWorker]) -> ControllerState:
        """The policy state a controller starts leading with: the workers' current classes
        (so none counts as new) and their last assignment times (for the cooldown)."""
        return ControllerState(
            assignments={w.worker_id: w.queue_class for w in workers if w.alive},
            last_move_at={
                w.worker_id: w.assigned_at for w in workers if w.alive and w.assigned_at is not None
            },
        )

    def heartbeat_progress(
        self, now: datetime, timeout_seconds: float
    ) -> dict[QueueClass, datetime]:
        """Per class, the latest ``last_progress_at`` among alive workers serving it."""
        result: dict[QueueClass, datetime] = {}
        for beat in self.heartbeats.values():
            if beat.queue_class is None or beat.last_progress_at is None:
                continue
            if not self.is_alive(beat.worker_id, now, timeout_seconds):
                continue
            held = result.get(beat.queue_class)
            if held is None or beat.last_progress_at > held:
                result[beat.queue_class] = beat.last_progress_at
        return result

    def assignment_for(self, move: Move, now: datetime, controller_id: str) -> WorkerAssignment:
        """The next-generation assignment that carries out ``move`` (not yet recorded)."""
        return WorkerAssignment(
            worker_id=move.worker_id,
            queue_class=move.to_class,
            generation=self.max_generation + 1,
            reason=f"{move.rule}: {move.reason}"[:_MAX_NOTE],
            assigned_at=now,
            controller_id=controller_id,
        )


def heartbeat_age(beat: WorkerHeartbeat, now: datetime) -> float:
    """Seconds since ``beat`` was sent (never negative)."""
    return max(0.0, (now - beat.sent_at).total_seconds())
