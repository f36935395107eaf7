"""The Kafka-native controller: measures queues from offsets, allocates workers, leads via Kafka.

``run_controller_process(settings, controller_id)`` is the entry point of ``modq controller``;
:class:`~orchestrator.controller.runtime.Controller` runs in-process (tests, benchmarks).
Modules: ``measurement`` and ``views`` (pure), ``control_plane`` (pure control-topic state),
``leadership`` (HA through a consumer group), ``kafka_io`` (the only Kafka adapter),
``runtime`` (the tick loop).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from schemas.settings import Settings

_LOG = logging.getLogger("modq.controller")


def run_controller_process(settings: Settings, controller_id: str) -> int:
    """Run one controller until SIGINT/SIGTERM; 0 after a clean stop, 1 after a failure.

    Stopping leaves the controllers' group, so a standby takes over at once.
    """
    from orchestrator.controller.runtime import Controller

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Controller(settings, controller_id).run(stop)

    try:
        asyncio.run(main())
    except Exception:
        _LOG.exception("controller %s failed", controller_id)
        return 1
    return 0
