"""A real Apache Kafka 4.x KRaft cluster on loopback, started from Kafka's own jars.

One node (``process.roles=broker,controller``) on 127.0.0.1:9092 by default, or three nodes on
free loopback ports with replication factor 3 and ``min.insync.replicas=2`` for the
reliability scenarios. Each cluster lives in its own folder (``<state>/kafka/<name>``) with a
``cluster.json`` recording the pids we started, so ``down`` stops exactly those processes.

Contract of :func:`up`: idempotent (a running cluster, or any broker already answering on the
requested port, is reused), returns only once every node answers a metadata request, and
raises :class:`BrokerStartError` with the broker's log tail if it does not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.kafka_admin import KafkaUnavailableError, cluster_info
from orchestrator.localkafka.jars import LOG4J_CONFIG, ensure_jars, kafka_version, require_tool
from schemas.kafka_config import ConfigValue

if TYPE_CHECKING:
    from orchestrator.localkafka.security import SecuritySetup

DEFAULT_PORT = 9092
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Broker processes started by this Python process, kept so they can be reaped on stop."""
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


class BrokerStartError(RuntimeError):
    """The local broker did not come up; ``log_tail`` holds the end of its log."""

    def __init__(self, node_dir: Path, reason: str, log_tail: str) -> None:
        super().__init__(f"local Kafka broker in {node_dir} did not start: {reason}\n{log_tail}")
        self.node_dir = node_dir
        self.reason = reason
        self.log_tail = log_tail


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One KRaft node: its id, ports, folder and the pid we started (None when reused)."""

    node_id: int
    port: int
    controller_port: int
    directory: str
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class ClusterHandle:
    """A running local cluster as recorded in ``cluster.json``."""

    name: str
    directory: str
    cluster_id: str
    kafka_version: str
    nodes: tuple[NodeInfo, ...] = field(default_factory=tuple)
    reused_external: bool = False

    @property
    def bootstrap(self) -> str:
        """Comma-separated ``host:port`` list of every node."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def replication_factor(self) -> int:
        """The replication factor topics should use on this cluster."""
        return min(3, len(self.nodes))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def broker_properties(
    node: NodeInfo,
    voters: str,
    replication: int,
    data_dir: Path,
    advertised_port: int | None = None,
) -> dict[str, str]:
    """server.properties of a combined broker+controller tuned for a responsive local test bed.

    ``advertised_port`` (default: the node's own port) is the client port the node tells
    clients and other brokers to use, e.g. a TCP proxy's (``chaos.proxy``) that forwards to it.
    """
    min_isr = "2" if replication >= 3 else "1"
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{advertised_port or node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        # Internal topics sized for one machine; replication matches the node count.
        "offsets.topic.replication.factor": str(replication),
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": str(replication),
        "share.coordinator.state.topic.min.isr": min_isr,
        "default.replication.factor": str(replication),
        "min.insync.replicas": min_isr,
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        # Rebalances noticed well under a second (classic and KIP-848 groups).
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "group.consumer.min.session.timeout.ms": "1000",
        "group.consumer.session.timeout.ms": "6000",
        "group.consumer.min.heartbeat.interval.ms": "250",
        "group.consumer.heartbeat.interval.ms": "250",
        # A 2-core machine: few threads, and transactions that time out quickly in tests.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "transaction.max.timeout.ms": "900000",
        "log.retention.check.interval.ms": "60000",
        "unclean.leader.election.enable": "false",
    }


def _write_properties(path: Path, props: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()), "utf-8")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child still answers kill(0); treat it as gone
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except OSError:
        return True
    return state != "Z"


def _is_our_broker(pid: int, node_dir: str) -> bool:
    """The pid is still the java process we started (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "kafka.Kafka" in cmdline and node_dir in cmdline


def _log_tail(node_dir: Path, lines: int = 40) -> str:
    chunks: list[str] = []
    for name in ("stdout.log", "server.log"):
        path = node_dir / name
        if path.exists():
            text = path.read_text("utf-8", errors="replace").splitlines()[-lines:]
            chunks.append(f"--- {path} ---\n" + "\n".join(text))
    return "\n".join(chunks) or "(no log written)"


def _java_command(java: str, classpath: Path, node_dir: Path) -> list[str]:
    return [
        java,
        "-Xms128m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Dmodq.log.file={node_dir / 'server.log'}",
        f"-Dkafka.logs.dir={node_dir}",
        "-cp",
        f"{classpath}/*",
        "kafka.Kafka",
        str(node_dir / "server.properties"),
    ]


def _load(cluster_dir: Path) -> ClusterHandle | None:
    path = cluster_dir / "cluster.json"
    if not path.exists():
        return None
    raw = json.loads(path.read_text("utf-8"))
    nodes = tuple(NodeInfo(**n) for n in raw.pop("nodes"))
    return ClusterHandle(nodes=nodes, **raw)


def _save(handle: ClusterHandle) -> None:
    path = Path(handle.directory) / "cluster.json"
    data = asdict(handle)
    path.write_text(json.dumps(data, indent=2) + "\n", "utf-8")


def _probe_config(bootstrap: str, security: SecuritySetup | None) -> Mapping[str, ConfigValue]:
    """Client options the readiness probes use: plain, or as the secured cluster's admin."""
    if security is None:
        return {"bootstrap.servers": bootstrap}
    return security.client_config(bootstrap)


