"""Frozen value objects of the controller's allocation policy.

Units: every duration is in **seconds** (``float``), every instant is a timezone-aware
``datetime``, queue lengths are **records pending**, and scores are dimensionless. The policy
never reads a clock: the caller passes ``now`` and these models carry everything else.

Nothing here performs I/O; the models only validate their own fields, so a malformed
configuration stops start-up with a message naming the offending setting.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.queues import QueueClass

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class QueueBounds(BaseModel):
    """How many workers one queue class may hold: ``min <= count <= max``.

    Only non-negativity is checked here; ``min <= max`` is checked by :class:`PoolConfig`,
    which knows the class name to put in the message.
    """

    model_config = _FROZEN

    min: int = Field(ge=0)
    max: int = Field(ge=0)


SEED_BOUNDS: dict[QueueClass, QueueBounds] = {
    QueueClass.GLOBAL_TOPICS: QueueBounds(min=1, max=1),
    QueueClass.TOPIC_POSTS: QueueBounds(min=0, max=1),
    QueueClass.PRIVATE_MESSAGES: QueueBounds(min=0, max=1),
}
"""The seed's bounds: topic approval always has exactly one worker; the others float."""


class ScoreWeights(BaseModel):
    """Weights of the priority score ``length * length_weight + wait_minutes * wait_weight``.

    ``length_weight`` is per record pending; ``wait_weight`` is per **minute** of average wait.
    The seed's formula is ``queue_length * 10 + avg_wait_minutes``.
    """

    model_config = _FROZEN

    length_weight: float = Field(default=10.0, ge=0)
    wait_weight: float = Field(default=1.0, ge=0)


class PoolConfig(BaseModel):
    """The worker pool's shape and the policy's tuning knobs (all durations in seconds).

    * ``total_workers``: the most workers the policy assigns at once (alive workers beyond it
      stay spare).
    * ``workers``: bounds per queue class; every class must be present.
    * ``breaker_threshold_seconds``: a class with pending work and no progress for this long
      is *stalled* and its circuit breaker opens.
    * ``breaker_recovery_seconds``: a recovering breaker closes after the class has progressed
      (never stalled again) for this long, or as soon as it drains.
    * ``cooldown_seconds``: a worker moved less than this long ago is not moved again for
      priority or idle release (the min rule and the breaker still may).
    * ``rebalance_margin``: a worker leaves a class that still has pending work for a
      higher-scoring class only when the other class's per-worker score exceeds this class's
      by more than this fraction (0.25 = 25 %); hysteresis against noisy lag.

    Raises ``ValueError`` (pydantic's ``ValidationError``) naming the setting when a min
    exceeds its max, when the mins add up to more than ``total_workers``, or when a value is
    negative.
    """

    model_config = _FROZEN

    total_workers: int = Field(default=2, ge=1)
    workers: dict[QueueClass, QueueBounds] = Field(default_factory=lambda: dict(SEED_BOUNDS))
    breaker_threshold_seconds: float = Field(default=120.0, gt=0)
    breaker_recovery_seconds: float = Field(default=120.0, ge=0)
    cooldown_seconds: float = Field(default=30.0, ge=0)
    rebalance_margin: float = Field(default=0.25, ge=0)
    weights: ScoreWeights = Field(default_factory=ScoreWeights)

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        for queue_class in QueueClass:
            bounds = self.workers.get(queue_class)
            if bounds is None:
                msg = f"workers.{queue_class} is missing: every queue class needs a min and a max"
                raise ValueError(msg)
            if bounds.min > bounds.max:
                msg = (
                    f"workers.{queue_class}.min ({bounds.min}) exceeds "
                    f"workers.{queue_class}.max ({bounds.max})"
                )
                raise ValueError(msg)
        total_min = sum(bounds.min for bounds in self.workers.values())
        if total_min > self.total_workers:
            msg = (
                f"the sum of workers.*.min ({total_min}) exceeds "
                f"total_workers ({self.total_workers})"
            )
            raise ValueError(msg)
        return self

    def bounds(self, queue_class: QueueClass) -> QueueBounds:
        """The bounds of ``queue_class`` (always present once validated)."""
        return self.workers[queue_class]


class QueueMetrics(BaseModel):
    """What the controller knows about one queue class at ``now``.

    * ``length``: records pending (consumer lag summed over partitions).
    * ``avg_wait_seconds`` / ``oldest_wait_seconds``: how long pending records have waited.
    * ``last_progress_at``: when the class last processed a record (its committed offsets
      moved); ``None`` if never seen.
    * ``in_rate`` / ``out_rate``: optional records per second, informational only.

    The default value is an idle queue.
    """

    model_config = _FROZEN

    length: int = Field(default=0, ge=0)
    avg_wait_seconds: float = Field(default=0.0, ge=0)
    oldest_wait_seconds: float = Field(default=0.0, ge=0)
    last_progress_at: AwareDatetime | None = None
    in_rate: float | None = Field(default=None, ge=0)
    out_rate: float | None = Field(default=None, ge=0)


