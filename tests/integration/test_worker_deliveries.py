"""At-least-once barriers on the real broker: a record is reported finished only once its
messages are durable, in send order, and nothing is reported past a failed delivery."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable

from confluent_kafka import Consumer

from orchestrator.kafka_admin import TopicRequest, create_topics
from schemas.kafka_config import client_config
from schemas.settings import Settings
from streams.deliveries import Deliveries, Slot
from streams.kafka_io import TP, DataProducer, KafkaIOError
from streams.processing import OutMessage

SOURCE: TP = ("source", 0)


async def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def topic(settings: Settings, name: str, **config: str) -> str:
    full = f"{settings.topic_prefix}{name}"
    create_topics(client_config(settings), [TopicRequest(full, 2, 1, config)])
    return full


def count_in_log(settings: Settings, name: str, expected: int, within: float = 20.0) -> int:
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": f"{name}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([name])
    seen = 0
    try:
        deadline = time.monotonic() + within
        while seen < expected:
            assert time.monotonic() < deadline, f"only {seen} of {expected} messages in {name}"
            for message in consumer.consume(500, 0.5):
                if message.error() is None:
                    seen += 1
    finally:
        consumer.close()
    return seen


def wired(settings: Settings) -> tuple[Deliveries, list[Slot], list[KafkaIOError]]:
    delivered: list[Slot] = []
    errors: list[KafkaIOError] = []
    deliveries = Deliveries(on_delivered=delivered.extend, on_error=errors.append)
    deliveries.producer_for(lambda **kw: DataProducer(settings, client_id="barrier-test", **kw))
    return deliveries, delivered, errors


async def test_records_finish_in_send_order_once_their_messages_are_in_the_log(
    settings: Settings,
) -> None:
    out = topic(settings, "barrier-out")
    deliveries, delivered, errors = wired(settings)
    slots = [(SOURCE, offset, 0) for offset in range(2_000)]
    serving = asyncio.create_task(deliveries.serve())
    try:
        for i, slot in enumerate(slots):
            messages = (
                OutMessage(out, f"k{i % 17}".encode(), b"x" * 400),
                OutMessage(out, f"k{i % 17}".encode(), b"y" * 100, (("h", b"v"),)),
            )
            deliveries.send(slot, messages)
            if i % 100 == 0:
                await asyncio.sleep(0)  # let barriers start while sending goes on
        await wait_until(lambda: len(delivered) == len(slots), 30.0, "every record finished")
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        deliveries.close()
    assert errors == []
    assert delivered == slots  # each exactly once, in the order sent
    assert count_in_log(settings, out, 2 * len(slots)) == 2 * len(slots)


async def test_nothing_is_finished_past_a_failed_delivery(settings: Settings) -> None:
    ok = topic(settings, "barrier-ok")
    small = topic(settings, "barrier-small", **{"max.message.bytes": "1000"})
    deliveries, delivered, errors = wired(settings)
    first, doomed, after = (SOURCE, 1, 0), (SOURCE, 2, 0), (SOURCE, 3, 0)
    serving = asyncio.create_task(deliveries.serve())
    try:
        deliveries.send(first, (OutMessage(ok, b"a", b"fine"),))
        await wait_until(lambda: delivered == [first], 30.0, "the first record finished")
        # The broker refuses a batch over the topic's max.message.bytes: a failure that
        # only the delivery report shows (the producer itself accepts up to 1 MB). Random
        # bytes, so that compression cannot bring the batch under the limit.
        deliveries.send(doomed, (OutMessage(small, b"b", os.urandom(5_000)),))
        deliveries.send(after, (OutMessage(ok, b"c", b"fine too"),))
        await asyncio.wait_for(serving, 60.0)  # serve returns after the first failure
    finally:
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        deliveries.close()
    assert [e.code for e in errors] == ["MSG_SIZE_TOO_LARGE"]
    assert delivered == [first]
