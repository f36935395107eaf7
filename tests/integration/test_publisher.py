"""The publisher SDK against the real broker: round trips, key parity, bounded failure."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from orchestrator.kafka_admin import delete_topics
from orchestrator.provisioning import ensure_topics, topic_specs
from schemas.codec import decode_submission, encode
from schemas.errors import ContractError
from schemas.settings import Settings
from schemas.submissions import (
    MAX_BODY_LENGTH,
    PostSubmission,
    PrivateMessageSubmission,
    SubmissionModel,
    TopicSubmission,
)
from schemas.topics import TopicNames
from streams.publisher import (
    BatchPublishError,
    Delivery,
    Publisher,
    PublisherClosedError,
    PublisherOptions,
    PublishError,
    SyncPublisher,
    prepare,
    topics_by_kind,
)
from tests.integration.topic_probes import end_offsets, read_topic

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1


def _three_kinds(tag: str) -> list[SubmissionModel]:
    return [
        TopicSubmission(
            id=f"{tag}-t",
            submitted_at=NOW,
            topic_id=f"{tag}.new",
            author_id="u1",
            title="Hi",
            body="",
        ),
        PostSubmission(id=f"{tag}-p", submitted_at=NOW, topic_id="t42", author_id="u1", body="b"),
        PrivateMessageSubmission(
            id=f"{tag}-m", submitted_at=NOW, sender_id="zed", recipient_id="amy", body="psst"
        ),
    ]


def _names(settings: Settings) -> TopicNames:
    return TopicNames.from_prefix(settings.topic_prefix)


async def test_async_round_trip_of_all_three_kinds(settings: Settings) -> None:
    subs = _three_kinds("a")
    async with Publisher(settings) as pub:
        deliveries = [await pub.publish(sub) for sub in subs]
    names = _names(settings)
    for sub, delivery in zip(subs, deliveries, strict=True):
        assert delivery.topic == names.submission_topic(sub.kind)
        assert (delivery.key, delivery.submission_id) == (sub.key, sub.id)
        [record] = read_topic(settings.kafka_bootstrap_servers or "", delivery.topic, 1)
        assert (record.partition(), record.offset()) == (delivery.partition, delivery.offset)
        assert record.key() == sub.key.encode()
        assert decode_submission(record.value()) == sub
    assert deliveries[2].key == "amy:zed"  # derived by the SDK: the pair, sorted


def test_sync_publish_many_mixes_inputs_and_keeps_per_key_order(settings: Settings) -> None:
    posts = [
        PostSubmission(id=f"p{i}", submitted_at=NOW, topic_id="t7", author_id="u", body="x", seq=i)
        for i in range(50)
    ]
    as_mapping = {
        "kind": "topic",
        "id": "map1",
        "submitted_at": NOW,
        "topic_id": "fresh",
        "author_id": "u",
        "title": "From a dict",
        "body": "",
        "extra_field": "kept",
    }
    as_json = (
        '{"kind":"private_message","id":"js1","submitted_at":"2024-05-01T12:00:00Z",'
        '"sender_id":"b","recipient_id":"a","body":"hello"}'
    )
    with SyncPublisher(settings) as pub:
        deliveries = pub.publish_many([*posts, as_mapping, as_json])
        single = pub.publish(posts[0])
    assert [d.submission_id for d in deliveries] == [*(p.id for p in posts), "map1", "js1"]
    post_offsets = [d.offset for d in deliveries[:50]]
    assert post_offsets == sorted(post_offsets)
    assert len({d.partition for d in deliveries[:50]}) == 1
    assert single.offset == post_offsets[-1] + 1
    bootstrap = settings.kafka_bootstrap_servers or ""
    names = _names(settings)
    records = read_topic(bootstrap, names.submissions_posts, 51)
    seqs = [decode_submission(r.value()).seq for r in sorted(records, key=lambda r: r.offset())]
    assert seqs == [*range(50), 0]
    [topic_record] = read_topic(bootstrap, names.submissions_topics, 1)
    decoded = decode_submission(topic_record.value())
    assert decoded.model_extra == {"extra_field": "kept"}
    [pm] = read_topic(bootstrap, names.submissions_private_messages, 1)
    assert pm.key() == b"a:b"


INVALID = [
    (b"{not json", "$"),
    (
        b'{"kind":"post","id":"x","submitted_at":"2024-05-01T12:00:00Z","topic_id":7,'
        b'"author_id":"u","body":"b"}',
        "topic_id",
    ),
    (
        b'{"kind":"post","id":"x","submitted_at":"2024-05-01T12:00:00Z","author_id":"u",'
        b'"body":"b"}',
        "topic_id",
    ),
    (
        b'{"kind":"topic","id":"x","submitted_at":"2024-05-01T12:00:00Z","topic_id":"t",'
        b'"author_id":"u","title":"' + b"T" * 301 + b'","body":""}',
        "title",
    ),
    (
        b'{"kind":"post","id":"x","submitted_at":"2024-05-01T12:00:00Z","topic_id":"t",'
        b'"author_id":"u","body":"' + b"b" * (MAX_BODY_LENGTH + 1) + b'"}',
        "body",
    ),
    (
        b'{"kind":"post","id":"bad id!","submitted_at":"2024-05-01T12:00:00Z","topic_id":"t",'
        b'"author_id":"u","body":"b"}',
        "id",
    ),
    (
        b'{"kind":"post","id":"x","submitted_at":"2024-05-01T12:00:00Z","topic_id":"a:b",'
        b'"author_id":"u","body":"b"}',
        "topic_id",
    ),
    (
        b'{"kind":"private_message","id":"x","submitted_at":"2024-05-01T12:00:00Z",'
        b'"sender_id":"amy","recipient_id":"amy","body":"b"}',
        "recipient_id",
    ),
    (b'{"kind":"reply","id":"x"}', "kind"),
    (
        b'{"kind":"post","id":"x","submitted_at":"yesterday","topic_id":"t","author_id":"u",'
        b'"body":"b"}',
        "submitted_at",
    ),
]


@pytest.mark.parametrize(("raw", "field"), INVALID)
def test_invalid_input_names_the_field_and_is_never_sent(raw: bytes, field: str) -> None:
    topics = topics_by_kind(TopicNames.from_prefix("x."))
    with pytest.raises(ContractError) as caught:
        prepare(raw, topics, 1_000_000)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_an_invalid_record_in_a_batch_stops_the_whole_batch(settings: Settings) -> None:
    good = _three_kinds("g")
    bad = {"kind": "private_message", "id": "x", "submitted_at": NOW, "sender_id": "a"}
    with SyncPublisher(settings) as pub, pytest.raises(ContractError) as caught:
        pub.publish_many([*good, bad])
    assert caught.value.field == "recipient_id"
    bootstrap = settings.kafka_bootstrap_servers or ""
    assert sum(end_offsets(bootstrap, t) for t in _names(settings).submission_topics()) == 0


def test_models_encode_exactly_as_the_codec_does_and_oversize_is_refused() -> None:
    topics = topics_by_kind(TopicNames.from_prefix("x."))
    for sub in _three_kinds("e"):
        assert prepare(sub, topics, 1_000_000).value == encode(sub)
    big = PostSubmission(
        id="big", submitted_at=NOW, topic_id="t", author_id="u", body="b" * MAX_BODY_LENGTH
    )
    with pytest.raises(ContractError) as caught:
        prepare(big, topics, 10_000)
    assert (caught.value.field, caught.value.error_type) == ("$", "oversize")
    with pytest.raises(TypeError):
        prepare(42, topics, 1_000)  # type: ignore[arg-type]


@pytest.fixture
def wide_settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings whose topics have 12 partitions: key→partition parity means something."""
    s = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"w{uuid.uuid4().hex[:10]}.",
        topic_partitions=12,
        state_dir=tmp_path / "state",
    )
    specs = topic_specs(s)
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, specs)
    yield s
    delete_topics({"bootstrap.servers": kafka_bootstrap}, [spec.name for spec in specs])


