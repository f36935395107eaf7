"""Per-worker Prometheus metrics. Labels carry queue classes and verdicts, never content."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.processing import Outcome

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class WorkerMetrics:
    """The metrics of one worker process, in their own registry (served on /metrics)."""

    def __init__(self, worker_id: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.worker_id = worker_id
        self.queue_class = ""
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

    def observe(self, outcome: Outcome, seconds: float, waited: float | None = None) -> None:
        """Count one processed record."""
        cls = self.queue_class
        if outcome.verdict is not None:
            self.processed.labels(cls, outcome.verdict.value).inc()
        if outcome.dead_lettered:
            self.dead_lettered.labels(cls).inc()
            if outcome.verdict is not None:
                self.failed.labels(cls).inc()
        self.processing.labels(cls).observe(seconds)
        if waited is not None:
            self.wait.labels(cls).observe(max(waited, 0.0))
