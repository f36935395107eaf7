"""Serving the dashboard: uvicorn in the process's event loop, as an async context manager.

``DashboardServer`` starts the runtime (the Kafka feed) and uvicorn, and on exit ends every
event stream first, so shutdown does not wait for browsers that never hang up.
``run_dashboard_process`` is ``modq dashboard``: SIGINT/SIGTERM stop it cleanly (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from orchestrator.dashboard.app import create_app
from orchestrator.dashboard.runtime import DashboardRuntime
from schemas.settings import Settings
from schemas.topics import TopicNames

_LOG = logging.getLogger("modq.dashboard")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (the owner of the loop decides)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class DashboardServer:
    """Async context manager: the runtime plus uvicorn serving it, until exit."""

    def __init__(
        self,
        settings: Settings,
        *,
        sock: socket.socket | None = None,
        **runtime_options: Any,
    ) -> None:
        self.settings = settings
        self.runtime = DashboardRuntime(settings, **runtime_options)
        self._sock = sock
        config = uvicorn.Config(
            create_app(self.runtime),
            host=settings.dashboard_host,
            port=settings.dashboard_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=3,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the real one when bound to port 0)."""
        for server in self._server.servers:
            for bound in server.sockets:
                return int(bound.getsockname()[1])
        return self.settings.dashboard_port

    async def __aenter__(self) -> DashboardServer:
        await self.runtime.__aenter__()
        sockets = [self._sock] if self._sock is not None else None
        self._task = asyncio.create_task(self._server.serve(sockets), name="dashboard-http")
        while not self._server.started:
            if self._task.done():
                await self.runtime.__aexit__(None, None, None)
                self._task.result()
                raise RuntimeError("the dashboard's HTTP server did not start")
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        try:
            if self._task is not None:
                await self._task
        finally:
            await self.runtime.__aexit__(*exc)

    def stop(self) -> None:
        """End every event stream and ask uvicorn to shut down."""
        self.runtime.broadcaster.close()
        self._server.should_exit = True

    async def wait(self) -> None:
        """Until the server stopped."""
        if self._task is not None:
            await asyncio.shield(self._task)


async def serve(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 1 if the server could not start."""
    loop = asyncio.get_running_loop()
    try:
        async with DashboardServer(settings) as server:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, server.stop)
            _LOG.warning(
                "dashboard on http://%s:%d/ (visualization topic %s)",
                settings.dashboard_host,
                server.port,
                TopicNames.from_prefix(settings.topic_prefix).visualization,
            )
            await server.wait()
    except (OSError, SystemExit) as exc:
        _LOG.error("dashboard could not serve: %s", exc)
        return 1
    return 0


def run_dashboard_process(settings: Settings) -> int:
    """Entry point of `modq dashboard`: serve until a signal, return the exit status."""
    return asyncio.run(serve(settings))
