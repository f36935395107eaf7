"""`modq run`'s supervisor: restarts crashed children, drains on stop, leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer

from orchestrator.supervisor import ChildSpec, Supervisor
from schemas.codec import decode_control
from schemas.control import WorkerHeartbeat
from schemas.settings import Settings
from schemas.topics import TopicNames

ROOT = Path(__file__).resolve().parents[2]


async def _until(predicate: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_crashed_child_is_restarted_and_stop_terminates_all(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    crash = ChildSpec(
        "crasher",
        ("-c", f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"),
    )
    sleeper = ChildSpec("sleeper", ("-c", "import time; time.sleep(600)"))
    events: list[str] = []
    supervisor = Supervisor(
        [crash, sleeper], env=dict(os.environ), drain_timeout=5, on_event=events.append
    )
    async with supervisor:
        runner = asyncio.create_task(supervisor.run())
        assert await _until(lambda: marker.exists() and len(marker.read_text()) >= 2, 20)
        sleeper_proc = supervisor.children[1].process
        assert sleeper_proc is not None
        supervisor.request_stop()
        await asyncio.wait_for(runner, 15)
    assert supervisor.children[0].restarts >= 1
    assert any("restarting" in e for e in events)
    assert sleeper_proc.returncode is not None  # terminated, not orphaned


def _heartbeats(bootstrap: str, topic: str, timeout: float) -> set[str]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"hb-{os.getpid()}-{time.time()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(seen) < 2:
            for msg in consumer.consume(100, 0.5):
                if msg.error() is None and msg.value():
                    message = decode_control(msg.value())
                    if isinstance(message, WorkerHeartbeat) and message.queue_class:
                        seen.add(message.worker_id)
    finally:
        consumer.close()
    return seen


def test_modq_run_starts_the_pool_and_ctrl_c_leaves_nothing(settings: Settings) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": str(settings.kafka_bootstrap_servers),
        "MODQ_TOPIC_PREFIX": settings.topic_prefix,
        "MODQ_DASHBOARD_PORT": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        topic = TopicNames.from_prefix(settings.topic_prefix).control
        workers = _heartbeats(str(settings.kafka_bootstrap_servers), topic, timeout=60)
        assert workers == {"w1", "w2"}
        children = _children_of(proc.pid)
        assert len(children) >= 2
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


def _children_of(pid: int) -> list[int]:
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
