"""Publisher throughput: the SDK against a bare confluent-kafka producer loop, side by side.

Run: ``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.publisher``
(``--help`` for the knobs). Every variant uses the contract's producer settings (idempotent,
``acks=all``, murmur2, lz4, linger 5 ms) against the same broker and topic, ~500-byte bodies.
Rounds are interleaved (every variant once per round) so a noisy, shared machine slows all
variants alike, and the order changes from round to round (:func:`round_order`): a variant
that always ran right after the 800k msgs/s ``bare`` loop would pay for the broker's clean-up
of it every time.
Medians and ratios to the baselines are reported and written to ``docs/bench/publisher.md``.

Variants:

- ``bare``: ``Producer.produce(topic, value=..., key=...)`` of pre-encoded bytes, no
  delivery callback, ``poll(0)`` now and then, ``flush`` at the end. The librdkafka ceiling.
  The ``bare`` loops write the call as confluent-kafka's documentation does (keywords).
- ``bare+encode``: the same loop, encoding each model inside it (the work any publisher of
  models must do).
- ``bare+reports``: ``bare+encode`` that also collects each record's (topic, partition,
  offset) from a per-record delivery callback: the SDK's work, as a back end would write it
  by hand. The baseline of the issue's target.
- ``tuned+reports``: ``bare+reports`` with ``produce``'s arguments by position, as the SDK
  passes them (keywords cost ~0.25 us per record): the fastest hand-written loop we know.
- ``tuned+reports, encode first``: the same, but every model is encoded before the first is
  sent, the order the SDK's all-or-nothing validation imposes; so ``sdk`` against it is the
  SDK's own overhead, and it against ``tuned+reports`` is the price of validating first.
- ``sdk-sync`` / ``sdk-async``: ``SyncPublisher.publish_many`` / ``Publisher.publish_many``
  from models: validation, key and topic derivation, a delivery report per record with
  (topic, partition, offset) returned for every one.
- ``sdk-async, one at a time``: ``await Publisher.publish(model)`` per record, from
  :data:`ONE_AT_A_TIME_IN_FLIGHT` tasks at once, as a back end serving that many requests
  would (each task waits for its own acknowledgement; task creation is part of the cost).

The timed part of every variant that returns deliveries includes reading each one back
(:func:`_checked`), which also proves that each record got an offset: the SDK returns a
lazily built sequence, and timing it unread would leave out the cost of its Delivery objects.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import Producer, libversion
from confluent_kafka import __version__ as confluent_version
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from orchestrator.kafka_admin import delete_topics
from orchestrator.provisioning import provision, topic_specs
from schemas.codec import encode
from schemas.kafka_config import client_config, producer_config
from schemas.settings import Settings
from schemas.submissions import PostSubmission
from streams.loadgen import text_body
from streams.publisher import Delivery, Publisher, SyncPublisher

OUTPUT = Path("docs/bench/publisher.md")
VARIANTS = (
    "bare",
    "bare+encode",
    "bare+reports",
    "tuned+reports",
    "tuned+reports, encode first",
    "sdk-sync",
    "sdk-async",
    "sdk-async, one at a time",
)
ONE_AT_A_TIME_IN_FLIGHT = 1000
"""Concurrent ``publish()`` calls in ``sdk-async, one at a time`` (requests a back end serves)."""


def _models(count: int, body_bytes: int, keys: int) -> list[PostSubmission]:
    now = datetime.now(UTC)
    body = text_body(body_bytes, seed=7)
    return [
        PostSubmission(
            id=f"bench-{i}",
            submitted_at=now,
            topic_id=f"topic-{i % keys}",
            author_id=f"user-{i % 97}",
            body=body,
            seq=i // keys,
        )
        for i in range(count)
    ]


def _flush(producer: Any) -> None:
    if producer.flush(60) != 0:
        raise RuntimeError("bare producer: records left unflushed")


class _Reports:
    """Each record's (partition, offset), from a per-record delivery callback."""

    def __init__(self, count: int) -> None:
        self.found: list[tuple[int, int] | None] = [None] * count

    def on_delivery(self, index: int, err: Any, msg: Any) -> None:
        if err is None:
            self.found[index] = (msg.partition(), msg.offset())

    def deliveries(self, topic: str) -> list[tuple[str, int, int]]:
        return [(topic, *where) for where in self.found if where is not None]


def _produce_when_room(producer: Any, topic: str, value: bytes, key: str, callback: Any) -> None:
    """The slow path of every loop: the local buffer was full; serve reports until it takes
    the record."""
    while True:
        producer.poll(0.01)
        try:
            producer.produce(topic, value, key, -1, callback)
            return
        except BufferError:
            continue


