"""The publisher's batch path without a broker: prepare_many, Deliveries and Batch reports."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.codec import encode
from schemas.errors import ContractError
from schemas.submissions import PostSubmission, PrivateMessageSubmission, TopicSubmission
from schemas.topics import TopicNames
from streams.producer_engine import Batch
from streams.publication import (
    BatchPublishError,
    Deliveries,
    Delivery,
    PreparedBatch,
    PublishError,
    SubmissionInput,
    prepare,
    prepare_many,
    topics_by_kind,
)
from streams.publisher import _Handoff

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TOPICS = topics_by_kind(TopicNames.from_prefix("x."))


class _Post(PostSubmission):
    """A subclass of a contract model: not an exact type, so it takes prepare()'s path."""


def _inputs() -> list[SubmissionInput]:
    return [
        TopicSubmission(
            id="t1", submitted_at=NOW, topic_id="new", author_id="u", title="Hi", body="x"
        ),
        PostSubmission(id="p1", submitted_at=NOW, topic_id="t42", author_id="u", body="b", seq=3),
        PrivateMessageSubmission(
            id="m1", submitted_at=NOW, sender_id="zed", recipient_id="amy", body="psst"
        ),
        PostSubmission.model_validate(
            {
                "kind": "post",
                "id": "p2",
                "submitted_at": NOW,
                "topic_id": "t42",
                "author_id": "u",
                "body": "b",
                "newer_field": [1, 2],
            }
        ),
        _Post(id="p3", submitted_at=NOW, topic_id="t7", author_id="u", body="sub"),
        {
            "kind": "post",
            "id": "p4",
            "submitted_at": NOW,
            "topic_id": "t9",
            "author_id": "u",
            "body": "from a mapping",
        },
        '{"kind":"private_message","id":"m2","submitted_at":"2024-05-01T12:00:00Z",'
        '"sender_id":"b","recipient_id":"a","body":"json text"}',
        b'{"kind":"post","id":"p5","submitted_at":"2024-05-01T12:00:00+02:00",'
        b'"topic_id":"t1","author_id":"u","body":"json bytes"}',
    ]


def test_prepare_many_gives_prepare_s_records_in_input_order() -> None:
    inputs = _inputs()
    batch = prepare_many(iter(inputs), TOPICS, 1_000_000)
    expected = [prepare(i, TOPICS, 1_000_000) for i in inputs]
    assert len(batch) == len(inputs)
    assert [batch.outgoing(i) for i in range(len(batch))] == expected
    # The inlined model path serialises exactly as the codec does, extra fields included.
    assert batch.values[3] == encode(inputs[3])  # type: ignore[arg-type]
    assert b'"newer_field":[1,2]' in batch.values[3]
    assert batch.keys[:3] == ["new", "t42", "amy:zed"]
    assert batch.topics[:3] == [TOPICS["topic"], TOPICS["post"], TOPICS["private_message"]]


def test_prepare_many_raises_the_first_invalid_input_s_error() -> None:
    big = PostSubmission(id="big", submitted_at=NOW, topic_id="t", author_id="u", body="b" * 5000)
    with pytest.raises(ContractError) as caught:
        prepare_many([*_inputs(), big], TOPICS, 2_000)
    assert (caught.value.field, caught.value.error_type) == ("$", "oversize")
    bad = {"kind": "private_message", "id": "x", "submitted_at": NOW, "sender_id": "a"}
    with pytest.raises(ContractError) as caught:
        prepare_many([_inputs()[0], bad, big], TOPICS, 2_000)
    assert caught.value.field == "recipient_id"
    assert len(prepare_many([], TOPICS, 2_000)) == 0


def test_models_of_bounded_size_are_encoded_as_they_are_sent_the_others_at_once() -> None:
    inputs = _inputs()
    roomy = prepare_many(inputs, TOPICS, 1_000_000)
    # The three plain contract models wait; extras, a subclass, mappings and JSON are bytes.
    assert [v is None for v in roomy.values] == [True] * 3 + [False] * 5
    assert [m is not None for m in roomy.models] == [True] * 3 + [False] * 5
    assert [roomy.value(i) for i in range(3)] == [encode(m) for m in inputs[:3]]  # type: ignore[arg-type]
    # A limit below the classes' bound: every model is measured (and encoded) up front.
    tight = prepare_many(inputs, TOPICS, 100_000)
    assert all(v is not None for v in tight.values)
    assert [tight.value(i) for i in range(len(tight))] == [
        roomy.value(i) for i in range(len(roomy))
    ]
    huge_seq = PostSubmission(
        id="s", submitted_at=NOW, topic_id="t", author_id="u", body="b", seq=10**30
    )
    assert prepare_many([huge_seq], TOPICS, 1_000_000).values[0] == encode(huge_seq)


