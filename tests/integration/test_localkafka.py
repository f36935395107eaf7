"""The local Apache Kafka from Maven Central jars: idempotent up, exact down, three nodes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestrator.kafka_admin import TopicRequest, cluster_info, create_topics, describe_topics
from orchestrator.localkafka import cluster
from orchestrator.localkafka.jars import ToolMissingError, ensure_jars

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".modq"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def test_up_is_idempotent_and_down_stops_exactly_its_processes() -> None:
    name = f"life-{os.getpid()}"
    first = cluster.up(STATE, name=name, port=cluster.free_port())
    try:
        pids = cluster.java_processes(first)
        assert len(pids) == 1
        again = cluster.up(STATE, name=name)
        assert again.bootstrap == first.bootstrap
        assert cluster.java_processes(again) == pids  # reused, nothing new started
        assert cluster_info({"bootstrap.servers": first.bootstrap}).broker_ids == (1,)
    finally:
        stopped = cluster.down(STATE, name=name, wipe=True)
    assert stopped == pids
    assert not any(_alive(p) for p in pids)
    assert not (STATE / "kafka" / name).exists()
    assert cluster.status(STATE, name) is None


def test_three_broker_cluster_replicates_topics_three_ways() -> None:
    name = f"three-{os.getpid()}"
    started = time.monotonic()
    handle = cluster.up(STATE, name=name, nodes=3)
    try:
        elapsed = time.monotonic() - started
        config = {"bootstrap.servers": handle.bootstrap}
        assert cluster_info(config).broker_ids == (1, 2, 3)
        topic = "rf3.check"
        create_topics(config, [TopicRequest(topic, 3, handle.replication_factor, {})])
        info = describe_topics(config, [topic])[topic]
        assert info.replication_factor == 3
        print(f"three-node cluster ready in {elapsed:.1f} s")
    finally:
        pids = cluster.java_processes(handle)
        cluster.down(STATE, name=name, wipe=True)
    assert not any(_alive(p) for p in pids)


def test_missing_java_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither java nor mvn on PATH
    with pytest.raises(ToolMissingError) as info:
        ensure_jars(tmp_path / "cache")
    message = str(info.value)
    assert info.value.tool in ("java", "mvn")
    assert "KAFKA_BOOTSTRAP_SERVERS" in message
    assert "docker-compose.kafka.yml" in message


def test_broker_that_dies_fails_with_its_log_tail(tmp_path: Path) -> None:
    blocker = cluster.free_port()
    import socket

    with socket.socket() as sock:  # something that is not Kafka holds the port
        sock.bind(("127.0.0.1", blocker))
        sock.listen()
        with pytest.raises(cluster.BrokerStartError) as info:
            cluster.up(tmp_path, name="blocked", port=blocker, timeout=60)
    assert "not Kafka" in info.value.reason
