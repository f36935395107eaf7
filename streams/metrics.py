"""Per-worker Prometheus metrics. Labels carry queue classes and verdicts, never content.

The per-record series (records processed, dead-lettered and failed; the wait and
processing-time histograms) are counted in plain Python by :class:`RecordStats` and read by
the registry only when ``/metrics`` is scraped. A ``prometheus_client`` counter or histogram
takes a lock and walks its buckets on every update, which cost about 5 microseconds per
record on the worker's hot path; a list increment costs a tenth of that. The other metrics
(gauges, the batch-size histogram) change once per loop or per batch and stay ordinary
``prometheus_client`` metrics.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.processing import Outcome

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


_BOUNDS = (*(repr(float(b)) for b in _LATENCY_BUCKETS), "+Inf")
"""The ``le`` labels, spelt as ``prometheus_client``'s own histograms spell them (``1.0``)."""


class _Histogram:
    """Bucket counts (non-cumulative, the last one +Inf) and a sum, for one label set."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound falls in that bucket (Prometheus' `le`).
        self.counts[bisect_left(_LATENCY_BUCKETS, value)] += 1
        self.total += value

    def buckets(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` pairs and the sum, from one consistent snapshot."""
        counts = list(self.counts)  # one C-level copy: a scrape never sees a half update
        running = 0
        pairs: list[tuple[str, float]] = []
        for bound, count in zip(_BOUNDS, counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs, self.total


class RecordStats(Collector):
    """The per-record series, counted without locks; update them from one thread only.

    Counters only grow; a scrape (in the HTTP server's thread) reads a snapshot.
    """

    def __init__(self) -> None:
        self.processed: dict[tuple[str, str], int] = {}
        """(queue class, verdict) -> records decided."""
        self.dead_lettered: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.wait: dict[str, _Histogram] = {}
        self.processing: dict[str, _Histogram] = {}

    def observe(
        self, queue_class: str, outcome: Outcome, seconds: float, waited: float | None
    ) -> None:
        """Count one processed record (``seconds`` to moderate; ``waited`` since submitted)."""
        if outcome.verdict is not None:
            key = (queue_class, outcome.verdict.value)
            self.processed[key] = self.processed.get(key, 0) + 1
        if outcome.dead_lettered:
            self.dead_lettered[queue_class] = self.dead_lettered.get(queue_class, 0) + 1
            if outcome.verdict is not None:
                self.failed[queue_class] = self.failed.get(queue_class, 0) + 1
        processing = self.processing.get(queue_class)
        if processing is None:
            processing = self.processing[queue_class] = _Histogram()
        processing.observe(seconds)
        if waited is not None:
            wait = self.wait.get(queue_class)
            if wait is None:
                wait = self.wait[queue_class] = _Histogram()
            wait.observe(max(waited, 0.0))

    def collect(self) -> Iterator[Metric]:
        processed = CounterMetricFamily(
            "modq_worker_records_processed", "Records decided", labels=["queue_class", "verdict"]
        )
        for (queue_class, verdict), count in list(self.processed.items()):
            processed.add_metric([queue_class, verdict], count)
        yield processed
        for name, doc, counts in (
            ("modq_worker_records_dead_lettered", "Records sent to the DLQ", self.dead_lettered),
            ("modq_worker_records_failed", "Records whose policy failed every retry", self.failed),
        ):
            family = CounterMetricFamily(name, doc, labels=["queue_class"])
            for queue_class, count in list(counts.items()):
                family.add_metric([queue_class], count)
            yield family
        for name, doc, histograms in (
            ("modq_worker_wait_seconds", "Submitted to decided, per queue class", self.wait),
            (
                "modq_worker_processing_seconds",
                "Time to moderate one record (including retries)",
                self.processing,
            ),
        ):
            family_h = HistogramMetricFamily(name, doc, labels=["queue_class"])
            for queue_class, histogram in list(histograms.items()):
                pairs, total = histogram.buckets()
                family_h.add_metric([queue_class], pairs, total)
            yield family_h


class WorkerMetrics:
    """The metrics of one worker process, in their own registry (served on /metrics)."""

    def __init__(self, worker_id: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.worker_id = worker_id
        self.queue_class = ""
        r = self.registry
        self.records = RecordStats()
        r.register(self.records)
        self.in_flight = Gauge("modq_worker_in_flight", "Records being moderated now", registry=r)
        self.buffered = Gauge(
            "modq_worker_buffered", "Records consumed and not yet committed", registry=r
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
        """Count one processed record (from the event loop's thread)."""
        self.records.observe(self.queue_class, outcome, seconds, waited)
