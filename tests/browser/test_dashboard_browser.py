"""The live page in headless Chromium (Debian's, driven by Playwright) against a real broker.

Each test starts `modq dashboard` as a subprocess on a free port against the test's own topic
prefix, publishes visualization records with the contract's producer settings, and watches
the page change without a reload.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect, sync_playwright
from pydantic import ValidationError

from schemas.codec import encode
from schemas.control import WorkerState
from schemas.decisions import Verdict
from schemas.kafka_config import producer_config
from schemas.queues import QueueClass
from schemas.settings import Settings
from schemas.topics import TopicNames
from schemas.visualization import (
    BreakerState,
    ClassQueueView,
    ControllerDecisionView,
    KeyQueueView,
    VisualizationRecord,
    WorkerEntry,
    WorkerMove,
    WorkerPoolView,
    visualization_key,
)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS_CORPUS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "<svg onload=alert(1)>",
    '"><iframe srcdoc="<script>alert(1)</script>">',
)
LATENCY_UPDATES = 20


class Publisher:
    """One idempotent producer for a test's visualization topic."""

    def __init__(self, settings: Settings) -> None:
        self.topic = TopicNames.from_prefix(settings.topic_prefix).visualization
        self._producer: Any = Producer(producer_config(settings))

    def send(self, *records: VisualizationRecord) -> None:
        for record in records:
            self._producer.produce(
                self.topic, key=visualization_key(record).encode(), value=encode(record)
            )
        assert self._producer.flush(15) == 0


