"""Worker metrics: the per-record series as Prometheus exposes them."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from schemas.decisions import Verdict
from streams.metrics import WorkerMetrics
from streams.processing import Outcome

DECIDED = Outcome((), Verdict.APPROVED, False, 1, None)
REJECTED = Outcome((), Verdict.REJECTED, False, 1, None)
FAILED = Outcome((), Verdict.FAILED, True, 3, None)
POISON = Outcome((), None, True, 1, None)


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_records_are_counted_per_class_and_verdict() -> None:
    metrics = WorkerMetrics("w1")
    metrics.serving("topic_posts")
    for outcome in (DECIDED, DECIDED, REJECTED, FAILED, POISON):
        metrics.observe(outcome, 0.002)
    metrics.serving("private_messages")
    metrics.observe(DECIDED, 0.002)
    s = _samples(metrics)
    posts = (("queue_class", "topic_posts"),)
    assert s[("modq_worker_records_processed_total", (*posts, ("verdict", "approved")))] == 2
    assert s[("modq_worker_records_processed_total", (*posts, ("verdict", "rejected")))] == 1
    assert s[("modq_worker_records_processed_total", (*posts, ("verdict", "failed")))] == 1
    pms = (("queue_class", "private_messages"), ("verdict", "approved"))
    assert s[("modq_worker_records_processed_total", pms)] == 1
    assert s[("modq_worker_records_dead_lettered_total", posts)] == 2
    assert s[("modq_worker_records_failed_total", posts)] == 1
    assert s[("modq_worker_serving", (("queue_class", "topic_posts"),))] == 0
    assert s[("modq_worker_serving", (("queue_class", "private_messages"),))] == 1


def test_histograms_are_cumulative_with_le_inclusive_bounds() -> None:
    metrics = WorkerMetrics("w1")
    metrics.serving("topic_posts")
    for seconds, waited in ((0.005, 0.2), (0.007, 3.0), (0.2, 400.0), (0.001, -1.0)):
        metrics.observe(DECIDED, seconds, waited)
    s = _samples(metrics)
    posts = ("queue_class", "topic_posts")

    def bucket(name: str, le: str) -> float:
        return s[(f"{name}_bucket", tuple(sorted((posts, ("le", le)))))]

    processing = "modq_worker_processing_seconds"
    assert bucket(processing, "0.005") == 2  # 0.001 and 0.005 (le is inclusive)
    assert bucket(processing, "0.01") == 3
    assert bucket(processing, "0.25") == 4
    assert bucket(processing, "+Inf") == 4
    assert s[(f"{processing}_count", (posts,))] == 4
    assert abs(s[(f"{processing}_sum", (posts,))] - 0.213) < 1e-9
    wait = "modq_worker_wait_seconds"
    assert bucket(wait, "0.005") == 1  # a clock skew below zero counts as zero
    assert bucket(wait, "0.25") == 2
    assert bucket(wait, "300.0") == 3
    assert bucket(wait, "+Inf") == 4
