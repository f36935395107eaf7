"""Fault injection without root or Docker: signals to processes we started, by pid.

- :func:`kill9` — ``kill -9`` (no drain, no commit, no goodbye to the group);
- :func:`freeze` / :func:`thaw` — ``SIGSTOP`` / ``SIGCONT`` (a zombie: alive, silent, then
  back with stale state), and :func:`frozen` as a context manager that always thaws;
- :func:`kill_broker` / :func:`freeze_broker` / :func:`thaw_broker` — the same for one node of
  a local cluster (:mod:`orchestrator.localkafka.cluster`), and :func:`partition_leader` to
  find which node to hit.

Every function refuses pid 0, 1 and negative pids (which would signal a process group or
init), and says whether the process was there to receive the signal.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka.admin import AdminClient

from orchestrator.localkafka import cluster
from orchestrator.localkafka.cluster import ClusterHandle


def _send(pid: int, sig: int) -> bool:
    if pid <= 1:
        raise ValueError(f"pid: refusing to signal {pid}")
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def kill9(pid: int) -> bool:
    """SIGKILL ``pid``; False if it was already gone. The caller reaps its own child."""
    return _send(pid, signal.SIGKILL)


def freeze(pid: int) -> bool:
    """SIGSTOP ``pid``; False if it was gone."""
    return _send(pid, signal.SIGSTOP)


def thaw(pid: int) -> bool:
    """SIGCONT ``pid``; False if it was gone."""
    return _send(pid, signal.SIGCONT)


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    """``SIGSTOP`` on entry, ``SIGCONT`` on exit, even when the body raises."""
    freeze(pid)
    try:
        yield
    finally:
        thaw(pid)


def kill_broker(handle: ClusterHandle, node_id: int) -> None:
    """kill -9 one node of a local cluster (restart it with ``cluster.restart_node``)."""
    cluster.kill_node(handle, node_id, signal.SIGKILL)


def freeze_broker(handle: ClusterHandle, node_id: int) -> None:
    """SIGSTOP one node of a local cluster."""
    cluster.kill_node(handle, node_id, signal.SIGSTOP)


def thaw_broker(handle: ClusterHandle, node_id: int) -> None:
    """SIGCONT one node of a local cluster."""
    cluster.kill_node(handle, node_id, signal.SIGCONT)


def partition_leader(bootstrap: str, topic: str, partition: int = 0) -> int:
    """The broker id currently leading ``topic``'s ``partition``."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(topic, timeout=10)
    return int(metadata.topics[topic].partitions[partition].leader)