def _deliveries(n: int) -> Deliveries:
    return Deliveries(
        [f"top{i}" for i in range(n)],
        list(range(n)),
        [10 * i for i in range(n)],
        [f"k{i}" for i in range(n)],
        [f"id{i}" for i in range(n)],
    )


def test_deliveries_read_like_a_list_of_delivery() -> None:
    d = _deliveries(5)
    as_list = [Delivery(f"top{i}", i, 10 * i, f"k{i}", f"id{i}") for i in range(5)]
    assert len(d) == 5
    assert d[0] == as_list[0]
    assert d[-1] == as_list[-1]
    assert isinstance(d[2], Delivery)
    assert d[2].offset == 20
    assert list(d) == as_list
    assert d == as_list
    assert d == tuple(as_list)
    assert d != as_list[:4]
    assert d != "not deliveries"
    assert isinstance(d[1:3], Deliveries)
    assert d[1:3] == as_list[1:3]
    assert d[::2] == as_list[::2]
    assert d.index(as_list[3]) == 3
    assert as_list[4] in d
    assert repr(_deliveries(1)) == f"Deliveries({as_list[:1]!r})"
    with pytest.raises(IndexError):
        d[5]
    with pytest.raises(TypeError):
        hash(d)
    with pytest.raises(ValueError, match="columns differ"):
        Deliveries(["t"], [0], [1], ["k"], [])


class _Msg:
    def __init__(self, partition: int, offset: int) -> None:
        self._where = (partition, offset)

    def partition(self) -> int:
        return self._where[0]

    def offset(self) -> int:
        return self._where[1]


class _Err:
    def name(self) -> str:
        return "MSG_SIZE_TOO_LARGE"

    def str(self) -> str:
        return "Broker: Message size too large"

    def retriable(self) -> bool:
        return False

    def fatal(self) -> bool:
        return False


def _records(n: int) -> PreparedBatch:
    return PreparedBatch(
        topics=[f"top{i}" for i in range(n)],
        keys=[f"k{i}" for i in range(n)],
        values=[b"v"] * n,
        models=[None] * n,
        submission_ids=[f"id{i}" for i in range(n)],
    )


def test_batch_reports_in_any_order_become_deliveries_in_input_order() -> None:
    done: list[int] = []
    batch = Batch(_records(4), "hint", lambda: done.append(1))
    for index in (2, 0, 3):
        batch.report(index, None, _Msg(index % 2, 100 + index))
    assert done == []
    batch.report(1, None, _Msg(1, 101))
    assert done == [1]
    assert batch.outcome() == [
        Delivery(f"top{i}", i % 2, 100 + i, f"k{i}", f"id{i}") for i in range(4)
    ]


def test_a_failed_report_and_abandoned_records_fail_the_batch_naming_each() -> None:
    done: list[int] = []
    batch = Batch(_records(4), "hint", lambda: done.append(1))
    batch.report(0, None, _Msg(0, 7))
    batch.report(1, _Err(), None)
    gave_up = PublishError("top2", "k2", "_QUEUE_FULL", "full", retriable=True)
    batch.abandon_from(2, gave_up)
    assert done == [1]
    with pytest.raises(BatchPublishError) as caught:
        batch.outcome()
    results: tuple[Any, ...] = caught.value.results
    assert results[0] == Delivery("top0", 0, 7, "k0", "id0")
    assert (results[1].code, results[1].key, results[1].submission_id) == (
        "MSG_SIZE_TOO_LARGE",
        "k1",
        "id1",
    )
    assert results[2] is gave_up
    assert (results[3].code, results[3].key, results[3].submission_id) == (
        "_QUEUE_FULL",
        "k3",
        "id3",
    )
    assert (results[3].topic, results[3].reason, results[3].retriable) == ("top3", "full", True)
    assert caught.value.code == "MSG_SIZE_TOO_LARGE"
    assert not caught.value.retriable  # one of the failures is not retriable


async def test_a_chunk_of_reports_wakes_the_loop_once_and_skips_cancelled_waiters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    wakes: list[object] = []
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any) -> Any:
        if getattr(callback, "__self__", None) is handoff:  # not asyncio's own hand-offs
            wakes.append(callback)
        return original(callback, *args)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    handoff = _Handoff(loop)
    futures: list[asyncio.Future[int]] = [loop.create_future() for _ in range(5)]
    futures[2].cancel()  # a caller that gave up waiting
    for value, future in enumerate(futures):  # one chunk: the loop cannot run in between
        handoff.give(future, value)
    assert await asyncio.gather(*(f for f in futures if not f.cancelled())) == [0, 1, 3, 4]
    assert len(wakes) == 1
    later: asyncio.Future[str] = loop.create_future()
    await asyncio.to_thread(handoff.give, later, "from the report thread")
    assert await later == "from the report thread"
    assert len(wakes) == 2
