"""Per-worker Prometheus metrics. Labels carry queue classes and verdicts, never content."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.processing import Outcome

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class WorkerMetrics:
    """The metrics of one worker process, in their own registry (served on /metrics)."""

    def __init__(self, worker_id: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.worker_id = worker_id
        self.queue_class = ""
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.processed = Counter(
            "modq_worker_records_processed",
            "Records decided",
            ["queue_class", "verdict"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "modq_worker_records_dead_lettered",
            "Records sent to the DLQ",
            ["queue_class"],
            registry=r,
        )
        self.failed = Counter(
            "modq_worker_records_failed",
            "Records whose policy failed every retry",
            ["queue_class"],
            registry=r,
        )
        self.in_flight = Gauge("modq_worker_in_flight", "Records being moderated now", registry=r)
        self.buffered = Gauge(
            "modq_worker_buffered", "Records consumed and not yet committed", registry=r
        )
        self.wait = Histogram(
            "modq_worker_wait_seconds",
            "Submitted to decided, per queue class",
            ["queue_class"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.processing = Histogram(
            "modq_worker_processing_seconds",
            "Time to moderate one record (including retries)",
            ["queue_class"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "modq_worker_batch_size",
            "Records per global_topics batch",
            buckets=(1, 2, 3, 4, 5, 10, 20),
            registry=r,
        )
        self.current_class = Gauge(
            "modq_worker_serving",
            "1 for the queue class this worker serves",
            ["queue_class"],
            registry=r,
        )

    def serving(self, queue_class: str) -> None:
        """Record that the worker now serves ``queue_class``."""
        if self.queue_class:
            self.current_class.labels(self.queue_class).set(0)
        self.queue_class = queue_class
        self.current_class.labels(queue_class).set(1)

    def _child(self, metric: Any, *labels: str) -> Any:
        # `labels()` costs a lock and a tuple build per call; on the hot path (every record)
        # the labelled children are looked up once and cached.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, outcome: Outcome, seconds: float, waited: float | None = None) -> None:
        """Count one processed record."""
        cls = self.queue_class
        if outcome.verdict is not None:
            self._child(self.processed, cls, outcome.verdict.value).inc()
        if outcome.dead_lettered:
            self._child(self.dead_lettered, cls).inc()
            if outcome.verdict is not None:
                self._child(self.failed, cls).inc()
        self._child(self.processing, cls).observe(seconds)
        if waited is not None:
            self._child(self.wait, cls).observe(max(waited, 0.0))
