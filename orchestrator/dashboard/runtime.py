"""The dashboard's I/O shell: one Kafka feed in, one state in memory, snapshots out.

``DashboardRuntime`` owns the feed (the process's only Kafka consumer), the current
``DashboardState`` and the broadcaster. The feed's callbacks fold records and status into the
state through the pure reducer; a publisher task renders the view (``view.py``) when the
state changed, and at least once a second so ages and staleness keep moving, serialises it
once and fans it out to every browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from orchestrator.dashboard.broadcast import Broadcaster
from orchestrator.dashboard.state import (
    DashboardState,
    FeedStatus,
    RawRecord,
    apply_records,
    apply_status,
)
from orchestrator.dashboard.view import JSON, ViewOptions, render
from schemas.settings import Settings

_LOG = logging.getLogger("modq.dashboard")

Clock = Callable[[], datetime]


class Feed(Protocol):
    """What the runtime needs of a feed (``feed.VisualizationFeed``)."""

    consumers_started: int

    async def __aenter__(self) -> Feed: ...

    async def __aexit__(self, *_exc: object) -> None: ...


FeedFactory = Callable[
    [Settings, Callable[[Sequence[RawRecord]], None], Callable[[FeedStatus], None]], Feed
]


def _kafka_feed(
    settings: Settings,
    on_records: Callable[[Sequence[RawRecord]], None],
    on_status: Callable[[FeedStatus], None],
) -> Feed:
    from orchestrator.dashboard.feed import VisualizationFeed

    return VisualizationFeed(settings, on_records, on_status)


def utc_now() -> datetime:
    """The wall clock, timezone-aware."""
    return datetime.now(UTC)


class DashboardRuntime:
    """Async context manager: the live state of one dashboard process."""

    def __init__(
        self,
        settings: Settings,
        *,
        options: ViewOptions | None = None,
        clock: Clock = utc_now,
        feed_factory: FeedFactory = _kafka_feed,
        tick_seconds: float = 1.0,
        min_interval_seconds: float = 0.05,
        queue_size: int = 16,
    ) -> None:
        self.settings = settings
        self.options = options or ViewOptions(silent_after_seconds=settings.worker_timeout_seconds)
        self._clock = clock
        self._state = DashboardState()
        self._dirty = asyncio.Event()
        self._tick = tick_seconds
        self._min_interval = min_interval_seconds
        self.broadcaster = Broadcaster(queue_size=queue_size)
        self._feed = feed_factory(settings, self._on_records, self._on_status)
        self._publisher: asyncio.Task[None] | None = None
        self._snapshot = b""
        self._invalid_logged = 0

    @property
    def state(self) -> DashboardState:
        """The current state."""
        return self._state

    @property
    def ready(self) -> bool:
        """The visualization topic was read to its end at least once."""
        return self._state.feed.ready

    @property
    def consumers_started(self) -> int:
        """Kafka consumers this process created (reconnects only; never per browser)."""
        return self._feed.consumers_started

    def now(self) -> datetime:
        """The runtime's clock."""
        return self._clock()

    def view(self, options: ViewOptions | None = None) -> JSON:
        """The view of the current state now."""
        return render(self._state, self._clock(), options or self.options)

    def snapshot(self) -> bytes:
        """The latest published snapshot (rendered now if none was published yet)."""
        return self._snapshot or _dumps(self.view())

    async def __aenter__(self) -> DashboardRuntime:
        await self.broadcaster.__aenter__()
        await self._feed.__aenter__()
        self._publisher = asyncio.create_task(self._publish_loop(), name="dashboard-publish")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
            self._publisher = None
        await self._feed.__aexit__(*exc)
        await self.broadcaster.__aexit__(*exc)

    def _on_records(self, records: Sequence[RawRecord]) -> None:
        self._state = apply_records(self._state, records, self._clock())
        if self._state.invalid_records > self._invalid_logged:
            _LOG.warning(
                "%d invalid visualization record(s) ignored; latest: %s",
                self._state.invalid_records - self._invalid_logged,
                self._state.last_invalid,
            )
            self._invalid_logged = self._state.invalid_records
        self._dirty.set()

    def _on_status(self, status: FeedStatus) -> None:
        before = self._state
        self._state = apply_status(before, status, self._clock())
        if self._state is not before:
            if before.feed.connected != self._state.feed.connected:
                _LOG.info("Kafka %s", "connected" if status.connected else "unreachable")
            self._dirty.set()

    async def _publish_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    await self._dirty.wait()
            self._dirty.clear()
            self._snapshot = _dumps(self.view())
            self.broadcaster.publish(self._snapshot)
            await asyncio.sleep(self._min_interval)  # coalesce bursts: ≤ 20 snapshots/s


def _dumps(view: JSON) -> bytes:
    return json.dumps(view, separators=(",", ":"), allow_nan=False).encode("utf-8")
