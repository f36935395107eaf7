"""The dashboard's HTTP surface without Kafka: a scripted feed drives the runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from orchestrator.dashboard.app import create_app
from orchestrator.dashboard.broadcast import Broadcaster
from orchestrator.dashboard.runtime import DashboardRuntime, Feed
from orchestrator.dashboard.security import CSP, SESSION_COOKIE, AccessPolicy, host_name
from schemas.codec import encode
from schemas.queues import QueueClass
from schemas.settings import Settings, SettingsError, load_settings
from schemas.visualization import BreakerState, ClassQueueView, KeyQueueView

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-token-value"


class ScriptedFeed:
    """Stands in for the Kafka feed: the test calls ``records``/``status`` itself."""

    def __init__(
        self,
        on_records: Callable[[Sequence[object]], None],
        on_status: Callable[[object], None],
    ) -> None:
        self.records = on_records
        self.status = on_status
        self.consumers_started = 1

    async def __aenter__(self) -> ScriptedFeed:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None


def make_runtime(settings: Settings) -> tuple[DashboardRuntime, list[ScriptedFeed]]:
    feeds: list[ScriptedFeed] = []

    def factory(_s: Settings, on_records: object, on_status: object) -> Feed:
        feed = ScriptedFeed(on_records, on_status)  # type: ignore[arg-type]
        feeds.append(feed)
        return feed

    return DashboardRuntime(settings, clock=lambda: NOW, feed_factory=factory), feeds


def class_record(length: int, breaker: BreakerState = BreakerState.CLOSED) -> bytes:
    return encode(
        ClassQueueView(
            queue=QueueClass.GLOBAL_TOPICS,
            length=length,
            oldest_wait_seconds=1.0,
            avg_wait_seconds=0.5,
            score=3.0,
            workers_assigned=1,
            breaker=breaker,
            in_rate=2.0,
            out_rate=1.0,
            min_workers=1,
            max_workers=1,
            updated_at=NOW - timedelta(seconds=1),
        )
    )


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, DashboardRuntime, ScriptedFeed]]:
    runtime, feeds = make_runtime(Settings())
    async with runtime:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as c:
            yield c, runtime, feeds[0]


async def test_healthz_is_503_until_the_topic_was_read_to_its_end(
    client: tuple[httpx.AsyncClient, DashboardRuntime, ScriptedFeed],
) -> None:
    from orchestrator.dashboard.state import FeedStatus, RawRecord

    http, _runtime, feed = client
    assert (await http.get("/healthz")).status_code == 503
    feed.status(FeedStatus(connected=True, caught_up=False, position=0, end_offset=1))
    assert (await http.get("/healthz")).status_code == 503
    feed.records([RawRecord("global_topics", class_record(5), 0)])
    feed.status(FeedStatus(connected=True, caught_up=True, position=1, end_offset=1))
    ready = await http.get("/healthz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    state = (await http.get("/api/state")).json()
    assert state["classes"][0]["length"] == 5
    assert state["feed"]["status"] == "live"


async def test_metrics_are_queue_gauges_labelled_by_class_and_queue(
    client: tuple[httpx.AsyncClient, DashboardRuntime, ScriptedFeed],
) -> None:
    from orchestrator.dashboard.state import FeedStatus, RawRecord

    http, _runtime, feed = client
    key = KeyQueueView(
        queue="users_a:b",
        queue_class=QueueClass.PRIVATE_MESSAGES,
        pending=4,
        oldest_pending_at=NOW - timedelta(seconds=9),
        updated_at=NOW,
    )
    feed.records(
        [
            RawRecord("global_topics", class_record(7, BreakerState.OPEN), 0),
            RawRecord("users_a:b", encode(key), 1),
        ]
    )
    feed.status(FeedStatus(connected=True, caught_up=True, position=2, end_offset=2))
    text = (await http.get("/metrics")).text
    assert 'modq_queue_length{queue_class="global_topics"} 7.0' in text
    assert 'modq_queue_breaker_state{queue_class="global_topics"} 2.0' in text
    assert 'modq_key_queue_pending{queue="users_a:b"} 4.0' in text
    assert 'modq_key_queue_oldest_wait_seconds{queue="users_a:b"} 9.0' in text
    assert "modq_dashboard_ready 1.0" in text
    assert "modq_dashboard_records_total 2.0" in text


async def test_every_response_carries_the_csp_and_no_inline_script(
    client: tuple[httpx.AsyncClient, DashboardRuntime, ScriptedFeed],
) -> None:
    http, _runtime, _feed = client
    for path in ("/", "/api/state", "/healthz", "/static/app.js"):
        response = await http.get(path)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-content-type-options"] == "nosniff"
    page = (await http.get("/")).text
    assert '<script type="module" src="/static/app.js"></script>' in page
    assert page.count("<script") == 1, "no inline script"
    script = (await http.get("/static/app.js")).text
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script


async def test_host_and_origin_checks(
    client: tuple[httpx.AsyncClient, DashboardRuntime, ScriptedFeed],
) -> None:
    http, _runtime, _feed = client
    assert (await http.get("/api/state", headers={"Host": "evil.example"})).status_code == 403
    assert (await http.get("/events", headers={"Host": "attacker.test:8765"})).status_code == 403
    cross = {"Origin": "http://evil.example"}
    assert (await http.get("/events", headers=cross)).status_code == 403
    assert (await http.get("/api/state", headers=cross)).status_code == 403
    same = {"Origin": "http://127.0.0.1:8765"}
    assert (await http.get("/api/state", headers=same)).status_code == 200
    assert (await http.get("/api/state", headers={"Host": "localhost:8765"})).status_code == 200


async def test_token_guards_everything_but_health_login_and_assets() -> None:
    settings = Settings(dashboard_host="0.0.0.0", dashboard_token=SecretStr(TOKEN))
    runtime, _feeds = make_runtime(settings)
    async with runtime:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://dash.example") as http:
            for path in ("/api/state", "/events", "/metrics"):
                refused = await http.get(path)
                assert refused.status_code == 401, path
                assert refused.headers["www-authenticate"] == "Bearer"
            home = await http.get("/")
            assert (home.status_code, home.headers["location"]) == (303, "/login")
            assert (await http.get("/healthz")).status_code == 503  # public, not yet ready
            assert (await http.get("/static/style.css")).status_code == 200
            assert (await http.get("/login")).status_code == 200

            bearer = {"Authorization": f"Bearer {TOKEN}"}
            assert (await http.get("/api/state", headers=bearer)).status_code == 200
            wrong = {"Authorization": "Bearer nope"}
            assert (await http.get("/api/state", headers=wrong)).status_code == 401

            failed = await http.post("/login", data={"token": "nope"})
            assert (failed.status_code, failed.headers["location"]) == (303, "/login?failed=1")
            assert SESSION_COOKIE not in http.cookies
            login = await http.post("/login", data={"token": TOKEN})
            assert login.status_code == 303
            cookie = login.headers["set-cookie"]
            assert "httponly" in cookie.lower()
            assert "samesite=strict" in cookie.lower()
            assert TOKEN not in cookie
            assert (await http.get("/api/state")).status_code == 200  # the cookie now
            forged = {"Cookie": f"{SESSION_COOKIE}=forged"}
            http.cookies.clear()
            assert (await http.get("/api/state", headers=forged)).status_code == 401
            cross_login = await http.post(
                "/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"}
            )
            assert cross_login.status_code == 403


def test_binding_beyond_loopback_without_a_token_refuses_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MODQ_DASHBOARD_TOKEN", raising=False)
    with pytest.raises(SettingsError) as refused:
        load_settings({"dashboard_host": "0.0.0.0"})
    assert refused.value.setting == "MODQ_DASHBOARD_TOKEN"
    assert load_settings({"dashboard_host": "::1"}).dashboard_host == "::1"
    token = load_settings({"dashboard_host": "0.0.0.0", "dashboard_token": TOKEN})
    assert AccessPolicy.from_settings(token).loopback_only is False


def test_the_command_exits_2_naming_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    monkeypatch.delenv("MODQ_DASHBOARD_TOKEN", raising=False)
    monkeypatch.setenv("MODQ_DASHBOARD_HOST", "0.0.0.0")
    result = CliRunner().invoke(app, ["dashboard"])
    assert result.exit_code == 2
    assert "MODQ_DASHBOARD_TOKEN" in result.output


@pytest.mark.parametrize(
    ("header", "host"),
    [("127.0.0.1:8765", "127.0.0.1"), ("[::1]:80", "::1"), ("localhost", "localhost")],
)
def test_host_name_parsing(header: str, host: str) -> None:
    assert host_name(header) == host


async def test_slow_clients_are_dropped_not_buffered() -> None:
    async with Broadcaster(queue_size=3) as hub:
        fast = hub.subscribe()
        slow = hub.subscribe()
        received: list[bytes] = []

        async def drain() -> None:
            async for message in fast:
                received.append(message)

        reader = asyncio.create_task(drain())
        for i in range(10):
            hub.publish(str(i).encode())
            await asyncio.sleep(0)  # let the fast reader take each one
        assert slow.dropped
        assert hub.clients == 1
        assert hub.dropped_total == 1
        assert [m async for m in slow] == []  # its stream ended; nothing kept for it
    await asyncio.wait_for(reader, timeout=5)
    assert received == [str(i).encode() for i in range(10)]
    with hub.subscribe() as late:
        assert [m async for m in late] == []  # a closed hub ends new streams at once