def _answers(bootstrap: str, timeout: float, security: SecuritySetup | None = None) -> bool:
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    if host in ("127.0.0.1", "localhost") and not port_open(int(port)):
        return False
    try:
        cluster_info(_probe_config(bootstrap, security), timeout=timeout)
    except KafkaUnavailableError:
        return False
    return True


def status(state_dir: Path, name: str = "default") -> ClusterHandle | None:
    """The recorded cluster if every node we started is alive, else None."""
    handle = _load(state_dir / "kafka" / name)
    if handle is None:
        return None
    for node in handle.nodes:
        if node.pid is None or not _pid_alive(node.pid):
            return None
    return handle


def up(
    state_dir: Path,
    *,
    name: str = "default",
    nodes: int = 1,
    port: int | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    timeout: float = START_TIMEOUT_S,
    advertised_ports: Sequence[int] | None = None,
    security: SecuritySetup | None = None,
) -> ClusterHandle:
    """Start (or reuse) a local KRaft cluster of ``nodes`` nodes; see the module contract.

    ``port`` is the first node's client port: 9092 for a one-node ``default`` cluster, free
    loopback ports otherwise. ``advertised_ports`` (one per node, in node order) makes each
    node advertise that port instead of its own, for a TCP proxy in front of it.
    ``security`` (:func:`orchestrator.localkafka.security.prepare`) makes the client port a
    SASL_SSL listener with SCRAM-SHA-512 users and ACLs enforced; the readiness probes then
    connect as its ``admin``. Without it nothing changes: PLAINTEXT, no authorizer.
    """
    if nodes not in (1, 3):
        raise ValueError(f"nodes: a local cluster has 1 or 3 nodes (got {nodes})")
    cluster_dir = (state_dir / "kafka" / name).resolve()
    running = status(state_dir, name)
    if running is not None and _answers(running.bootstrap, 5.0, security):
        progress(f"reusing local Kafka at {running.bootstrap}")
        return running
    if running is not None:  # alive but deaf: restart it cleanly
        down(state_dir, name=name)
    first_port = port if port is not None else (DEFAULT_PORT if nodes == 1 else free_port())
    if nodes == 1 and port_open(first_port):
        bootstrap = f"127.0.0.1:{first_port}"
        if _answers(bootstrap, 5.0, security):
            progress(f"reusing the Kafka broker already listening on {bootstrap}")
            return ClusterHandle(
                name=name,
                directory=str(cluster_dir),
                cluster_id="unknown",
                kafka_version="unknown",
                nodes=(NodeInfo(1, first_port, 0, str(cluster_dir), None),),
                reused_external=True,
            )
        raise BrokerStartError(
            cluster_dir, f"port {first_port} is taken by something that is not Kafka", ""
        )
    java = require_tool("java")
    progress(f"fetching Apache Kafka {kafka_version()} jars (cached after the first run)")
    classpath = ensure_jars(state_dir / "cache")
    shutil.rmtree(cluster_dir, ignore_errors=True)
    cluster_dir.mkdir(parents=True)
    ports = [first_port] + [free_port() for _ in range(nodes - 1)]
    node_infos = [
        NodeInfo(i + 1, ports[i], free_port(), str(cluster_dir / f"node-{i + 1}"))
        for i in range(nodes)
    ]
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in node_infos)
    cluster_id = _random_cluster_id()
    progress(f"formatting storage (cluster id {cluster_id})")
    for node in node_infos:
        node_dir = Path(node.directory)
        node_dir.mkdir()
        advertised = advertised_ports[node.node_id - 1] if advertised_ports else None
        props = broker_properties(node, voters, min(3, nodes), node_dir / "data", advertised)
        if security is not None:
            props.update(security.broker_overrides(node.port, node.controller_port, advertised))
        _write_properties(node_dir / "server.properties", props)
        node_dir.joinpath("server.properties").chmod(0o600)  # may hold the admin's password
        _format(java, classpath, node_dir, cluster_id, security.format_args() if security else [])
    started: list[NodeInfo] = []
    for node in node_infos:
        node_dir = Path(node.directory)
        with (node_dir / "stdout.log").open("wb") as out:
            proc = subprocess.Popen(
                _java_command(java, classpath, node_dir),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal is ours to forward, not theirs
                cwd=node_dir,
            )
        _CHILDREN[proc.pid] = proc
        started.append(
            NodeInfo(node.node_id, node.port, node.controller_port, node.directory, proc.pid)
        )
    handle = ClusterHandle(name, str(cluster_dir), cluster_id, kafka_version(), tuple(started))
    _save(handle)
    progress(f"waiting for {nodes} node(s) to answer a metadata request")
    _wait_ready(handle, timeout, security)
    return handle


