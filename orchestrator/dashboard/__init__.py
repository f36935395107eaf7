"""The live dashboard (issue 7): queue state from the visualization topic, pushed to browsers.

Layout (functional core, I/O shell):

- ``state.py`` (pure): visualization records and feed status in, ``DashboardState`` out;
- ``view.py`` (pure): the state rendered for a moment ``now`` (ages, staleness, silence);
- ``metrics.py`` (pure): the state as Prometheus gauges;
- ``feed.py``: the one aiokafka consumer, reading the compacted topic from the beginning;
- ``broadcast.py``: bounded in-memory fan-out to every browser;
- ``runtime.py``: feed → state → snapshots; ``app.py``: the Starlette routes;
- ``security.py``: Host/Origin checks, token auth, CSP; ``server.py``: uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schemas.settings import Settings

__all__ = ["run_dashboard_process"]


def run_dashboard_process(settings: Settings) -> int:
    """Serve the dashboard until SIGINT/SIGTERM; returns the process exit status."""
    from orchestrator.dashboard.server import run_dashboard_process as run

    return run(settings)