@dataclass
class Watched:
    """What the page did that it must not: dialogs, console errors, uncaught exceptions."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def now() -> datetime:
    return datetime.now(UTC)


def class_view(
    cls: QueueClass,
    length: int,
    breaker: BreakerState = BreakerState.CLOSED,
    rates: tuple[float, float] = (2.0, 1.5),
    updated_at: datetime | None = None,
) -> ClassQueueView:
    return ClassQueueView(
        queue=cls,
        length=length,
        oldest_wait_seconds=length * 0.8,
        avg_wait_seconds=length * 0.3,
        score=length * 1.5,
        workers_assigned=0 if breaker is BreakerState.OPEN else 1,
        breaker=breaker,
        in_rate=rates[0],
        out_rate=rates[1],
        min_workers=0,
        max_workers=1,
        updated_at=updated_at or now(),
    )


def pool() -> WorkerPoolView:
    def entry(wid: str, cls: QueueClass | None, age: float, alive: bool) -> WorkerEntry:
        state = WorkerState.SERVING if cls else WorkerState.IDLE
        return WorkerEntry(
            worker_id=wid,
            queue_class=cls,
            state=state,
            in_flight=3 if alive else 0,
            heartbeat_age_seconds=age,
            alive=alive,
        )

    return WorkerPoolView(
        workers=(
            entry("w1", QueueClass.GLOBAL_TOPICS, 0.4, True),
            entry("w2", QueueClass.TOPIC_POSTS, 0.7, True),
            entry("w3", QueueClass.PRIVATE_MESSAGES, 42.0, False),
        ),
        updated_at=now(),
    )


def key_queue(name: str, pending: int, waited: float) -> KeyQueueView:
    cls = QueueClass.TOPIC_POSTS if name.startswith("topic_") else QueueClass.PRIVATE_MESSAGES
    return KeyQueueView(
        queue=name,
        queue_class=cls,
        pending=pending,
        oldest_pending_at=now() - timedelta(seconds=waited),
        verdicts={Verdict.APPROVED: 12, Verdict.REJECTED: 1},
        updated_at=now(),
    )


def controller(reasons: tuple[str, ...], moves: tuple[WorkerMove, ...]) -> ControllerDecisionView:
    return ControllerDecisionView(
        controller_id="c1",
        leader=True,
        decided_at=now(),
        allocation={
            QueueClass.GLOBAL_TOPICS: ("w1",),
            QueueClass.TOPIC_POSTS: ("w2",),
            QueueClass.PRIVATE_MESSAGES: (),
        },
        moves=moves,
        reasons=reasons,
        updated_at=now(),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def start_dashboard(settings: Settings, tmp_path: Path, bootstrap: str | None = None) -> Any:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap or str(settings.kafka_bootstrap_servers),
        "MODQ_TOPIC_PREFIX": settings.topic_prefix,
        "MODQ_DASHBOARD_HOST": "127.0.0.1",
        "MODQ_DASHBOARD_PORT": str(port),
        "MODQ_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("MODQ_DASHBOARD_TOKEN", None)
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = (tmp_path / "dashboard.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "dashboard"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "dashboard did not answer within 30 s"
            time.sleep(0.1)
    return process, url, log


@pytest.fixture
def dashboard(settings: Settings, tmp_path: Path) -> Iterator[str]:
    process, url, log = start_dashboard(settings, tmp_path)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        log.close()
        assert code == 0, (tmp_path / "dashboard.log").read_text()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Watched]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    watched = Watched()

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    tab.on("dialog", on_dialog)
    tab.on("console", on_console)
    tab.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    yield tab, watched
    context.close()


def field_of(page: Page, queue: str, name: str) -> Any:
    return page.locator(f'[data-queue="{queue}"] [data-field="{name}"]')


def wait_for_length(page: Page, length: int) -> None:
    page.wait_for_function(
        """(n) => {
            const el = document.querySelector('[data-queue="global_topics"] [data-field="length"]');
            return el !== null && el.textContent === String(n);
        }""",
        arg=length,
        polling="raf",
        timeout=10_000,
    )


def test_numbers_change_live_breaker_open_and_update_latency(
    settings: Settings,
    dashboard: str,
    page: tuple[Page, Watched],
    artifacts_dir: Path,
) -> None:
    tab, watched = page
    publisher = Publisher(settings)
    publisher.send(
        class_view(QueueClass.GLOBAL_TOPICS, 4),
        class_view(QueueClass.TOPIC_POSTS, 12, rates=(5.0, 4.0)),
        class_view(QueueClass.PRIVATE_MESSAGES, 3),
        pool(),
        key_queue("topic_1138", 6, 95.0),
        key_queue("topic_42", 2, 12.0),
        key_queue("users_alice:bob", 3, 240.0),
        key_queue("users_carol:dave", 1, 4.0),
        controller(
            ("private_messages starved for 130 s: breaker opened",),
            (
                WorkerMove(
                    worker_id="w3",
                    from_class=QueueClass.PRIVATE_MESSAGES,
                    to_class=None,
                    reason="heartbeat older than 10 s",
                    rule="worker_timeout",
                ),
            ),
        ),
    )
    tab.goto(dashboard)
    tab.evaluate("window.__sameDocument = true")
    expect(field_of(tab, "global_topics", "length")).to_have_text("4")
    expect(tab.locator("body")).to_have_attribute("data-status", "live")

    # The breaker opens: shown as open, in red.
    publisher.send(
        class_view(QueueClass.PRIVATE_MESSAGES, 9, breaker=BreakerState.OPEN, rates=(1.0, 0.0))
    )
    breaker = field_of(tab, "private_messages", "breaker")
    expect(breaker).to_have_text("open")
    expect(breaker).to_have_class("breaker breaker-open")
    expect(breaker).to_have_css("background-color", "rgb(197, 34, 31)")
    expect(field_of(tab, "private_messages", "length")).to_have_text("9")

    # Silent worker stands out; stuck keys oldest first; the filter narrows them.
    expect(tab.locator('tr[data-worker="w3"]')).to_have_class("silent")
    expect(tab.locator('tr[data-worker="w1"]')).not_to_have_class("silent")
    rows = tab.locator("#key-queues tbody tr")
    expect(rows.first).to_have_attribute("data-key", "users_alice:bob")
    tab.fill("#key-filter", "topic_")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-key", "topic_1138")
    tab.fill("#key-filter", "")
    expect(rows).to_have_count(4)
    expect(tab.locator("#decisions")).to_contain_text("breaker opened")
    expect(tab.locator("#decisions")).to_contain_text("w3: private_messages → idle")

    # A rate history builds up in the sparkline as updates arrive; latency measured.
    latencies: list[float] = []
    for i in range(LATENCY_UPDATES):
        length = 100 + i
        rates = (2.0 + (i % 5), 1.0 + (i % 3))
        started = time.perf_counter()
        publisher.send(class_view(QueueClass.GLOBAL_TOPICS, length, rates=rates))
        wait_for_length(tab, length)
        latencies.append(time.perf_counter() - started)
    spark = tab.locator('[data-queue="global_topics"] svg.spark polyline.spark-in')
    expect(spark).to_have_count(1)
    assert len(str(spark.get_attribute("points")).split()) >= LATENCY_UPDATES

    assert tab.evaluate("window.__sameDocument") is True, "the page was never reloaded"
    tab.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)
    ordered = sorted(latencies)
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]  # nearest rank
    figures = {
        "updates": len(latencies),
        "p50_s": statistics.median(latencies),
        "p95_s": p95,
        "max_s": ordered[-1],
        "min_s": ordered[0],
        "samples_s": latencies,
    }
    (artifacts_dir / "dashboard-latency.json").write_text(json.dumps(figures, indent=2))
    assert p95 <= 1.0, figures
    assert watched.dialogs == []
    assert watched.errors == []


def test_untrusted_text_is_shown_literally_never_run(
    settings: Settings, dashboard: str, page: tuple[Page, Watched], artifacts_dir: Path
) -> None:
    tab, watched = page
    for payload in XSS_CORPUS:  # ids and queue names cannot carry markup at all
        with pytest.raises(ValidationError):
            WorkerEntry(
                worker_id=payload,
                state=WorkerState.IDLE,
                in_flight=0,
                heartbeat_age_seconds=0.0,
                alive=True,
            )
    moves = tuple(
        WorkerMove(
            worker_id=f"w{i}",
            from_class=None,
            to_class=QueueClass.TOPIC_POSTS,
            reason=payload,
            rule=payload,
        )
        for i, payload in enumerate(XSS_CORPUS)
    )
    publisher = Publisher(settings)
    publisher.send(class_view(QueueClass.GLOBAL_TOPICS, 1), controller(XSS_CORPUS, moves))
    tab.goto(dashboard)
    decisions = tab.locator("#decisions")
    for payload in XSS_CORPUS:
        # Each payload appears as text: once as a move's rule, once as its reason, once as a
        # controller reason.
        expect(decisions.get_by_text(payload, exact=True)).to_have_count(3)
    injected = tab.locator(
        "main iframe, main img, main script, main [onerror], main [onload], main a[href]"
    )
    expect(injected).to_have_count(0)
    tab.screenshot(path=str(artifacts_dir / "dashboard-xss.png"), full_page=True)
    assert watched.dialogs == []
    assert watched.errors == []


def test_late_topic_and_unreachable_kafka_are_said_not_hidden(
    settings: Settings, dashboard: str, page: tuple[Page, Watched], tmp_path: Path
) -> None:
    tab, _watched = page
    old = now() - timedelta(minutes=10)
    Publisher(settings).send(class_view(QueueClass.GLOBAL_TOPICS, 5, updated_at=old))
    tab.goto(dashboard)
    expect(field_of(tab, "global_topics", "length")).to_have_text("5")
    expect(tab.locator("body")).to_have_attribute("data-status", "stale")
    expect(tab.locator("#feed-message")).to_contain_text("late")
    expect(tab.locator("#feed-message")).to_contain_text("not current")
    expect(tab.locator('[data-queue="global_topics"]')).to_have_class("class-card stale")

    process, url, log = start_dashboard(settings, tmp_path / "dead", bootstrap="127.0.0.1:1")
    try:
        tab.goto(url)
        expect(tab.locator("body")).to_have_attribute("data-status", "disconnected")
        expect(tab.locator("#feed-message")).to_contain_text("Kafka unreachable")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        log.close()
    # The dashboard server itself went away: the open page says so.
    expect(tab.locator("#feed-message")).to_contain_text("reconnecting", timeout=10_000)
