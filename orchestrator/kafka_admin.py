"""The control plane's adapter to confluent-kafka's AdminClient (untyped library, quarantined).

Everything the orchestrator asks the cluster about itself goes through here: metadata,
topic provisioning, descriptions. Functions are synchronous and bounded by a timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from schemas.kafka_config import ConfigValue


class KafkaUnavailableError(RuntimeError):
    """The cluster did not answer within the timeout. ``bootstrap`` names where we looked."""

    def __init__(self, bootstrap: str, detail: str) -> None:
        super().__init__(f"no Kafka broker answered at {bootstrap}: {detail}")
        self.bootstrap = bootstrap
        self.detail = detail


class TopicConflictError(RuntimeError):
    """An existing topic disagrees with its spec in a way modq must not change silently."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"topic {topic}: {reason}")
        self.topic = topic
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """What a metadata request says about the cluster."""

    cluster_id: str | None
    controller_id: int
    broker_ids: tuple[int, ...]
    topics: frozenset[str]


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """One topic as the cluster describes it."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


_LOG = logging.getLogger("modq.kafka.admin")


class _Diagnosis:
    """What librdkafka reported while a request waited: why no broker answered.

    Serves as the client's ``error_cb`` and ``logger`` (log lines still reach :data:`_LOG`).
    librdkafka's messages never contain the SASL password.
    """

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}
        self.closed_in_handshake = False

    def on_error(self, err: Any) -> None:
        self.errors.setdefault(str(err.name()), str(err.str()))

    def log(self, level: int, msg: str, *args: Any) -> None:
        _LOG.log(level, msg, *args)
        text = msg % args if args else msg
        if "closed by peer" in text and "state APIVERSION_QUERY" in text:
            self.closed_in_handshake = True

    def explain(self, protocol: str, fallback: str) -> str:
        """The most telling cause: authentication, then TLS, then a protocol mismatch."""
        if "_AUTHENTICATION" in self.errors:
            return f"authentication failed (_AUTHENTICATION): {self.errors['_AUTHENTICATION']}"
        if "_SSL" in self.errors:
            return f"TLS handshake failed (_SSL): {self.errors['_SSL']}"
        if self.closed_in_handshake:
            return (
                f"the broker closed the connection during the first request: it expects another "
                f"security protocol than {protocol} (MODQ_KAFKA_SECURITY__PROTOCOL)"
            )
        return fallback


def admin_client(config: Mapping[str, ConfigValue], diagnosis: _Diagnosis | None = None) -> Any:
    """A new AdminClient; librdkafka connects lazily on the first request.

    librdkafka's own log lines go to Python logging (not straight to stderr), so a broker
    that is still starting doesn't flood the operator's terminal.
    """
    if diagnosis is None:
        return AdminClient(dict(config), logger=_LOG)
    options: dict[str, Any] = {**config, "error_cb": diagnosis.on_error}
    return AdminClient(options, logger=diagnosis)


def cluster_info(config: Mapping[str, ConfigValue], timeout: float = 5.0) -> ClusterInfo:
    """Send one metadata request; :class:`KafkaUnavailableError` when nobody answers.

    Its ``detail`` names the cause librdkafka reported when there is one: failed SASL
    authentication, a failed TLS handshake (e.g. an untrusted broker certificate), or a
    broker that hung up on the client's security protocol.
    """
    diagnosis = _Diagnosis()
    admin = admin_client(config, diagnosis)
    bootstrap = str(config.get("bootstrap.servers", "?"))
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        admin.poll(0)  # serve the queued error and log callbacks
        protocol = str(config.get("security.protocol", "PLAINTEXT"))
        detail = diagnosis.explain(protocol, str(exc.args[0]))
        raise KafkaUnavailableError(bootstrap, detail) from None
    return ClusterInfo(
        cluster_id=md.cluster_id,
        controller_id=int(md.controller_id),
        broker_ids=tuple(sorted(int(b) for b in md.brokers)),
        topics=frozenset(str(t) for t in md.topics),
    )


def describe_topics(
    config: Mapping[str, ConfigValue], names: Iterable[str], timeout: float = 10.0
) -> dict[str, TopicInfo]:
    """Partition count, replication factor and non-default configs of existing topics."""
    admin = admin_client(config)
    wanted = list(names)
    md = admin.list_topics(timeout=timeout)
    found = [n for n in wanted if n in md.topics and md.topics[n].error is None]
    configs: dict[str, dict[str, str]] = {n: {} for n in found}
    if found:
        futures = admin.describe_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, n) for n in found],
            request_timeout=timeout,
        )
        for resource, fut in futures.items():
            entries = fut.result(timeout=timeout)
            configs[resource.name] = {
                k: str(v.value) for k, v in entries.items() if not v.is_default and v.value
            }
    result: dict[str, TopicInfo] = {}
    for name in found:
        parts = md.topics[name].partitions
        rf = min((len(p.replicas) for p in parts.values()), default=0)
        result[name] = TopicInfo(name, len(parts), rf, configs[name])
    return result


@dataclass(frozen=True, slots=True)
class TopicRequest:
    """A topic to create: name, partition count, replication factor, configs."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


def create_topics(
    config: Mapping[str, ConfigValue], requests: Iterable[TopicRequest], timeout: float = 30.0
) -> list[str]:
    """Create the topics that don't exist yet; return the names created. Idempotent."""
    admin = admin_client(config)
    reqs = list(requests)
    existing = set(admin.list_topics(timeout=timeout).topics)
    todo = [r for r in reqs if r.name not in existing]
    if not todo:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                r.name,
                num_partitions=r.partitions,
                replication_factor=r.replication_factor,
                config=dict(r.config),
            )
            for r in todo
        ],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created: list[str] = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            if err.name() != "TOPIC_ALREADY_EXISTS":  # a concurrent creator won the race
                raise TopicConflictError(name, err.str()) from None
    _await_visible(admin, created, timeout)
    return sorted(created)


def _await_visible(admin: Any, names: list[str], timeout: float) -> None:
    """Return once every topic in ``names`` has a leader for each partition in metadata.

    CreateTopics answers when the controller accepted the topic; brokers learn of it a moment
    later. Callers (and tests) describe or produce right away, so wait for visibility here.
    """
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        md = admin.list_topics(timeout=timeout)
        for name in list(pending):
            topic = md.topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and topic.partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                pending.discard(name)
        if pending:
            time.sleep(0.05)  # metadata propagation has no notification to wait on


def add_partitions(
    config: Mapping[str, ConfigValue], topic: str, total: int, timeout: float = 30.0
) -> None:
    """Grow ``topic`` to ``total`` partitions (callers guard keyed topics)."""
    from confluent_kafka.admin import NewPartitions

    admin = admin_client(config)
    futures = admin.create_partitions([NewPartitions(topic, total)], request_timeout=timeout)
    for fut in futures.values():
        fut.result(timeout=timeout)


def delete_topics(
    config: Mapping[str, ConfigValue], names: Iterable[str], timeout: float = 30.0
) -> None:
    """Delete topics (tests and `modq topics --delete`); missing ones are ignored."""
    admin = admin_client(config)
    wanted = [n for n in names if n in admin.list_topics(timeout=timeout).topics]
    if not wanted:
        return
    for fut in admin.delete_topics(wanted, operation_timeout=timeout).values():
        fut.result(timeout=timeout)
