"""Benchmark of the queue-state app: sustained events/s, visualization lag, memory.

Run: ``.venv/bin/python -m bench.queue_state [--keys 100000] [--lag-rate 300]`` with
``KAFKA_BOOTSTRAP_SERVERS`` set (default 127.0.0.1:9092). It provisions topics under a fresh
prefix, then:

1. backlog: publishes one post per distinct key (``--keys``) and its decision, starts
   `modq queue-state`, and times how fast the app's committed offsets reach the end
   (events/s = submissions + decisions, from the first commit to the last); reads the app's
   RSS at the end (every key drained → deleted after the grace period);
2. lag: publishes submission+decision pairs for new keys at ``--lag-rate`` events/s and
   measures, per decision, the time until its key's tombstone is on the visualization topic.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.machine import rss_mib
from orchestrator.kafka_admin import delete_topics
from orchestrator.provisioning import ensure_topics, topic_specs
from schemas.codec import encode
from schemas.decisions import SourcePosition, Verdict, build_decision
from schemas.settings import Settings
from schemas.submissions import PostSubmission
from schemas.topics import TopicNames
from streams.kafka_io import DataProducer

ROOT = Path(__file__).resolve().parent.parent


def _pair(n: int, tag: str) -> tuple[PostSubmission, bytes, bytes]:
    sub = PostSubmission(
        id=f"{tag}{n}",
        topic_id=f"{tag}{n}",
        author_id="bench",
        body="x" * 200,
        submitted_at=datetime.now(UTC),
    )
    dec = build_decision(
        sub,
        verdict=Verdict.APPROVED,
        decided_at=datetime.now(UTC),
        source=SourcePosition(topic="b", partition=0, offset=0),
        worker_id="bench",
    )
    return sub, encode(sub), encode(dec)


def _committed(consumer: Any, tps: list[Any]) -> int:
    return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--lag-rate", type=float, default=300.0, help="events/s in phase 2")
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    names = TopicNames.from_prefix(prefix)
    ensure_topics({"bootstrap.servers": bootstrap}, topic_specs(settings))
    producer = DataProducer(settings, client_id="bench")
    for n in range(args.keys):
        sub, sv, _ = _pair(n, "k")
        producer.produce(names.submissions_posts, key=sub.key.encode(), value=sv)
    for n in range(args.keys):
        sub, _, dv = _pair(n, "k")
        producer.produce(names.decisions, key=sub.key.encode(), value=dv)
    assert producer.flush(60) == 0
    total = 2 * args.keys
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODQ_")}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MODQ_TOPIC_PREFIX": prefix,
        "MODQ_STATE_DIR": f"/tmp/{prefix}state",
        "MODQ_QUEUE_STATE_EMPTY_GRACE_SECONDS": "2",
        "MODQ_QUEUE_STATE_PUBLISH_INTERVAL": "0.2",
    }
    app = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "queue-state", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    group: Any = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}modq-queue-state"})
    tps = [
        TopicPartition(t, p)
        for t in (names.submissions_posts, names.decisions)
        for p in range(settings.topic_partitions)
    ]
    try:
        started = time.monotonic()
        first = last = None
        first_done = 0
        while True:
            done = _committed(group, tps)
            now = time.monotonic()
            if done and first is None:
                first, first_done = now, done
            if done >= total:
                last = now
                break
            if now - started > 900 or app.poll() is not None:
                raise SystemExit(f"app did not catch up: {done}/{total}")
            time.sleep(0.2)  # bench polling cadence, not test synchronisation
        assert first is not None
        rate = (total - first_done) / max(last - first, 1e-9)
        print(
            f"backlog: {total} events, first commit after {first - started:.1f}s, "
            f"{rate:,.0f} events/s sustained"
        )
        time.sleep(5)  # let the grace sweep run
        print(f"app RSS after {args.keys} distinct keys drained: {rss_mib(app.pid):.0f} MiB")
        lags = _lag_phase(settings, names, args.lag_rate, args.lag_seconds)
        q = statistics.quantiles(lags, n=20)
        print(
            f"lag at {args.lag_rate:.0f} events/s: median {statistics.median(lags) * 1000:.0f} ms,"
            f" p95 {q[18] * 1000:.0f} ms over {len(lags)} decisions"
        )
        print(f"app RSS at the end: {rss_mib(app.pid):.0f} MiB")
    finally:
        group.close()
        app.send_signal(signal.SIGTERM)
        app.wait(60)
        app_id = f"{prefix}modq-queue-state"
        delete_topics(
            {"bootstrap.servers": bootstrap},
            [s.name for s in topic_specs(settings)]
            + [
                f"{app_id}-queue-keys-changelog",
                f"{app_id}-queue-classes-changelog",
                f"{app_id}-__assignor-__leader",
            ],
        )


def _lag_phase(settings: Settings, names: TopicNames, rate: float, seconds: float) -> list[float]:
    sent: dict[str, float] = {}
    lags: list[float] = []
    stop = threading.Event()
    reader: Any = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"lag-{uuid.uuid4().hex}",
        }
    )
    _low, end = reader.get_watermark_offsets(TopicPartition(names.visualization, 0), timeout=10)
    reader.assign([TopicPartition(names.visualization, 0, end)])  # from the current end

    def read() -> None:
        while not stop.is_set():
            for msg in reader.consume(num_messages=1000, timeout=0.2):
                if msg.error() is None and msg.value() is None:
                    at = sent.pop(msg.key().decode(), None)
                    if at is not None:
                        lags.append(time.monotonic() - at)

    thread = threading.Thread(target=read)
    thread.start()
    producer = DataProducer(settings, client_id="bench-lag")
    pairs = int(rate * seconds / 2)
    interval = 2 / rate
    begin = time.monotonic()
    for n in range(pairs):
        sub, sv, dv = _pair(n, "lag")
        producer.produce(names.submissions_posts, key=sub.key.encode(), value=sv)
        producer.produce(names.decisions, key=sub.key.encode(), value=dv)
        sent[f"topic_{sub.topic_id}"] = time.monotonic()
        producer.poll(0)
        delay = begin + (n + 1) * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # paces the load
    producer.flush(30)
    deadline = time.monotonic() + 30
    while sent and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    thread.join()
    reader.close()
    if sent:
        print(f"  {len(sent)} decisions without a tombstone within 30 s")
    return lags


if __name__ == "__main__":
    main()
