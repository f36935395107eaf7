"""The benchmark driver's Kafka side: feed submissions, read answers back, clean up.

The driver process publishes post submissions (a preloaded backlog, or a steady rate) and
reads the decisions topic from the beginning with a group-less, read-committed consumer on
a thread. The systems under test run in their own processes (:mod:`bench.sut`,
:mod:`bench.faust_agent`), so the driver's Python never competes with theirs for one GIL.

Every submission's (partition, offset) is learnt from its delivery report and mapped to the
wall-clock second it was submitted at; answers name the submission they answer by the same
pair, so completeness, per-key order and latency need no other bookkeeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.checks import Output, Source
from schemas.codec import decode_submission
from schemas.kafka_config import client_config, producer_config
from schemas.settings import ProcessingGuarantee, Settings
from streams.loadgen import text_body

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 6
SOURCE_PARTITION_HEADER = "bench-src-p"
SOURCE_OFFSET_HEADER = "bench-src-o"


def bench_settings(
    prefix: str,
    *,
    guarantee: ProcessingGuarantee = ProcessingGuarantee.AT_LEAST_ONCE,
    max_in_flight_keys: int = 64,
) -> Settings:
    """Settings of one benchmark run: its own topic prefix on the configured broker."""
    return Settings(
        kafka_bootstrap_servers=BOOTSTRAP,
        topic_prefix=prefix,
        topic_partitions=PARTITIONS,
        processing_guarantee=guarantee,
        max_in_flight_keys=max_in_flight_keys,
    )


class Workload:
    """Post submissions of about ``record_bytes`` bytes over ``keys`` forum topics.

    Keys are drawn uniformly (seeded); each key's ``seq`` counts up, and ids are
    ``{key}-{seq}``. Values are built from a template with JSON-encoded bodies (fast enough
    for high offered rates); one sample is checked against the contract's decoder first.
    """

    def __init__(self, keys: int, record_bytes: int = 500, seed: int = 7) -> None:
        self.keys = [f"t{i:05d}" for i in range(keys)]
        self._seq = dict.fromkeys(self.keys, 0)
        self._rng = random.Random(seed)
        overhead = len(self._value("t00000", 0, json.dumps(""), time.time(), "u000"))
        size = max(1, record_bytes - overhead)
        self._bodies = [json.dumps(text_body(size, seed=s)) for s in range(32)]
        sample = self._value("t00000", 0, self._bodies[0], time.time(), "u000")
        decode_submission(sample)  # contract-valid, or fail loudly here
        self.record_bytes = len(sample)

    @staticmethod
    def _value(key: str, seq: int, body_json: str, at: float, author: str) -> bytes:
        """The submission's JSON (keys and authors need no escaping; the body is pre-encoded)."""
        submitted_at = datetime.fromtimestamp(at, UTC).isoformat()
        return (
            f'{{"kind":"post","id":"{key}-{seq}","submitted_at":"{submitted_at}",'
            f'"seq":{seq},"topic_id":"{key}","author_id":"{author}","body":{body_json}}}'
        ).encode()

    def next(self, at: float) -> tuple[bytes, bytes]:
        """The next (key, value), submitted at epoch second ``at``."""
        rng = self._rng
        key = self.keys[rng.randrange(len(self.keys))]
        seq = self._seq[key]
        self._seq[key] = seq + 1
        body = self._bodies[rng.randrange(len(self._bodies))]
        return key.encode(), self._value(key, seq, body, at, f"u{rng.randrange(500):03d}")