class WorkerState(BaseModel):
    """One worker as the controller sees it.

    ``queue_class`` is the class the controller considers the worker to hold (its last
    assignment), ``None`` when unassigned or spare. ``alive`` means its heartbeat is fresh.
    ``assigned_at`` is when it got its current class; it counts as the worker's last move for
    the cooldown when the controller state has none (e.g. after a controller failover).
    """

    model_config = _FROZEN

    worker_id: str = Field(min_length=1)
    queue_class: QueueClass | None = None
    alive: bool = True
    assigned_at: AwareDatetime | None = None


class ProgressStatus(StrEnum):
    """Burrow-style judgement of one class: no lag, lag shrinking, or lag without progress."""

    IDLE = "idle"
    PROGRESSING = "progressing"
    STALLED = "stalled"


class BreakerStatus(StrEnum):
    """The starvation circuit breaker of one queue class."""

    CLOSED = "closed"
    OPEN = "open"
    RECOVERING = "recovering"


class BreakerState(BaseModel):
    """A breaker's status, when it entered it (``since``) and when it last opened."""

    model_config = _FROZEN

    status: BreakerStatus = BreakerStatus.CLOSED
    since: AwareDatetime | None = None
    opened_at: AwareDatetime | None = None

    @property
    def holds_worker(self) -> bool:
        """True while open or recovering: the class is guaranteed (and keeps) one worker."""
        return self.status is not BreakerStatus.CLOSED


def _closed_breakers() -> dict[QueueClass, BreakerState]:
    return {queue_class: BreakerState() for queue_class in QueueClass}


class ControllerState(BaseModel):
    """What the policy carries from one tick to the next (start with ``ControllerState()``).

    * ``breakers``: each class's breaker (missing classes count as closed).
    * ``last_move_at``: when the policy last moved each alive worker.
    * ``assignments``: the previous tick's assignments; a worker absent from it is *new*.
    """

    model_config = _FROZEN

    breakers: dict[QueueClass, BreakerState] = Field(default_factory=_closed_breakers)
    last_move_at: dict[str, AwareDatetime] = Field(default_factory=dict)
    assignments: dict[str, QueueClass | None] = Field(default_factory=dict)

    def breaker(self, queue_class: QueueClass) -> BreakerState:
        """The breaker of ``queue_class``; closed if never recorded."""
        return self.breakers.get(queue_class, BreakerState())


class MoveRule(StrEnum):
    """Which rule of the policy caused a move."""

    MIN_WORKERS = "min_workers"
    MAX_WORKERS = "max_workers"
    PRIORITY = "priority"
    CIRCUIT_BREAKER = "circuit_breaker"
    NEW_WORKER = "new_worker"
    WORKER_LOST = "worker_lost"
    IDLE_RELEASE = "idle_release"


MANDATORY_RULES = frozenset(
    {MoveRule.MIN_WORKERS, MoveRule.MAX_WORKERS, MoveRule.CIRCUIT_BREAKER, MoveRule.WORKER_LOST}
)
"""Rules that may move a worker inside its cooldown."""


class Move(BaseModel):
    """One change of a worker's class; ``None`` means unassigned (spare or gone)."""

    model_config = _FROZEN

    worker_id: str
    from_class: QueueClass | None
    to_class: QueueClass | None
    rule: MoveRule
    reason: str


class AllocationResult(BaseModel):
    """The outcome of one policy tick.

    * ``assignments``: every alive worker's class, or ``None`` for a spare worker (one that
      cannot be used because every class is at its max or the pool is at ``total_workers``).
    * ``moves``: changes relative to the input (lost workers appear with ``to_class=None``).
    * ``scores``/``progress``/``breakers``: per class, as judged this tick.
    * ``next_state``: pass it to the next tick.
    * ``reasons``: human-readable log of the tick (scores, breaker changes, rules, moves).
    """

    model_config = _FROZEN

    assignments: dict[str, QueueClass | None]
    moves: tuple[Move, ...]
    scores: dict[QueueClass, float]
    progress: dict[QueueClass, ProgressStatus]
    breakers: dict[QueueClass, BreakerState]
    next_state: ControllerState
    reasons: tuple[str, ...]

    def workers_on(self, queue_class: QueueClass | None) -> tuple[str, ...]:
        """Ids of the workers assigned to ``queue_class`` (``None``: spare), sorted."""
        return tuple(w for w, c in self.assignments.items() if c == queue_class)