# The loops below are written out in full, on purpose: they are what is measured, and a
# helper called per record would slow the baselines down.


def _bare_loop(producer: Any, topic: str, items: list[tuple[str, bytes]]) -> None:
    for n, (key, value) in enumerate(items):
        try:
            producer.produce(topic, value=value, key=key)
        except BufferError:
            _produce_when_room(producer, topic, value, key, None)
        if n % 512 == 0:
            producer.poll(0)
    _flush(producer)


def _bare_encode_loop(
    producer: Any, topic: str, models: list[PostSubmission], *, reports: bool = False
) -> list[tuple[str, int, int]]:
    """Encode and produce each model, the call written as confluent-kafka's documentation
    writes it (keywords); with ``reports``, also collect every record's (topic, partition,
    offset) from its delivery report, the least any publisher that returns deliveries must
    do."""
    collected = _Reports(len(models) if reports else 0)
    for n, model in enumerate(models):
        value = encode(model)
        callback = partial(collected.on_delivery, n) if reports else None
        try:
            producer.produce(topic, value=value, key=model.key, on_delivery=callback)
        except BufferError:
            _produce_when_room(producer, topic, value, model.key, callback)
        if n % 512 == 0:
            producer.poll(0)
    _flush(producer)
    return collected.deliveries(topic)


def _tuned_loop(
    producer: Any, topic: str, models: list[PostSubmission], *, encode_first: bool
) -> list[tuple[str, int, int]]:
    """``bare+reports`` tuned by hand: ``produce``'s arguments by position (keyword parsing
    costs ~0.25 us per record). With ``encode_first``, every model is encoded before the
    first is sent, as a publisher that validates the whole batch first must do."""
    collected = _Reports(len(models))
    items: Iterable[tuple[str, bytes]] = ((m.key, encode(m)) for m in models)
    if encode_first:
        items = list(items)
    for n, (key, value) in enumerate(items):
        callback = partial(collected.on_delivery, n)
        try:
            producer.produce(topic, value, key, -1, callback)
        except BufferError:
            _produce_when_room(producer, topic, value, key, callback)
        if n % 512 == 0:
            producer.poll(0)
    _flush(producer)
    return collected.deliveries(topic)


async def _one_at_a_time(publisher: Publisher, models: list[PostSubmission]) -> list[Delivery]:
    """``publish()`` each model, at most ``ONE_AT_A_TIME_IN_FLIGHT`` awaiting at once."""
    room = asyncio.Semaphore(ONE_AT_A_TIME_IN_FLIGHT)

    async def one(model: PostSubmission) -> Delivery:
        async with room:
            return await publisher.publish(model)

    return await asyncio.gather(*(one(m) for m in models))


def _checked(deliveries: Sequence[tuple[str, int, int] | Delivery], count: int) -> None:
    """Read every delivery back; each of ``count`` records must have an offset."""
    with_offset = sum(1 for delivery in deliveries if delivery[2] >= 0)
    if with_offset != count:
        raise RuntimeError(f"{with_offset} of {count} records came back with an offset")


def round_order(number: int) -> list[str]:
    """The variants in round ``number``'s order: a shuffle seeded by ``number`` (the same
    every run), so that no variant always runs right after the same one."""
    return random.Random(number).sample(VARIANTS, len(VARIANTS))


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(settings: Settings, count: int, rounds: int, body_bytes: int) -> dict[str, list[float]]:
    """msgs/s of every variant, per round."""
    models = _models(count, body_bytes, keys=1000)
    topic = f"{settings.topic_prefix}submissions.posts"
    encoded = [(m.key, encode(m)) for m in models]
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    bare = Producer(producer_config(settings))
    bare_enc = Producer(producer_config(settings))
    for p in (bare, bare_enc):  # connect and get a producer id before timing
        p.produce(topic, value=b"{}", key="warmup")
        p.flush(30)
    loop = asyncio.new_event_loop()
    sync_pub = SyncPublisher(settings)
    async_pub = Publisher(settings)
    try:
        sync_pub.open()
        sync_pub.publish(models[0])
        loop.run_until_complete(async_pub.start())
        loop.run_until_complete(async_pub.publish(models[0]))
        actions: dict[str, Callable[[], object]] = {
            "bare": lambda: _bare_loop(bare, topic, encoded),
            "bare+encode": lambda: _bare_encode_loop(bare_enc, topic, models),
            "bare+reports": lambda: _checked(
                _bare_encode_loop(bare_enc, topic, models, reports=True), count
            ),
            "tuned+reports": lambda: _checked(
                _tuned_loop(bare_enc, topic, models, encode_first=False), count
            ),
            "tuned+reports, encode first": lambda: _checked(
                _tuned_loop(bare_enc, topic, models, encode_first=True), count
            ),
            "sdk-sync": lambda: _checked(sync_pub.publish_many(models), count),
            "sdk-async": lambda: _checked(
                loop.run_until_complete(async_pub.publish_many(models)), count
            ),
            "sdk-async, one at a time": lambda: _checked(
                loop.run_until_complete(_one_at_a_time(async_pub, models)), count
            ),
        }
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("publishing", total=rounds * len(VARIANTS))
            for number in range(rounds):
                for name in round_order(number):
                    progress.update(task, description=f"{name:28}")
                    rates[name].append(count / _timed(actions[name]))
                    progress.advance(task)
    finally:
        sync_pub.close()
        loop.run_until_complete(async_pub.close())
        loop.close()
    return rates


