"""Systems under test, one per process: the modq worker, or the bare passthrough loop.

``python -m bench.sut modq --prefix P [--guarantee G] [--max-in-flight-keys N] [--delay S]``
runs a complete modq worker (:func:`streams.worker.serve_worker`, queue class
``topic_posts``) on the topics of prefix ``P`` until SIGTERM, then drains and exits.

``python -m bench.sut passthrough --prefix P`` is the ceiling: a bare confluent-kafka
consume → produce loop with the same client settings as modq (contract producer, manually
committing consumer in the same group protocol). Per batch of up to 500 records it produces
one record per input to the decisions topic (same key, a value the size of a real decision,
the input's partition and offset in two headers), waits for the acks, then commits the
batch's offsets: at-least-once, no decoding, no policy.

:func:`processor_rate` measures the other ceiling: the per-record work alone, in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from bench.kafka_driver import (
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    bench_settings,
)
from schemas.codec import encode
from schemas.decisions import SourcePosition, Verdict, build_decision
from schemas.queues import QueueClass
from schemas.settings import ProcessingGuarantee, Settings
from schemas.submissions import PostSubmission
from schemas.topics import TopicNames
from streams.loadgen import text_body


def decision_template(names: TopicNames) -> bytes:
    """A real decision's bytes for a typical post (the passthrough writes this size)."""
    post = PostSubmission(
        id="t00000-123",
        submitted_at=datetime.now(UTC),
        topic_id="t00000",
        author_id="u123",
        body=text_body(400, seed=1),
        seq=123,
    )
    decision = build_decision(
        post,
        verdict=Verdict.APPROVED,
        reasons=(),
        decided_at=datetime.now(UTC),
        source=SourcePosition(topic=names.submissions_posts, partition=3, offset=12345),
        worker_id="bench-passthrough",
    )
    return encode(decision)


def processor_rate(count: int, keys: int) -> float:
    """Records per second through :class:`RecordProcessor` with ``RuleBasedPolicy`` in this
    process, one at a time, no Kafka: the CPU cost of the work itself on one core (the
    ceiling of any single-process consumer doing that work)."""
    import time

    from bench.kafka_driver import Workload
    from streams.kafka_io import Record
    from streams.moderation import RuleBasedPolicy
    from streams.processing import RecordProcessor, RetryPolicy

    names = TopicNames.from_prefix("bench.")
    processor = RecordProcessor(
        policy=RuleBasedPolicy(),
        topics=names,
        worker_id="bench-processor",
        retry=RetryPolicy(max_attempts=5, backoff_seconds=0.1),
        max_record_bytes=1_000_000,
        clock=lambda: datetime.now(UTC),
    )
    workload = Workload(keys)
    records = []
    for offset in range(count):
        key, value = workload.next(time.time())
        records.append(Record(names.submissions_posts, 0, offset, key, value, (), 0))

    async def go() -> float:
        start = time.perf_counter()
        for record in records:
            await processor.process(record)
        return count / (time.perf_counter() - start)

    return asyncio.run(go())


def run_passthrough(settings: Settings) -> None:
    """Consume → produce → ack → commit, per batch, until SIGTERM."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from schemas.kafka_config import consumer_config, producer_config

    names = TopicNames.from_prefix(settings.topic_prefix)
    value = decision_template(names)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    consumer: Any = Consumer(
        consumer_config(settings, group_id=f"{settings.topic_prefix}bench.passthrough")
    )
    producer: Any = Producer(producer_config(settings))
    consumer.subscribe([names.submissions_posts])
    try:
        while not stop.is_set():
            msgs = consumer.consume(500, 0.05)
            ends: dict[tuple[str, int], int] = {}
            for msg in msgs:
                if msg.error() is not None:
                    continue
                headers = [
                    (SOURCE_PARTITION_HEADER, b"%d" % msg.partition()),
                    (SOURCE_OFFSET_HEADER, b"%d" % msg.offset()),
                ]
                while True:
                    try:
                        producer.produce(
                            names.decisions, value=value, key=msg.key(), headers=headers
                        )
                        break
                    except BufferError:
                        producer.poll(0.01)
                ends[(msg.topic(), msg.partition())] = msg.offset() + 1
            if ends:
                if producer.flush(30):
                    raise RuntimeError("passthrough: outputs not acknowledged")
                offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
                consumer.commit(offsets=offsets, asynchronous=True)
    finally:
        producer.flush(30)
        consumer.close()


async def run_modq(settings: Settings, delay_seconds: float) -> None:
    """A full modq worker serving ``topic_posts`` until SIGTERM (graceful drain)."""
    from streams.moderation.testing import DelayPolicy
    from streams.worker import serve_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    policy = DelayPolicy(delay_seconds, 0.0, seed=1) if delay_seconds > 0 else None
    await serve_worker(
        settings,
        worker_id="bench-modq",
        initial_class=QueueClass.TOPIC_POSTS,
        stop=stop,
        policy=policy,
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the chosen system until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.sut", description=__doc__)
    parser.add_argument("system", choices=("modq", "passthrough"))
    parser.add_argument("--prefix", required=True)
    parser.add_argument(
        "--guarantee",
        choices=[g.value for g in ProcessingGuarantee],
        default=ProcessingGuarantee.AT_LEAST_ONCE.value,
    )
    parser.add_argument("--max-in-flight-keys", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.0, help="DelayPolicy seconds (0: rules)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = bench_settings(
        args.prefix,
        guarantee=ProcessingGuarantee(args.guarantee),
        max_in_flight_keys=args.max_in_flight_keys,
    )
    if args.system == "passthrough":
        run_passthrough(settings)
    else:
        asyncio.run(run_modq(settings, args.delay))


if __name__ == "__main__":
    main()