class Feeder:
    """Publishes submissions with the contract's producer and remembers when each was sent."""

    def __init__(self, settings: Settings, topic: str, workload: Workload) -> None:
        self._producer: Any = Producer(producer_config(settings))
        self._topic = topic
        self._workload = workload
        self.sent_at: dict[Source, float] = {}
        self.errors = 0

    def _send(self, at: float) -> None:
        key, value = self._workload.next(at)

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                self.errors += 1
            else:
                self.sent_at[(int(msg.partition()), int(msg.offset()))] = at

        while True:
            try:
                self._producer.produce(self._topic, value=value, key=key, on_delivery=delivered)
                return
            except BufferError:
                self._producer.poll(0.01)

    def preload(self, count: int) -> None:
        """Publish ``count`` submissions as fast as possible and wait for every ack."""
        for n in range(count):
            self._send(time.time())
            if n % 1000 == 0:
                self._producer.poll(0)
        self.flush()

    def at_rate(self, rate: float, seconds: float) -> int:
        """Publish at a steady ``rate`` per second for ``seconds``; returns how many."""
        total = max(1, round(rate * seconds))
        start = time.monotonic()
        sent = 0
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while sent < due:
                self._send(time.time())
                sent += 1
            self._producer.poll(0)
            time.sleep(0.002)
        self.flush()
        return sent

    def flush(self) -> None:
        """Wait for every outstanding delivery report."""
        left = int(self._producer.flush(60))
        if left or self.errors:
            raise RuntimeError(f"feeder: {left} undelivered, {self.errors} failed submissions")


def _source(msg: Any) -> Source:
    headers = dict(msg.headers() or ())
    if SOURCE_OFFSET_HEADER in headers:
        return int(headers[SOURCE_PARTITION_HEADER]), int(headers[SOURCE_OFFSET_HEADER])
    source = json.loads(msg.value())["source"]
    return int(source["partition"]), int(source["offset"])


class OutputReader:
    """Reads the decisions topic from the beginning on a thread (read_committed, no group)."""

    def __init__(self, settings: Settings, topic: str, partitions: int = PARTITIONS) -> None:
        config = {
            **client_config(settings),
            "group.id": f"{settings.topic_prefix}bench.reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10,
        }
        self._consumer: Any = Consumer(config)
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self.outputs: list[Output] = []
        self._sources: set[Source] = set()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.last_new_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="bench-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msgs = self._consumer.consume(1000, 0.05)
                now = time.time()
                batch: list[Output] = []
                for msg in msgs:
                    if msg.error() is not None:
                        continue
                    batch.append(
                        Output(
                            partition=int(msg.partition()),
                            offset=int(msg.offset()),
                            key=msg.key(),
                            source=_source(msg),
                            received_s=now,
                        )
                    )
                if batch:
                    with self._cond:
                        before = len(self._sources)
                        self.outputs.extend(batch)
                        self._sources.update(o.source for o in batch)
                        if len(self._sources) > before:
                            self.last_new_at = time.monotonic()
                        self._cond.notify_all()
        finally:
            self._consumer.close()

    @property
    def answered(self) -> int:
        """Distinct submissions answered so far."""
        with self._cond:
            return len(self._sources)

    def wait_for(
        self,
        count: int,
        *,
        stall_s: float,
        on_tick: Callable[[int], None] = lambda _n: None,
        alive: Callable[[], bool] = lambda: True,
    ) -> bool:
        """Wait until ``count`` distinct submissions are answered; False if no new answer
        arrived for ``stall_s`` seconds, or ``alive()`` turned false."""
        self.last_new_at = time.monotonic()
        while True:
            with self._cond:
                self._cond.wait(0.2)
                answered = len(self._sources)
            on_tick(answered)
            if answered >= count:
                return True
            if time.monotonic() - self.last_new_at > stall_s or not alive():
                return False

    def close(self) -> list[Output]:
        """Stop reading; every output read so far."""
        self._stop.set()
        self._thread.join(10)
        with self._cond:
            return list(self.outputs)


def teardown(settings: Settings, groups: tuple[str, ...] = ()) -> None:
    """Delete the run's topics (every name under its prefix, faust's internal ones included)
    and its consumer groups; best effort."""
    from confluent_kafka.admin import AdminClient

    admin: Any = AdminClient(client_config(settings))
    prefix = settings.topic_prefix
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if topics:
        for fut in admin.delete_topics(topics, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # best effort: a benchmark's leftovers
                fut.result(30)
    names = [f"{prefix}modq.topic_posts", f"{prefix}bench.passthrough", *groups]
    with contextlib.suppress(Exception):  # a client or broker without the API: leave them
        for fut in admin.delete_consumer_groups(names, request_timeout=10).values():
            with contextlib.suppress(Exception):  # the group may not exist
                fut.result(10)
