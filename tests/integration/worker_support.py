"""Helpers for the worker integration tests: publish submissions, read outputs, check order.

Submission ids encode the key and the per-key sequence number (``{key}-{seq}``), so the
ordering checker needs nothing but the decisions: per key, the first occurrences of the
sequence numbers must be increasing, every expected one present (at-least-once may repeat
some; exactly-once must not).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from schemas.codec import decode_decision, encode
from schemas.decisions import Decision
from schemas.kafka_config import producer_config
from schemas.queues import QueueClass
from schemas.settings import Settings
from schemas.submissions import PostSubmission, PrivateMessageSubmission, TopicSubmission
from schemas.topics import TopicNames
from streams.metrics import WorkerMetrics
from streams.moderation import Policy
from streams.processing import RecordProcessor, RetryPolicy
from streams.session import ClassSession
from streams.worker import Worker, serve_worker

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def with_(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with some fields changed (tests only: no re-validation)."""
    return settings.model_copy(update=changes)


def topics_of(settings: Settings) -> TopicNames:
    """The test's topic names."""
    return TopicNames.from_prefix(settings.topic_prefix)


# --- building submissions ---------------------------------------------------------------


def post(key: str, seq: int, body: str = "hello there") -> PostSubmission:
    """A post in forum topic ``key`` whose id is ``{key}-{seq}``."""
    return PostSubmission(
        kind="post",
        id=f"{key}-{seq}",
        submitted_at=NOW,
        seq=seq,
        topic_id=key,
        author_id="u1",
        body=body,
    )


def new_topic(topic_id: str, seq: int = 0) -> TopicSubmission:
    """A new-topic submission whose id is ``{topic_id}-{seq}``."""
    return TopicSubmission(
        kind="topic",
        id=f"{topic_id}-{seq}",
        submitted_at=NOW,
        seq=seq,
        topic_id=topic_id,
        author_id="u1",
        title="a title",
        body="a body",
    )


def message(a: str, b: str, seq: int) -> PrivateMessageSubmission:
    """A private message from ``a`` to ``b`` whose id is ``{a}_{b}-{seq}``."""
    return PrivateMessageSubmission(
        kind="private_message",
        id=f"{a}_{b}-{seq}",
        submitted_at=NOW,
        seq=seq,
        sender_id=a,
        recipient_id=b,
        body="a private body",
    )


def interleaved_posts(keys: int, per_key: int, prefix: str = "k") -> list[PostSubmission]:
    """``keys * per_key`` posts, round-robin over the keys (seq 0..per_key-1 each)."""
    return [post(f"{prefix}{k}", s) for s in range(per_key) for k in range(keys)]


# --- producing and reading --------------------------------------------------------------


def publish(
    settings: Settings,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
) -> int:
    """Produce (key, value) pairs with the contract's producer; returns how many."""
    producer = Producer(producer_config(settings))
    count = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    left = producer.flush(30)
    assert left == 0, f"{left} test record(s) not delivered"
    return count


def publish_submissions(settings: Settings, items: Iterable[Any]) -> int:
    """Produce submissions to their kinds' topics, keyed by ``.key``."""
    names = topics_of(settings)
    by_topic: dict[str, list[tuple[bytes | None, bytes | None]]] = {}
    for item in items:
        topic = names.submission_topic(item.kind)
        by_topic.setdefault(topic, []).append((item.key.encode(), encode(item)))
    return sum(publish(settings, topic, records) for topic, records in by_topic.items())


@dataclass(frozen=True, slots=True)
class Out:
    """One record read back from an output topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


class TopicReader:
    """Reads a whole topic from the beginning (no group), accumulating what it has seen."""

    def __init__(self, settings: Settings, topic: str, *, read_committed: bool = True) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers or "127.0.0.1:9092",
                "group.id": f"reader-{topic}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            }
        )
        meta = self._consumer.list_topics(topic, timeout=10)
        partitions = sorted(meta.topics[topic].partitions)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.records: list[Out] = []

    def poll(self, timeout: float = 0.2) -> int:
        """Read what is there now; returns how many records came."""
        got = 0
        for msg in self._consumer.consume(num_messages=1000, timeout=timeout):
            if msg.error() is not None:
                continue
            raw = msg.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            headers = {k: v.encode() if isinstance(v, str) else (v or b"") for k, v in pairs}
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None
            assert offset is not None
            self.records.append(Out(partition, offset, msg.key(), msg.value(), headers))
            got += 1
        return got

    def read_until(self, done: Callable[[list[Out]], bool], timeout: float) -> list[Out]:
        """Poll until ``done(records)`` or the deadline; returns the records either way."""
        deadline = time.monotonic() + timeout
        while not done(self.records) and time.monotonic() < deadline:
            self.poll()
        return self.records

    def settle(self, quiet: float = 1.0, timeout: float = 10.0) -> list[Out]:
        """Keep reading until nothing new arrives for ``quiet`` seconds (late duplicates)."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < quiet:
            if self.poll():
                last = time.monotonic()
        return self.records

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()


@contextlib.contextmanager
def reader(settings: Settings, topic: str, *, read_committed: bool = True) -> Iterator[TopicReader]:
    """A :class:`TopicReader` that is closed afterwards."""
    r = TopicReader(settings, topic, read_committed=read_committed)
    try:
        yield r
    finally:
        r.close()


