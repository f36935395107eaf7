"""The dashboard against a real broker: replay from the beginning, live updates, one consumer."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from orchestrator.dashboard.server import DashboardServer
from schemas.codec import encode
from schemas.kafka_config import producer_config
from schemas.queues import QueueClass
from schemas.settings import Settings
from schemas.topics import TopicNames
from schemas.visualization import (
    BreakerState,
    ClassQueueView,
    KeyQueueView,
    VisualizationRecord,
    visualization_key,
)

JSON = dict[str, Any]


def publish(settings: Settings, records: Iterable[VisualizationRecord | tuple[str, None]]) -> None:
    """Produce records (or ``(key, None)`` tombstones) to the visualization topic, flushed."""
    topic = TopicNames.from_prefix(settings.topic_prefix).visualization
    producer: Any = Producer(producer_config(settings))
    for record in records:
        if isinstance(record, tuple):
            producer.produce(topic, key=record[0].encode(), value=None)
        else:
            producer.produce(topic, key=visualization_key(record).encode(), value=encode(record))
    assert producer.flush(15) == 0


def class_view(length: int, breaker: BreakerState = BreakerState.CLOSED) -> ClassQueueView:
    return ClassQueueView(
        queue=QueueClass.GLOBAL_TOPICS,
        length=length,
        oldest_wait_seconds=2.0,
        avg_wait_seconds=1.0,
        score=4.0,
        workers_assigned=1,
        breaker=breaker,
        in_rate=3.0,
        out_rate=2.0,
        min_workers=1,
        max_workers=1,
        updated_at=datetime.now(UTC),
    )


def key_view(topic_id: str, pending: int) -> KeyQueueView:
    return KeyQueueView(
        queue=f"topic_{topic_id}",
        queue_class=QueueClass.TOPIC_POSTS,
        pending=pending,
        oldest_pending_at=datetime.now(UTC) - timedelta(seconds=pending),
        updated_at=datetime.now(UTC),
    )


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def dashboard(settings: Settings) -> AsyncIterator[tuple[DashboardServer, httpx.AsyncClient]]:
    sock = bound_socket()
    try:
        async with DashboardServer(settings, sock=sock) as server:
            base = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                yield server, client
    finally:
        sock.close()


async def until(predicate: Any, within: float = 20.0) -> None:
    """Poll an async predicate until it holds, or fail at the deadline."""
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.05)


async def test_replays_the_compacted_topic_from_the_beginning(settings: Settings) -> None:
    history: list[VisualizationRecord | tuple[str, None]] = [
        key_view(f"t{i}", pending=i + 1) for i in range(200)
    ]
    history += [(f"topic_t{i}", None) for i in range(0, 200, 2)]  # half of them emptied
    history += [class_view(length=n) for n in range(50)]
    publish(settings, history)

    sock = bound_socket()
    try:
        async with (
            DashboardServer(settings, sock=sock) as server,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http,
        ):

            async def ready() -> bool:
                return (await http.get("/healthz")).status_code == 200

            await until(ready)
            state = (await http.get("/api/state", params={"limit": 1000})).json()
    finally:
        sock.close()
    assert state["feed"]["records"] == 350
    assert state["feed"]["lag"] == 0
    assert state["key_queues"]["total"] == 100
    assert {row["queue"] for row in state["key_queues"]["items"]} == {
        f"topic_t{i}" for i in range(1, 200, 2)
    }
    assert state["classes"][0]["length"] == 49
    assert state["key_queues"]["items"][0]["queue"] == "topic_t199"  # oldest pending first


async def test_many_browsers_share_one_consumer_and_all_see_updates(
    settings: Settings, dashboard: tuple[DashboardServer, httpx.AsyncClient]
) -> None:
    server, http = dashboard

    async def ready() -> bool:
        return (await http.get("/healthz")).status_code == 200

    await until(ready)
    clients = 12
    connected = asyncio.Semaphore(0)

    async def follow() -> JSON:
        async with http.stream("GET", "/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            first = True
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if first:
                    first = False
                    connected.release()
                    continue
                view: JSON = json.loads(line.removeprefix("data: "))
                if view["classes"][0].get("length") == 77:
                    return view
        raise AssertionError("stream ended")

    readers = [asyncio.create_task(follow()) for _ in range(clients)]
    for _ in range(clients):
        await asyncio.wait_for(connected.acquire(), timeout=20)
    assert server.runtime.broadcaster.clients == clients
    publish(settings, [class_view(length=77, breaker=BreakerState.OPEN)])
    views = await asyncio.wait_for(asyncio.gather(*readers), timeout=20)

    assert all(v["classes"][0]["breaker"] == "open" for v in views)
    assert server.runtime.consumers_started == 1
    assert server.runtime.state.records == 1  # read once, not once per browser
    metrics = (await http.get("/metrics")).text
    assert 'modq_queue_length{queue_class="global_topics"} 77.0' in metrics


async def test_an_unreachable_broker_is_reported_not_hidden(settings: Settings) -> None:
    dead = settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    sock = bound_socket()
    try:
        async with (
            DashboardServer(dead, sock=sock) as server,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http,
        ):

            async def reported() -> bool:
                feed = (await http.get("/api/state")).json()["feed"]
                return bool(feed["status"] == "disconnected")

            await until(reported)
            feed = (await http.get("/api/state")).json()["feed"]
            health = await http.get("/healthz")
    finally:
        sock.close()
    assert "Kafka unreachable" in feed["message"]
    assert "127.0.0.1:1" in feed["message"]
    assert feed["connected"] is False
    assert health.status_code == 503
    assert health.json()["kafka_connected"] is False
