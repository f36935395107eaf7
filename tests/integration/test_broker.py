"""The broker the suite runs against is a real Apache Kafka 4.x in KRaft mode."""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from orchestrator.kafka_admin import TopicRequest, cluster_info, create_topics, describe_topics
from orchestrator.provisioning import ensure_topics, topic_specs
from schemas.settings import Settings


def test_cluster_metadata_comes_from_a_kraft_controller(kafka_bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    desc = admin.describe_cluster(request_timeout=10).result(timeout=10)
    assert desc.cluster_id, "a KRaft cluster has a cluster id"
    assert desc.controller is not None
    assert len(desc.nodes) >= 1
    broker_id = str(desc.nodes[0].id)
    resource = ConfigResource(ConfigResource.Type.BROKER, broker_id)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    roles = configs["process.roles"].value
    assert "broker" in roles, roles  # KRaft: no ZooKeeper, roles are declared
    version = configs.get("inter.broker.protocol.version")
    info = cluster_info({"bootstrap.servers": kafka_bootstrap})
    assert info.cluster_id == desc.cluster_id
    assert version is None or not str(version.value).startswith(("2.", "3."))


def _topic(kafka_bootstrap: str, partitions: int = 3) -> str:
    name = f"roundtrip.{uuid.uuid4().hex[:8]}"
    create_topics({"bootstrap.servers": kafka_bootstrap}, [TopicRequest(name, partitions, 1, {})])
    return name


def test_confluent_kafka_round_trip(kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"}
    )
    sent = [f"m{i}".encode() for i in range(50)]
    for value in sent:
        producer.produce(topic, key=b"k", value=value)
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "group.protocol": "consumer",
        }
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < len(sent) and time.monotonic() < deadline:
            for msg in consumer.consume(100, timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append(bytes(msg.value() or b""))
    finally:
        consumer.close()
    assert got == sent  # one key, one partition: order kept


async def test_aiokafka_round_trip(kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap)
    async with AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all") as producer:
        for i in range(20):
            await producer.send_and_wait(topic, key=b"k", value=f"a{i}".encode())
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    got: list[bytes] = []
    async with consumer:
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend(r.value for r in records if r.value is not None)
    assert got == [f"a{i}".encode() for i in range(20)]


def test_topic_provisioning_is_idempotent(kafka_bootstrap: str, unique: str) -> None:
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=f"p{unique}.")
    config = {"bootstrap.servers": kafka_bootstrap}
    specs = topic_specs(settings)
    first = ensure_topics(config, specs)
    second = ensure_topics(config, specs)
    assert sorted(first.created) == sorted(s.name for s in specs)
    assert second.created == ()
    assert sorted(second.existing) == sorted(s.name for s in specs)
    assert second.drift == ()
    infos = describe_topics(config, [s.name for s in specs])
    viz = f"p{unique}.queues.visualization"
    assert infos[viz].config.get("cleanup.policy") == "compact"
    assert infos[f"p{unique}.submissions.posts"].partitions == settings.topic_partitions