async def test_keys_land_on_the_partition_aiokafka_and_java_would_choose(
    wide_settings: Settings,
) -> None:
    posts = [
        PostSubmission(
            id=f"k{i}", submitted_at=NOW, topic_id=f"topic-{i}.{i * 7919}", author_id="u", body="b"
        )
        for i in range(150)
    ]
    pms = [
        PrivateMessageSubmission(
            id=f"m{i}",
            submitted_at=NOW,
            sender_id=f"user{i}",
            recipient_id=f"User_{i * 31}",
            body="b",
        )
        for i in range(50)
    ]
    async with Publisher(wide_settings) as pub:
        deliveries = await pub.publish_many([*posts, *pms])
    partitioner = DefaultPartitioner()
    all_partitions = list(range(12))
    expected = [partitioner(d.key.encode(), all_partitions, all_partitions) for d in deliveries]
    assert [d.partition for d in deliveries] == expected
    assert len(set(expected)) == 12  # the keys really spread over the partitions

    # And the real aiokafka client agrees on the wire for a sample of the same keys.
    names = _names(wide_settings)
    producer = AIOKafkaProducer(bootstrap_servers=wide_settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for delivery in deliveries[::10]:
            meta = await producer.send_and_wait(
                names.submissions_posts, b"{}", key=delivery.key.encode()
            )
            assert meta.partition == delivery.partition
    finally:
        await producer.stop()


def _unreachable(tmp_path: Path) -> Settings:
    return Settings(kafka_bootstrap_servers=UNREACHABLE, state_dir=tmp_path / "state")


async def test_unreachable_broker_fails_after_the_delivery_timeout(tmp_path: Path) -> None:
    options = PublisherOptions(delivery_timeout_s=1.5)
    started = time.monotonic()
    async with Publisher(_unreachable(tmp_path), options) as pub:
        with pytest.raises(PublishError) as caught:
            await pub.publish(_three_kinds("u")[1])
    elapsed = time.monotonic() - started
    assert caught.value.code == "_MSG_TIMED_OUT"
    assert caught.value.retriable
    assert (caught.value.topic, caught.value.key) == ("forum.submissions.posts", "t42")
    assert UNREACHABLE in str(caught.value)
    assert 1.0 <= elapsed < 15


def test_buffer_is_bounded_and_close_fails_what_was_never_acknowledged(tmp_path: Path) -> None:
    options = PublisherOptions(
        delivery_timeout_s=60, enqueue_timeout_s=0.3, max_buffered_messages=5, close_timeout_s=0.5
    )
    pub = SyncPublisher(_unreachable(tmp_path), options)
    with pub:
        posts = [
            PostSubmission(id=f"b{i}", submitted_at=NOW, topic_id="t", author_id="u", body="b")
            for i in range(6)
        ]
        futures = [pub.send(p) for p in posts[:5]]
        with pytest.raises(PublishError) as caught:
            pub.send(posts[5])
        assert (caught.value.code, caught.value.retriable) == ("_QUEUE_FULL", True)
        assert not any(f.done() for f in futures)
    # close() flushed for close_timeout_s, then purged: every caller has an answer.
    for future in futures:
        error = future.exception(timeout=0)
        assert isinstance(error, PublishError)
        assert error.code == "_PURGE_QUEUE"
    assert pub.close() == 0  # idempotent
    with pytest.raises(PublisherClosedError):
        pub.send(posts[0])


@pytest.mark.parametrize("front_end", ["sync", "async"])
async def test_publish_many_on_a_full_buffer_reports_which_records_failed(
    tmp_path: Path, front_end: str
) -> None:
    options = PublisherOptions(
        delivery_timeout_s=1.0, enqueue_timeout_s=0.2, max_buffered_messages=3
    )
    posts = [
        PostSubmission(id=f"f{i}", submitted_at=NOW, topic_id="t", author_id="u", body="b")
        for i in range(5)
    ]

    async def publish_all() -> None:
        if front_end == "async":
            async with Publisher(_unreachable(tmp_path), options) as pub:
                await pub.publish_many(posts)
        else:
            with SyncPublisher(_unreachable(tmp_path), options) as sync_pub:
                sync_pub.publish_many(posts)

    started = time.monotonic()
    with pytest.raises(BatchPublishError) as caught:
        await publish_all()
    codes = [getattr(r, "code", None) for r in caught.value.results]
    assert codes == ["_MSG_TIMED_OUT"] * 3 + ["_QUEUE_FULL"] * 2
    assert [getattr(r, "submission_id", None) for r in caught.value.results] == [
        p.id for p in posts
    ]
    assert time.monotonic() - started < 10  # neither the wait for room nor for reports hangs


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic warns before it fails
def test_a_model_that_cannot_be_serialised_fails_from_there_on(settings: Settings) -> None:
    good = [
        PostSubmission(id=f"s{i}", submitted_at=NOW, topic_id="t", author_id="u", body="b")
        for i in range(3)
    ]
    # Built without validation, so its size was not measured and its encoding deferred.
    broken = PostSubmission.model_construct(
        id="bad",
        submitted_at=NOW,
        topic_id="t",
        author_id="u",
        body=object(),  # type: ignore[arg-type]
    )
    with SyncPublisher(settings) as pub, pytest.raises(BatchPublishError) as caught:
        pub.publish_many([good[0], broken, *good[1:]])
    first, *rest = caught.value.results
    assert isinstance(first, Delivery)
    assert [(getattr(r, "code", None), getattr(r, "submission_id", None)) for r in rest] == [
        ("_SERIALIZATION", "bad"),
        ("_SERIALIZATION", "s1"),
        ("_SERIALIZATION", "s2"),
    ]
    assert (
        end_offsets(settings.kafka_bootstrap_servers or "", _names(settings).submissions_posts) == 1
    )


def test_close_flushes_everything_sent(settings: Settings) -> None:
    posts = [
        PostSubmission(id=f"c{i}", submitted_at=NOW, topic_id=f"t{i % 9}", author_id="u", body="b")
        for i in range(500)
    ]
    with SyncPublisher(settings) as pub:
        futures = [pub.send(p) for p in posts]
    # Leaving the block closed the publisher: every send has its acknowledgement.
    deliveries = [f.result(timeout=0) for f in futures]
    assert all(isinstance(d, Delivery) for d in deliveries)
    topic = _names(settings).submissions_posts
    assert end_offsets(settings.kafka_bootstrap_servers or "", topic) == 500


async def test_publish_after_close_is_refused_and_start_close_are_idempotent(
    settings: Settings,
) -> None:
    pub = Publisher(settings)
    with pytest.raises(PublisherClosedError):
        await pub.publish(_three_kinds("n")[0])
    await pub.start()
    await pub.start()
    await pub.close()
    await pub.close()
    with pytest.raises(PublisherClosedError):
        await pub.publish(_three_kinds("n")[0])