def per_round_ratio(rates: list[float], baseline: list[float]) -> float:
    """The median over rounds of ``rates[i] / baseline[i]`` (runs of the same round)."""
    return statistics.median(r / b for r, b in zip(rates, baseline, strict=True))


def report(rates: dict[str, list[float]], command: str, count: int, rounds: int) -> str:
    """The markdown for docs/bench/publisher.md."""
    base = statistics.median(rates["bare"])
    enc = statistics.median(rates["bare+encode"])
    reports = statistics.median(rates["bare+reports"])
    lines = [
        "# Publisher throughput",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"confluent-kafka {confluent_version}, librdkafka {libversion()[0]}; a shared dev "
        "machine (other work running), single local Apache Kafka 4.1 broker",
        f"- workload: {count} post submissions per round, ~500-byte bodies, 1000 keys, "
        f"{rounds} interleaved rounds; idempotent producer, acks=all, murmur2_random, lz4, "
        "linger.ms=5 for every variant",
        "",
        "| variant | median msgs/s | min | max | vs bare | vs bare+encode | vs bare+reports "
        "| vs bare+reports, per round | vs tuned+reports, per round |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in VARIANTS:
        med = statistics.median(rates[name])
        paired = per_round_ratio(rates[name], rates["bare+reports"])
        tuned = per_round_ratio(rates[name], rates["tuned+reports"])
        lines.append(
            f"| {name} | {med:,.0f} | {min(rates[name]):,.0f} | {max(rates[name]):,.0f} "
            f"| {med / base:.0%} | {med / enc:.0%} | {med / reports:.0%} | {paired:.0%} "
            f"| {tuned:.0%} |"
        )
    lines += [
        "",
        "`bare` produces pre-encoded bytes with no delivery callback; `bare+encode` also "
        "encodes each model in the loop; `bare+reports` also collects each record's "
        "(topic, partition, offset) from a per-record delivery callback: the least any "
        "publisher that returns deliveries does, written as confluent-kafka's documentation "
        "writes the call (keywords), so the fair baseline for the SDK. `tuned+reports` passes "
        "`produce` its arguments by position, as the SDK does; `tuned+reports, encode first` "
        "also encodes every model before sending the first, the order the SDK's "
        "all-or-nothing validation imposes. The SDK variants validate, derive key and topic, "
        "encode, and return a (topic, partition, offset) per record from its delivery "
        "report; `sdk-async, one at a time` awaits `publish()` per record from "
        f"{ONE_AT_A_TIME_IN_FLIGHT:,} tasks at once, as a back end serving that many requests "
        "would. Every variant that returns deliveries reads each one back inside its "
        "timing. *Per round* is the median, over rounds, of the ratio of two runs in the same "
        "round (a pair that met the same machine load).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run against the configured broker, print and write the report."""
    parser = argparse.ArgumentParser(prog="python -m bench.publisher", description=__doc__)
    parser.add_argument("--count", type=int, default=50_000, help="records per round")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--body-bytes", type=int, default=500)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    settings = Settings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}."
    )
    provision(settings)
    try:
        rates = run(settings, args.count, args.rounds, args.body_bytes)
    finally:
        delete_topics(client_config(settings), [s.name for s in topic_specs(settings)])
    command = "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.publisher " + (
        " ".join(sys.argv[1:] if argv is None else argv)
    )
    text = report(rates, command.strip(), args.count, args.rounds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, "utf-8")
    table = Table("variant", "median msgs/s", "vs bare")
    base = statistics.median(rates["bare"])
    for name in VARIANTS:
        med = statistics.median(rates[name])
        table.add_row(name, f"{med:,.0f}", f"{med / base:.0%}")
    Console().print(table)
    Console(stderr=True).print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
