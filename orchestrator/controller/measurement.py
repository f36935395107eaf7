"""Queue measurement from Kafka's own offsets and timestamps: pure, ``now`` passed in.

Per queue class and partition (:class:`PartitionOffsets`):

- **length** (records pending) = log-end offset − first pending offset, where the first pending
  offset is the class group's committed offset, or the log-start offset when the group has
  committed nothing yet (the whole backlog counts) or when retention deleted past it.
- **oldest wait** (seconds) = ``now`` − timestamp of the record at the first pending offset.
- **average wait** (seconds): per partition, the mean of the oldest and the newest pending
  record's waits (arrivals assumed uniform in between), averaged over partitions weighted by
  their length. Partitions whose timestamps are unknown count in the length only.
- **last progress**: the ``now`` of the first observation at which the class's total committed
  position (sum of first pending offsets) had advanced; until this controller has seen one,
  the latest ``last_progress_at`` in the heartbeats of the class's workers (so a standby that
  just took over does not mistake a busy class for a stalled one).
- **in/out rate** (records per second): growth of the summed log-end offsets / committed
  positions over the observations of the last ``window_seconds``.

Waits and rates are clamped at zero (clock skew never makes them negative).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.policy import QueueMetrics
from schemas.queues import QueueClass

Position = tuple[str, int, int]
"""(topic, partition, offset) of one record."""

DEFAULT_WINDOW_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    """One partition of a class topic: offsets are positions (next offset to read/write)."""

    partition: int
    log_start: int
    log_end: int
    committed: int | None
    """The class group's committed offset; ``None`` when it has committed none."""

    @property
    def first_pending(self) -> int:
        """Offset of the oldest record not yet processed (``log_end`` when none is)."""
        base = self.log_start if self.committed is None else max(self.committed, self.log_start)
        return min(base, self.log_end)

    @property
    def lag(self) -> int:
        """Records pending on this partition."""
        return max(0, self.log_end - self.first_pending)


@dataclass(frozen=True, slots=True)
class ClassOffsets:
    """One queue class's topic partitions and group position at one instant."""

    queue_class: QueueClass
    topic: str
    group: str
    partitions: tuple[PartitionOffsets, ...]

    @property
    def length(self) -> int:
        """Records pending in the class (sum of partition lags)."""
        return sum(p.lag for p in self.partitions)

    @property
    def processed_position(self) -> int:
        """Sum of first pending offsets: grows by one per record processed."""
        return sum(p.first_pending for p in self.partitions)

    @property
    def arrived_position(self) -> int:
        """Sum of log-end offsets: grows by one per record arrived."""
        return sum(p.log_end for p in self.partitions)


def timestamp_positions(offsets: Iterable[ClassOffsets]) -> set[Position]:
    """Records whose timestamps measure the waits: the oldest and the newest pending record
    of every partition with a backlog."""
    wanted: set[Position] = set()
    for cls in offsets:
        for p in cls.partitions:
            if p.lag > 0:
                wanted.add((cls.topic, p.partition, p.first_pending))
                wanted.add((cls.topic, p.partition, p.log_end - 1))
    return wanted


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of a class's positions."""

    at: datetime
    processed: int
    arrived: int


@dataclass(frozen=True, slots=True)
class ClassHistory:
    """Observations of one class within the rate window, and when it last progressed."""

    samples: tuple[Sample, ...] = ()
    last_progress_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MeasurementState:
    """What measurement carries from one tick to the next; start with ``MeasurementState()``."""

    history: Mapping[QueueClass, ClassHistory] = field(default_factory=dict)


def observe(
    history: ClassHistory, offsets: ClassOffsets, now: datetime, window_seconds: float
) -> ClassHistory:
    """Add the observation at ``now``; progress is an advance of the processed position."""
    sample = Sample(now, offsets.processed_position, offsets.arrived_position)
    last = history.last_progress_at
    if history.samples and sample.processed > history.samples[-1].processed:
        last = now
    horizon = now - timedelta(seconds=window_seconds)
    kept = tuple(s for s in history.samples if s.at >= horizon and s.at < now)
    return ClassHistory((*kept, sample), last)


def rates(history: ClassHistory) -> tuple[float | None, float | None]:
    """(in, out) records per second over the window; ``None`` before two observations."""
    if len(history.samples) < 2:
        return None, None
    first, last = history.samples[0], history.samples[-1]
    span = (last.at - first.at).total_seconds()
    if span <= 0:
        return None, None
    return (
        max(0.0, (last.arrived - first.arrived) / span),
        max(0.0, (last.processed - first.processed) / span),
    )


def waits(
    offsets: ClassOffsets, timestamps: Mapping[Position, datetime], now: datetime
) -> tuple[float, float]:
    """(oldest, average) wait in seconds of the class's pending records; see the module doc."""
    oldest = 0.0
    weighted = 0.0
    weight = 0
    for p in offsets.partitions:
        if p.lag == 0:
            continue
        first = timestamps.get((offsets.topic, p.partition, p.first_pending))
        if first is None:
            continue
        first_wait = max(0.0, (now - first).total_seconds())
        newest = timestamps.get((offsets.topic, p.partition, p.log_end - 1))
        newest_wait = 0.0 if newest is None else max(0.0, (now - newest).total_seconds())
        oldest = max(oldest, first_wait)
        weighted += p.lag * (first_wait + min(newest_wait, first_wait)) / 2.0
        weight += p.lag
    return oldest, (weighted / weight if weight else 0.0)


def measure(
    state: MeasurementState,
    offsets: Mapping[QueueClass, ClassOffsets],
    timestamps: Mapping[Position, datetime],
    now: datetime,
    *,
    heartbeat_progress: Mapping[QueueClass, datetime] | None = None,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
) -> tuple[MeasurementState, dict[QueueClass, QueueMetrics]]:
    """One tick's metrics per class (classes missing from ``offsets`` are left out) and the
    state to pass to the next tick."""
    history = dict(state.history)
    metrics: dict[QueueClass, QueueMetrics] = {}
    beats = heartbeat_progress or {}
    for cls, class_offsets in offsets.items():
        updated = observe(history.get(cls, ClassHistory()), class_offsets, now, window_seconds)
        history[cls] = updated
        progress = updated.last_progress_at or beats.get(cls)
        oldest, average = waits(class_offsets, timestamps, now)
        in_rate, out_rate = rates(updated)
        metrics[cls] = QueueMetrics(
            length=class_offsets.length,
            avg_wait_seconds=average,
            oldest_wait_seconds=oldest,
            last_progress_at=progress,
            in_rate=in_rate,
            out_rate=out_rate,
        )
    return MeasurementState(history), metrics
