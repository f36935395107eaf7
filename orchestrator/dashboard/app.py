"""The dashboard's Starlette app: the page, ``/api/state``, ``/events``, ``/healthz``, ``/metrics``.

Every route reads the one in-memory state of the process's ``DashboardRuntime``; no request
ever touches Kafka. ``/events`` is a Server-Sent Events stream of the same JSON as
``/api/state``: one snapshot on connect, then one per change (and at least one a second).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from orchestrator.dashboard.metrics import Metric, families, registry_for
from orchestrator.dashboard.runtime import DashboardRuntime
from orchestrator.dashboard.security import (
    MAX_LOGIN_BODY,
    AccessPolicy,
    SecurityMiddleware,
    login_page,
    login_result,
    login_token,
)
from orchestrator.dashboard.view import KEY_QUEUE_LIMIT, ViewOptions

STATIC_DIR = Path(__file__).resolve().parent / "static"
NO_STORE = {"Cache-Control": "no-store"}
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
MAX_KEY_LIMIT = 5000


def create_app(runtime: DashboardRuntime, policy: AccessPolicy | None = None) -> Starlette:
    """The ASGI app serving ``runtime``'s state behind ``policy`` (default: from settings)."""
    access = policy or AccessPolicy.from_settings(runtime.settings)

    def metric_source() -> list[Metric]:
        return families(runtime.state, runtime.now(), runtime.broadcaster.clients)

    registry = registry_for(metric_source)

    async def index(_request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=NO_STORE)

    async def api_state(request: Request) -> Response:
        query = request.query_params
        try:
            limit = int(query.get("limit", KEY_QUEUE_LIMIT))
        except ValueError:
            return JSONResponse({"error": "limit: not an integer"}, status_code=400)
        options = ViewOptions(
            stale_after_seconds=runtime.options.stale_after_seconds,
            silent_after_seconds=runtime.options.silent_after_seconds,
            key_limit=max(0, min(limit, MAX_KEY_LIMIT)),
            key_filter=query.get("q", "")[:200],
        )
        return JSONResponse(runtime.view(options), headers=NO_STORE)

    async def events(_request: Request) -> Response:
        async def stream() -> AsyncIterator[bytes]:
            with runtime.broadcaster.subscribe() as subscription:
                yield b"retry: 2000\n\n"
                yield b"data: " + runtime.snapshot() + b"\n\n"
                async for message in subscription:
                    yield b"data: " + message + b"\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def healthz(_request: Request) -> Response:
        feed = runtime.state.feed
        body = {
            "status": "ready" if feed.ready else "loading",
            "kafka_connected": feed.connected,
            "caught_up": feed.caught_up,
        }
        return JSONResponse(body, status_code=200 if feed.ready else 503, headers=NO_STORE)

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)

    async def login_form(request: Request) -> Response:
        return login_page(failed=request.query_params.get("failed") == "1")

    async def login_submit(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BODY:
                return Response("request too large", status_code=413)
        return login_result(access, login_token(body), secure=request.url.scheme == "https")

    routes = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/api/state", api_state, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityMiddleware, policy=access)])