async def read_until(r: TopicReader, done: Callable[[list[Out]], bool], within: float) -> list[Out]:
    """:meth:`TopicReader.read_until` without blocking the event loop."""
    deadline = time.monotonic() + within
    while not done(r.records) and time.monotonic() < deadline:
        await asyncio.to_thread(r.poll, 0.2)
    return r.records


def at_least(n: int) -> Callable[[list[Out]], bool]:
    """A ``done`` predicate: at least ``n`` records read."""
    return lambda records: len(records) >= n


def distinct_ids_at_least(n: int) -> Callable[[list[Out]], bool]:
    """A ``done`` predicate: decisions for at least ``n`` distinct submissions."""
    return lambda records: len({decode_decision(r.value).submission_id for r in records}) >= n


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``condition`` until true; fail the test naming ``what`` at the deadline."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


# --- checking order -----------------------------------------------------------------------


def split_id(submission_id: str) -> tuple[str, int]:
    """``{key}-{seq}`` -> (key, seq)."""
    key, _, seq = submission_id.rpartition("-")
    return key, int(seq)


@dataclass
class OrderReport:
    """What the decisions say about per-key order, completeness and duplicates."""

    decisions: list[Decision]
    out_of_order: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def assert_ok(self, *, allow_duplicates: bool) -> None:
        """Fail with a short summary when order or completeness is broken."""
        problems = {
            "out of order": self.out_of_order,
            "missing": self.missing,
            "unexpected": self.unexpected,
        }
        if not allow_duplicates:
            problems["duplicates"] = self.duplicates
        bad = {name: items[:10] for name, items in problems.items() if items}
        counts = {name: len(items) for name, items in problems.items() if items}
        assert not bad, f"{counts}: {bad}"


def check_order(records: Iterable[Out], expected: Mapping[str, int]) -> OrderReport:
    """Check decisions against ``expected`` (key -> number of submissions, seq 0..n-1).

    Order is the order of the decisions topic's partition (a key lives on one partition);
    for each key the first occurrences of the sequence numbers must be 0, 1, 2, ... and a
    repeated decision for a submission is reported as a duplicate.
    """
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    report = OrderReport([decode_decision(r.value) for r in ordered])
    seen: dict[str, list[int]] = {}
    counts: Counter[str] = Counter()
    for decision in report.decisions:
        counts[decision.submission_id] += 1
        if counts[decision.submission_id] > 1:
            report.duplicates.append(decision.submission_id)
            continue
        key, seq = split_id(decision.submission_id)
        if key not in expected or seq >= expected[key]:
            report.unexpected.append(decision.submission_id)
            continue
        seqs = seen.setdefault(key, [])
        if seqs and seq < seqs[-1]:
            report.out_of_order.append(f"{key}: {seq} after {seqs[-1]}")
        seqs.append(seq)
    for key, n in expected.items():
        have = set(seen.get(key, ()))
        report.missing.extend(f"{key}-{s}" for s in range(n) if s not in have)
    return report


# --- running workers in this process ------------------------------------------------------


def processor(settings: Settings, policy: Policy, worker_id: str = "wt") -> RecordProcessor:
    """A record processor as a worker builds it."""
    return RecordProcessor(
        policy=policy,
        topics=topics_of(settings),
        worker_id=worker_id,
        retry=RetryPolicy(settings.max_attempts, settings.retry_backoff_seconds),
        max_record_bytes=settings.max_record_bytes,
        clock=lambda: datetime.now(UTC),
    )


@contextlib.asynccontextmanager
async def running_session(
    settings: Settings,
    queue_class: QueueClass,
    policy: Policy,
    *,
    worker_id: str = "wt",
    max_buffered: int | None = None,
) -> AsyncIterator[ClassSession]:
    """A class session serving in the background; stopped gracefully on exit."""
    session = ClassSession(
        settings,
        worker_id=worker_id,
        queue_class=queue_class,
        processor=processor(settings, policy, worker_id),
        metrics=WorkerMetrics(worker_id),
        max_buffered=max_buffered,
    )
    task = asyncio.create_task(session.serve())
    try:
        yield session
    finally:
        session.request_stop()
        await asyncio.wait_for(task, timeout=60)


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, worker_id: str, queue_class: QueueClass | None, policy: Policy
) -> AsyncIterator[Worker]:
    """A complete worker (control channel, heartbeats) serving in the background."""
    stop = asyncio.Event()
    ready: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_worker(
            settings,
            worker_id=worker_id,
            initial_class=queue_class,
            stop=stop,
            policy=policy,
            on_ready=ready.set_result,
        )
    )
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the start-up error
    worker = await asyncio.wait_for(ready, timeout=30)
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


# --- worker subprocesses ------------------------------------------------------------------


def spawn_worker(
    settings: Settings,
    worker_id: str,
    queue_class: QueueClass,
    log: Path,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``modq worker`` as a child process with the test's settings (its log in ``log``)."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "127.0.0.1:9092",
        "MODQ_TOPIC_PREFIX": settings.topic_prefix,
        "MODQ_PROCESSING_GUARANTEE": settings.processing_guarantee.value,
        "MODQ_STATE_DIR": str(settings.state_dir),
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "orchestrator.cli", "worker", "--id", worker_id]
    argv += ["--class", queue_class.value, "--log-level", "info"]
    with log.open("ab") as sink:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> int:
    """Send ``sig`` and wait for the exit status (kills it if it outlives ``timeout``)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise AssertionError(f"worker did not exit within {timeout}s of {sig.name}") from None