def _random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).

    Never one starting with ``-`` (as Kafka's ``Uuid.randomUuid``): ``kafka-storage format -t``
    would read it as an option.
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format(
    java: str, classpath: Path, node_dir: Path, cluster_id: str, extra: Sequence[str] = ()
) -> None:
    result = subprocess.run(
        [
            java,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dmodq.log.file={node_dir / 'format.log'}",
            "-cp",
            f"{classpath}/*",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(node_dir / "server.properties"),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BrokerStartError(node_dir, "formatting storage failed", result.stdout + result.stderr)


def _wait_ready(
    handle: ClusterHandle, timeout: float, security: SecuritySetup | None = None
) -> None:
    deadline = time.monotonic() + timeout
    pending = list(handle.nodes)
    while pending:
        node = pending[0]
        node_dir = Path(node.directory)
        if node.pid is not None and not _pid_alive(node.pid):
            tail = _log_tail(node_dir)
            down(Path(handle.directory).parent.parent, name=handle.name)
            raise BrokerStartError(node_dir, "the java process exited", tail)
        bootstrap = f"127.0.0.1:{node.port}"
        if _answers(bootstrap, 1.0, security):
            info = cluster_info(_probe_config(bootstrap, security), timeout=2.0)
            if len(info.broker_ids) >= len(handle.nodes):
                pending.pop(0)
                continue
        if time.monotonic() > deadline:
            tail = _log_tail(node_dir)
            down(Path(handle.directory).parent.parent, name=handle.name)
            raise BrokerStartError(node_dir, f"no metadata answer within {timeout:.0f} s", tail)
        time.sleep(0.2)  # polling a condition with a deadline, not synchronising on time


def down(state_dir: Path, *, name: str = "default", wipe: bool = False) -> list[int]:
    """Stop exactly the processes this cluster's ``cluster.json`` says we started.

    SIGTERM first (a controlled shutdown), SIGKILL after :data:`STOP_TIMEOUT_S`. Returns the
    pids stopped. ``wipe`` removes the cluster's folder (data and logs) afterwards.
    """
    cluster_dir = state_dir / "kafka" / name
    handle = _load(cluster_dir)
    stopped: list[int] = []
    if handle is not None and not handle.reused_external:
        victims = [
            n.pid
            for n in handle.nodes
            if n.pid is not None and _pid_alive(n.pid) and _is_our_broker(n.pid, n.directory)
        ]
        for pid in victims:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(_pid_alive(p) for p in victims) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in victims:
            if _pid_alive(pid):
                _signal(pid, signal.SIGKILL)
        for pid in victims:
            _reap(pid)
        stopped = victims
        (cluster_dir / "cluster.json").unlink(missing_ok=True)
    if wipe:
        shutil.rmtree(cluster_dir, ignore_errors=True)
    return stopped


def kill_node(handle: ClusterHandle, node_id: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to one node (fault injection: kill -9, SIGSTOP, SIGCONT)."""
    for node in handle.nodes:
        if node.node_id == node_id and node.pid is not None:
            _signal(node.pid, sig)
            if sig == signal.SIGKILL:
                _reap(node.pid)
            return
    raise ValueError(f"node_id: no node {node_id} in cluster {handle.name}")


def restart_node(
    handle: ClusterHandle, node_id: int, timeout: float = START_TIMEOUT_S
) -> ClusterHandle:
    """Start a node that was killed again, on its old ports and data; returns the new handle."""
    java = require_tool("java")
    classpath = ensure_jars(Path(handle.directory).parent.parent / "cache")
    nodes: list[NodeInfo] = []
    for node in handle.nodes:
        if node.node_id != node_id:
            nodes.append(node)
            continue
        node_dir = Path(node.directory)
        with (node_dir / "stdout.log").open("ab") as out:
            proc = subprocess.Popen(
                _java_command(java, classpath, node_dir),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=node_dir,
            )
        _CHILDREN[proc.pid] = proc
        nodes.append(
            NodeInfo(node.node_id, node.port, node.controller_port, node.directory, proc.pid)
        )
    new = ClusterHandle(
        handle.name, handle.directory, handle.cluster_id, handle.kafka_version, tuple(nodes)
    )
    _save(new)
    _wait_ready(new, timeout)
    return new


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status of a child we started, so no zombie is left behind."""
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT_S)
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def java_processes(handle: ClusterHandle) -> Sequence[int]:
    """The pids of this cluster's nodes that are still alive (for tests and status)."""
    return [n.pid for n in handle.nodes if n.pid is not None and _pid_alive(n.pid)]
