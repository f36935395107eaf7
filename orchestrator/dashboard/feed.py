"""The dashboard's one Kafka reader (the only module of the dashboard that imports aiokafka).

Reads the compacted, single-partition visualization topic from offset 0 with no consumer
group (nothing is committed; every dashboard process reads the whole topic), then keeps
following it. One reader per dashboard process, however many browsers watch: the runtime fans
the state out in memory.

Connection state comes from the fetcher itself: aiokafka records when a fetch response for the
partition last arrived (``last_poll_timestamp``), which happens every ``fetch_max_wait_ms`` even
when nothing new was written. No response for ``silent_after`` seconds means Kafka is
unreachable; the reader reports that and keeps trying (the client reconnects by itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from orchestrator.dashboard.state import FeedStatus, RawRecord
from schemas.kafka_config import aiokafka_config, bootstrap_servers
from schemas.settings import Settings
from schemas.topics import TopicNames

_LOG = logging.getLogger("modq.dashboard.feed")

RecordSink = Callable[[Sequence[RawRecord]], None]
StatusSink = Callable[[FeedStatus], None]


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """aiokafka's spelling of the security settings (see ``schemas.kafka_config``)."""
    options = aiokafka_config(settings)
    del options["bootstrap_servers"]
    return options


class VisualizationFeed:
    """Async context manager: follows the visualization topic in a background task.

    ``on_records`` receives each batch in offset order; ``on_status`` receives the connection
    status after every poll (about twice a second). Both run on the event loop.
    """

    def __init__(
        self,
        settings: Settings,
        on_records: RecordSink,
        on_status: StatusSink,
        *,
        silent_after: float = 5.0,
        retry_seconds: float = 2.0,
    ) -> None:
        self._settings = settings
        self._topic = TopicNames.from_prefix(settings.topic_prefix).visualization
        self._on_records = on_records
        self._on_status = on_status
        self._silent_after = silent_after
        self._retry = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._next_offset = 0
        self.consumers_started = 0
        """Kafka consumers this feed created (one per connection attempt that succeeded)."""

    @property
    def topic(self) -> str:
        """The topic it reads."""
        return self._topic

    async def __aenter__(self) -> VisualizationFeed:
        self._task = asyncio.create_task(self._run(), name="dashboard-feed")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=bootstrap_servers(self._settings),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id="modq-dashboard",
                fetch_max_wait_ms=250,
                request_timeout_ms=10_000,
                **aiokafka_security(self._settings),
            )
            try:
                await consumer.start()
            except (KafkaError, OSError) as exc:
                self._report_down(f"cannot connect to {bootstrap_servers(self._settings)}", exc)
                await consumer.stop()
                await asyncio.sleep(self._retry)
                continue
            self.consumers_started += 1
            try:
                await self._follow(consumer)
            except (KafkaError, OSError) as exc:
                self._report_down("connection lost", exc)
                await asyncio.sleep(self._retry)
            finally:
                await consumer.stop()

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        tp = TopicPartition(self._topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, self._next_offset)
        started = time.time()
        while True:
            batches = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
            records = batches.get(tp, [])
            if records:
                self._next_offset = records[-1].offset + 1
                self._on_records([_raw(record) for record in records])
            self._on_status(self._status(consumer, tp, started))

    def _status(self, consumer: AIOKafkaConsumer, tp: TopicPartition, started: float) -> FeedStatus:
        polled_ms = consumer.last_poll_timestamp(tp)
        highwater = consumer.highwater(tp)
        heard = polled_ms / 1000 if polled_ms else None
        quiet_since = heard if heard is not None else started
        if time.time() - quiet_since > self._silent_after:
            reason = "no fetch response" if heard is None else "no response"
            return FeedStatus(
                connected=False,
                caught_up=False,
                position=self._next_offset,
                error=f"{reason} for {self._topic} from Kafka",
            )
        if heard is None or highwater is None:
            return FeedStatus(connected=False, caught_up=False, position=self._next_offset)
        return FeedStatus(
            connected=True,
            caught_up=self._next_offset >= highwater,
            position=self._next_offset,
            end_offset=highwater,
        )

    def _report_down(self, what: str, exc: BaseException) -> None:
        _LOG.warning("visualization feed: %s: %s", what, exc)
        self._on_status(
            FeedStatus(
                connected=False,
                caught_up=False,
                position=self._next_offset,
                error=f"{what} ({type(exc).__name__})",
            )
        )


def _raw(record: Any) -> RawRecord:
    key = record.key.decode("utf-8", "replace") if record.key is not None else ""
    return RawRecord(key=key, value=record.value, offset=int(record.offset))
