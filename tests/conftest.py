"""Session fixtures: one real Apache Kafka broker for the whole run, unique names per test.

The broker comes by the project's precedence: ``KAFKA_BOOTSTRAP_SERVERS`` → testcontainers
(when a Docker engine answers) → a local broker from Kafka's own jars on a free port. If none
can be had the run fails loudly: integration tests are never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.broker import docker_available
from orchestrator.kafka_admin import cluster_info, delete_topics
from orchestrator.localkafka import cluster
from orchestrator.provisioning import ensure_topics, topic_specs
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".modq"
ARTIFACTS = ROOT / "test-artifacts"
CLUSTER_NAME = f"pytest-{os.getpid()}"  # concurrent test runs never share (or stop) a broker


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


@pytest.fixture(scope="session")
def kafka_bootstrap(pytestconfig: pytest.Config) -> Iterator[str]:
    """``host:port`` of a real Apache Kafka 4.x broker for this test session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        _say(pytestconfig, f"[modq] Kafka from KAFKA_BOOTSTRAP_SERVERS: {configured}")
        yield configured
        return
    if docker_available():  # pragma: no cover - our CI has no Docker engine
        from testcontainers.kafka import KafkaContainer

        container: Any = KafkaContainer("apache/kafka:4.1.1").with_kraft()
        with container:
            bootstrap = str(container.get_bootstrap_server())
            _say(pytestconfig, f"[modq] Kafka from testcontainers: {bootstrap}")
            yield bootstrap
        return
    try:
        handle = cluster.up(STATE_DIR, name=CLUSTER_NAME, port=cluster.free_port())
    except Exception as exc:
        pytest.fail(f"no Kafka broker could be had for the integration tests: {exc}")
    info = cluster_info({"bootstrap.servers": handle.bootstrap})
    _say(
        pytestconfig,
        f"[modq] started Apache Kafka {handle.kafka_version} from Maven Central jars at "
        f"{handle.bootstrap} (KRaft cluster {info.cluster_id}, controller {info.controller_id})",
    )
    try:
        yield handle.bootstrap
    finally:
        cluster.down(STATE_DIR, name=CLUSTER_NAME, wipe=True)


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, group ids and worker ids of one test."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings pointing at the session broker, with this test's own provisioned topics."""
    s = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{unique}.",
        topic_partitions=3,
        state_dir=tmp_path / "state",
    )
    config = {"bootstrap.servers": kafka_bootstrap}
    specs = topic_specs(s)
    ensure_topics(config, specs)
    yield s
    delete_topics(config, [spec.name for spec in specs])


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave screenshots and reports (ignored by git, kept by CI logs)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the broker are marked ``integration`` so `-m` can select them."""
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
