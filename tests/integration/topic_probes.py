"""Probes that read topics back for the publisher and CLI tests (no consumer group joins)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` from the beginning, once ``expected`` are there."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"probe-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is None:
                    records.append(msg)
        return records
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, timeout: float = 30.0) -> int:
    """Records ever written to ``topic`` (sum of high watermarks).

    A topic created moments ago may not have a leader everywhere yet: retry until it does.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe-watermarks"})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                return sum(
                    consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in partitions
                )
            except KafkaException:  # NOT_LEADER_FOR_PARTITION while the topic settles
                if time.monotonic() > deadline:
                    raise
    finally:
        consumer.close()
