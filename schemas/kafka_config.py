"""The contract's client settings, in one place, as plain librdkafka/aiokafka option maps.

No Kafka client is imported here: components build their clients in their own adapter
module from these maps. Producers are idempotent with ``acks=all`` and the Java-compatible
murmur2 partitioner, so a key lands on the same partition whichever client wrote it.
"""

from __future__ import annotations

import ssl
from typing import Any

from schemas.settings import SecurityProtocol, Settings

ConfigValue = str | int | float | bool
LOCAL_BOOTSTRAP = "127.0.0.1:9092"


def bootstrap_servers(settings: Settings) -> str:
    """The cluster to talk to: the configured one, else the local broker's address."""
    return settings.kafka_bootstrap_servers or LOCAL_BOOTSTRAP


def client_config(settings: Settings, *, bootstrap: str | None = None) -> dict[str, ConfigValue]:
    """Connection and security options shared by every librdkafka client."""
    sec = settings.kafka_security
    config: dict[str, ConfigValue] = {
        "bootstrap.servers": bootstrap or bootstrap_servers(settings),
        "security.protocol": sec.protocol.value,
        # Loopback brokers resolve instantly; fail fast rather than hang on a typo.
        "socket.connection.setup.timeout.ms": 10_000,
    }
    if sec.protocol in (SecurityProtocol.SASL_SSL, SecurityProtocol.SASL_PLAINTEXT):
        config["sasl.mechanism"] = sec.sasl_mechanism
        if sec.sasl_username is not None:
            config["sasl.username"] = sec.sasl_username
        if sec.sasl_password is not None:
            config["sasl.password"] = sec.sasl_password.get_secret_value()
    if sec.ssl_ca_location is not None:
        config["ssl.ca.location"] = str(sec.ssl_ca_location)
    return config


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """The same connection and security settings in aiokafka's (and faust's) spelling.

    For SSL protocols this builds an ``ssl.SSLContext`` from ``ssl_ca_location`` (the system
    CAs when unset) each time it is called: aiokafka refuses SSL without one.
    """
    sec = settings.kafka_security
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": sec.protocol.value,
    }
    if sec.protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        options["sasl_mechanism"] = sec.sasl_mechanism
        options["sasl_plain_username"] = sec.sasl_username
        if sec.sasl_password is not None:
            options["sasl_plain_password"] = sec.sasl_password.get_secret_value()
    if sec.protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        cafile = None if sec.ssl_ca_location is None else str(sec.ssl_ca_location)
        options["ssl_context"] = ssl.create_default_context(cafile=cafile)
    return options


def producer_config(
    settings: Settings,
    *,
    bootstrap: str | None = None,
    transactional_id: str | None = None,
) -> dict[str, ConfigValue]:
    """The contract's producer: idempotent, ``acks=all``, murmur2 keys, lz4 batches."""
    config = client_config(settings, bootstrap=bootstrap)
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "compression.type": "lz4",
            "linger.ms": 5,
        }
    )
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
    return config


def consumer_config(
    settings: Settings,
    *,
    group_id: str,
    bootstrap: str | None = None,
    read_committed: bool = True,
) -> dict[str, ConfigValue]:
    """A manually committing consumer in ``group_id`` with the configured group protocol.

    KIP-848 (``group.protocol=consumer``) moves only the joining or leaving member's
    partitions; the classic fallback uses cooperative-sticky assignment for the same effect.
    """
    config = client_config(settings, bootstrap=bootstrap)
    config.update(
        {
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            "group.protocol": settings.group_protocol,
        }
    )
    if settings.group_protocol == "classic":
        config["partition.assignment.strategy"] = "cooperative-sticky"
        config["session.timeout.ms"] = 6000
        config["heartbeat.interval.ms"] = 500
    return config
