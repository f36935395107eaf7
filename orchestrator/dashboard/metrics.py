"""``/metrics``: the queues as Prometheus gauges, built from the dashboard state on scrape.

Pure apart from prometheus_client's value objects: :func:`families` reads the state and
``now``. Labels are queue classes and queue names only (ids and counts, never content).
Per-key queues are capped at the most stuck :data:`KEY_QUEUE_SERIES` to bound cardinality;
``modq_key_queues`` counts them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.dashboard.state import DashboardState
from orchestrator.dashboard.view import ViewOptions, render
from schemas.queues import QueueClass
from schemas.visualization import BreakerState

KEY_QUEUE_SERIES = 500

_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.RECOVERING: 1, BreakerState.OPEN: 2}

Metric = GaugeMetricFamily | CounterMetricFamily


def families(state: DashboardState, now: datetime, clients: int) -> list[Metric]:
    """Every metric family ``/metrics`` shows for ``state`` at ``now``."""
    cls_label = ["queue_class"]
    gauges = {
        "length": GaugeMetricFamily(
            "modq_queue_length", "Records waiting in the queue class", labels=cls_label
        ),
        "oldest_wait_seconds": GaugeMetricFamily(
            "modq_queue_oldest_wait_seconds", "Wait of the oldest waiting record", labels=cls_label
        ),
        "avg_wait_seconds": GaugeMetricFamily(
            "modq_queue_avg_wait_seconds", "Average wait of waiting records", labels=cls_label
        ),
        "score": GaugeMetricFamily(
            "modq_queue_score", "Allocation priority score", labels=cls_label
        ),
        "workers_assigned": GaugeMetricFamily(
            "modq_queue_workers_assigned", "Workers serving the class", labels=cls_label
        ),
        "in_rate": GaugeMetricFamily(
            "modq_queue_arrival_rate", "Records arriving per second", labels=cls_label
        ),
        "out_rate": GaugeMetricFamily(
            "modq_queue_decision_rate", "Records decided per second", labels=cls_label
        ),
    }
    breaker = GaugeMetricFamily(
        "modq_queue_breaker_state",
        "Circuit breaker: 0 closed, 1 recovering, 2 open",
        labels=cls_label,
    )
    age = GaugeMetricFamily(
        "modq_queue_state_age_seconds", "Age of the class's latest record", labels=cls_label
    )
    for cls in QueueClass:
        view = state.classes.get(cls)
        if view is None:
            continue
        for field, family in gauges.items():
            family.add_metric([cls.value], float(getattr(view, field)))
        breaker.add_metric([cls.value], _BREAKER_VALUE[view.breaker])
        age.add_metric([cls.value], max(0.0, (now - view.updated_at).total_seconds()))

    key_count = GaugeMetricFamily("modq_key_queues", "Per-key queues with state", labels=cls_label)
    for cls in (QueueClass.TOPIC_POSTS, QueueClass.PRIVATE_MESSAGES):
        n = sum(1 for v in state.key_queues.values() if v.queue_class is cls)
        key_count.add_metric([cls.value], n)
    pending = GaugeMetricFamily(
        "modq_key_queue_pending", "Pending submissions of a per-key queue", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        "modq_key_queue_oldest_wait_seconds",
        "Wait of a per-key queue's oldest pending submission",
        labels=["queue"],
    )
    rows = render(state, now, ViewOptions(key_limit=KEY_QUEUE_SERIES))["key_queues"]["items"]
    for row in rows:
        pending.add_metric([row["queue"]], row["pending"])
        if row["oldest_wait_seconds"] is not None:
            oldest.add_metric([row["queue"]], row["oldest_wait_seconds"])

    workers = state.workers.workers if state.workers else ()
    alive = GaugeMetricFamily("modq_workers_alive", "Workers with a recent heartbeat")
    alive.add_metric([], sum(1 for w in workers if w.alive))
    known = GaugeMetricFamily("modq_workers_known", "Workers the controller knows of")
    known.add_metric([], len(workers))

    connected = GaugeMetricFamily(
        "modq_dashboard_kafka_connected", "1 while the dashboard's Kafka reader is connected"
    )
    connected.add_metric([], 1 if state.feed.connected else 0)
    ready = GaugeMetricFamily(
        "modq_dashboard_ready", "1 once the visualization topic was read to its end"
    )
    ready.add_metric([], 1 if state.feed.ready else 0)
    sse = GaugeMetricFamily("modq_dashboard_sse_clients", "Browsers following /events")
    sse.add_metric([], clients)
    records = CounterMetricFamily(
        "modq_dashboard_records", "Visualization records applied (tombstones included)"
    )
    records.add_metric([], state.records)
    invalid = CounterMetricFamily(
        "modq_dashboard_invalid_records", "Visualization records refused as invalid"
    )
    invalid.add_metric([], state.invalid_records)
    return [
        *gauges.values(),
        breaker,
        age,
        key_count,
        pending,
        oldest,
        alive,
        known,
        connected,
        ready,
        sse,
        records,
        invalid,
    ]


class _StateCollector(Collector):
    def __init__(self, source: Callable[[], list[Metric]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        yield from self._source()


def registry_for(source: Callable[[], list[Metric]]) -> CollectorRegistry:
    """A private registry whose only collector yields ``source()`` on every scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StateCollector(source))
    return registry
