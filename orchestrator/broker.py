"""Which Kafka to use, by one precedence, for `make run`, `modq kafka up` and the tests.

1. ``KAFKA_BOOTSTRAP_SERVERS`` set: that cluster; nothing is started.
2. Otherwise, where a Docker engine answers: ``docker-compose.kafka.yml`` (Apache Kafka 4.x).
3. Otherwise: a local broker from Apache Kafka's own jars (:mod:`orchestrator.localkafka`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from orchestrator.localkafka import cluster
from schemas.settings import Settings

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.kafka.yml"


class BrokerSource(StrEnum):
    """Where the broker came from."""

    CONFIGURED = "configured"
    DOCKER = "docker"
    LOCAL_JARS = "local-jars"


@dataclass(frozen=True, slots=True)
class BrokerLease:
    """A broker to use; ``started`` says whether we started it (and so must stop it)."""

    bootstrap: str
    source: BrokerSource
    started: bool
    replication_factor: int = 1


def docker_available() -> bool:
    """Whether a Docker engine answers (the client alone is not enough)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def ensure_broker(
    settings: Settings,
    *,
    nodes: int = 1,
    progress: Callable[[str], None] = lambda _m: None,
    allow_docker: bool = True,
) -> BrokerLease:
    """Return a broker by the module's precedence, starting one when needed."""
    if settings.kafka_bootstrap_servers is not None:
        return BrokerLease(settings.kafka_bootstrap_servers, BrokerSource.CONFIGURED, False)
    if allow_docker and nodes == 1 and docker_available() and COMPOSE_FILE.exists():
        progress("starting Apache Kafka with docker compose")
        subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE_FILE), "up", "-d", "--wait"], check=True
        )
        return BrokerLease("127.0.0.1:9092", BrokerSource.DOCKER, True)
    before = cluster.status(settings.state_dir)
    handle = cluster.up(settings.state_dir, nodes=nodes, progress=progress)
    started = before is None and not handle.reused_external
    return BrokerLease(
        handle.bootstrap, BrokerSource.LOCAL_JARS, started, handle.replication_factor
    )


def release_broker(settings: Settings, lease: BrokerLease, *, wipe: bool = False) -> None:
    """Stop the broker if ``lease`` says we started it; otherwise leave it running."""
    if not lease.started:
        return
    if lease.source is BrokerSource.DOCKER:
        subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "down"], check=False)
    elif lease.source is BrokerSource.LOCAL_JARS:
        cluster.down(settings.state_dir, wipe=wipe)
