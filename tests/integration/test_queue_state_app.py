"""The queue-state app against the real broker, run as `modq queue-state` subprocesses.

Posts and private messages for many keys go in, Decision records are published directly
(playing the workers), and the compacted visualization topic read from the beginning must
show exactly the undecided submissions per key, the right oldest pending time, tombstones for
drained queues, the stuck ranking, and, after a restart, counts that continue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from orchestrator.kafka_admin import add_partitions, delete_topics
from schemas.codec import decode_visualization, encode
from schemas.decisions import Decision, SourcePosition, Verdict, build_decision
from schemas.settings import Settings
from schemas.submissions import (
    PostSubmission,
    PrivateMessageSubmission,
    Submission,
    TopicSubmission,
)
from schemas.topics import TopicNames
from schemas.visualization import KeyQueueView, StuckKeysView
from streams.kafka_io import DataProducer, KafkaIOError

ROOT = Path(__file__).resolve().parents[2]
BASE = datetime(2025, 1, 1, tzinfo=UTC)
SECRET = "s3cret-body-never-on-the-dashboard"
WAIT = 45.0
REREAD_LOG = "re-reading the inputs from their committed offsets after recovery"


def _app_id(settings: Settings) -> str:
    return f"{settings.topic_prefix}modq-queue-state"


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODQ_")}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": str(settings.kafka_bootstrap_servers),
            "MODQ_TOPIC_PREFIX": settings.topic_prefix,
            "MODQ_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "MODQ_STATE_DIR": str(settings.state_dir),
            "MODQ_QUEUE_STATE_PUBLISH_INTERVAL": "0.2",
            "MODQ_QUEUE_STATE_COMMIT_INTERVAL": "0.2",
        }
    )
    return env


class App:
    """One `modq queue-state` process with its output in a log file."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "queue-state"],
            cwd=ROOT,
            env=_env(settings),
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self._out.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def faust_topics(settings: Settings) -> Iterator[None]:
    """Delete the topics faust creates for this test's app id afterwards."""
    yield
    app = _app_id(settings)
    delete_topics(
        {"bootstrap.servers": str(settings.kafka_bootstrap_servers)},
        [
            f"{app}-queue-keys-changelog",
            f"{app}-queue-classes-changelog",
            f"{app}-__assignor-__leader",
        ],
    )


class View:
    """The visualization topic read from the beginning: history and latest value per key."""

    def __init__(self, settings: Settings) -> None:
        self.topic = TopicNames.from_prefix(settings.topic_prefix).visualization
        self._consumer: Any = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                "group.id": f"viz-reader-{time.monotonic_ns()}",
                "enable.auto.commit": False,
            }
        )
        self._consumer.assign([TopicPartition(self.topic, 0, -2)])  # OFFSET_BEGINNING
        self.latest: dict[str, bytes | None] = {}
        self.history: list[tuple[str, bytes | None]] = []

    def poll_until(self, check: Callable[[], bool], what: str, app: App) -> None:
        deadline = time.monotonic() + WAIT
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; view: {self.summary()}; app log:\n{app.text()}"
                )
            assert app.proc.poll() is None, f"app exited early:\n{app.text()}"
            for msg in self._consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is None:
                    key = msg.key().decode()
                    self.latest[key] = msg.value()
                    self.history.append((key, msg.value()))

    def key_views(self) -> dict[str, KeyQueueView]:
        out = {}
        for key, raw in self.latest.items():
            record = decode_visualization(raw)
            if isinstance(record, KeyQueueView):
                out[key] = record
        return out

    def summary(self) -> str:
        """Each key's (pending, oldest pending) as last published, and the tombstoned keys:
        what a failed wait had seen."""
        shown = {k: (v.pending, v.oldest_pending_at) for k, v in sorted(self.key_views().items())}
        gone = sorted(k for k, raw in self.latest.items() if raw is None)
        return f"{shown}, tombstones {gone}"

    def stuck(self, name: str) -> StuckKeysView | None:
        record = decode_visualization(self.latest.get(name))
        return record if isinstance(record, StuckKeysView) else None

    def close(self) -> None:
        self._consumer.close()


def _publish(settings: Settings, items: Sequence[Submission | tuple[Submission, Decision]]) -> None:
    names = TopicNames.from_prefix(settings.topic_prefix)
    failed: list[KafkaIOError] = []  # a failed delivery would otherwise pass silently
    producer = DataProducer(settings, client_id="qs-test", on_failed_delivery=failed.append)
    for item in items:
        if isinstance(item, tuple):
            sub, decision = item
            producer.produce(names.decisions, key=sub.key.encode(), value=encode(decision))
        else:
            producer.produce(
                names.submission_topic(item.kind), key=item.key.encode(), value=encode(item)
            )
    assert producer.flush(10) == 0
    assert failed == []


def _decide(sub: Submission, verdict: Verdict = Verdict.APPROVED) -> tuple[Submission, Decision]:
    decision = build_decision(
        sub,
        verdict=verdict,
        decided_at=datetime.now(UTC),
        source=SourcePosition(topic="x", partition=0, offset=0),
        worker_id="w-test",
    )
    return (sub, decision)


def _post(topic_index: int, n: int) -> PostSubmission:
    return PostSubmission(
        id=f"p{topic_index}-{n}",
        topic_id=f"t{topic_index}",
        author_id="alice",
        body=f"post {n}",
        submitted_at=BASE + timedelta(seconds=topic_index * 100 + n),
    )


def _pm(conv: int, n: int) -> PrivateMessageSubmission:
    return PrivateMessageSubmission(
        id=f"m{conv}-{n}",
        sender_id=f"u{conv}",
        recipient_id="zed",
        body=SECRET,
        submitted_at=BASE + timedelta(seconds=5000 + conv * 100 + n),
    )


def _matches(view: View, expected: dict[str, tuple[int, datetime]], gone: set[str]) -> bool:
    views = view.key_views()
    if set(views) != set(expected):
        return False
    if any(view.latest.get(key, b"") is not None for key in gone):
        return False
    return all((views[k].pending, views[k].oldest_pending_at) == expected[k] for k in expected)


@pytest.mark.usefixtures("faust_topics")
def test_pending_per_key_tombstones_stuck_and_restart(settings: Settings, tmp_path: Path) -> None:
    posts = {i: [_post(i, n) for n in range(1, i + 2)] for i in range(8)}  # t{i} has i+1 posts
    pms = {c: [_pm(c, n) for n in range(1, 3)] for c in range(3)}
    new_topics = [
        TopicSubmission(
            id=f"nt{i}",
            topic_id=f"new{i}",
            author_id="bob",
            title="hi",
            body="",
            submitted_at=BASE,
        )
        for i in range(2)
    ]
    everything: list[Submission] = [
        *(p for ps in posts.values() for p in ps),
        *(m for ms in pms.values() for m in ms),
        *new_topics,
    ]
    app = App(settings, tmp_path / "app.log")
    view = View(settings)
    try:
        _publish(settings, everything)
        arrived = {f"topic_t{i}": (i + 1, _post(i, 1).submitted_at) for i in range(8)}
        arrived |= {f"users_u{c}:zed": (2, _pm(c, 1).submitted_at) for c in range(3)}
        view.poll_until(lambda: _matches(view, arrived, set()), "every key pending", app)

        ghost = _post(4, 99).model_copy(update={"id": "ghost-4"})
        _publish(
            settings,
            [
                _decide(posts[0][0]),
                *(_decide(p) for p in posts[1]),
                _decide(posts[2][0], Verdict.REJECTED),
                *(_decide(p) for p in posts[3][:2]),
                _decide(posts[3][0]),  # duplicate (at-least-once): ignored
                _decide(ghost),  # never submitted: counted, no decrement
                *(_decide(m) for m in pms[0]),
                _decide(pms[1][0]),
                _decide(new_topics[0]),
            ],
        )
        expected = {
            "topic_t2": (2, posts[2][1].submitted_at),
            "topic_t3": (2, posts[3][2].submitted_at),
            **{f"topic_t{i}": (i + 1, posts[i][0].submitted_at) for i in (4, 5, 6, 7)},
            "users_u1:zed": (1, pms[1][1].submitted_at),
            "users_u2:zed": (2, pms[2][0].submitted_at),
        }
        drained = {"topic_t0", "topic_t1", "users_u0:zed"}
        view.poll_until(lambda: _matches(view, expected, drained), "decisions applied", app)

        views = view.key_views()
        assert views["topic_t4"].verdicts == {Verdict.APPROVED: 1}
        assert views["topic_t3"].verdicts == {Verdict.APPROVED: 2}
        assert views["topic_t2"].verdicts == {Verdict.REJECTED: 1}
        assert views["topic_t2"].last_decision_at is not None
        shown = [k for k, v in view.history if k == "topic_t0" and v is not None]
        assert shown, "topic_t0 was shown non-empty before its tombstone"
        assert not any(k.startswith(("global", "new")) for k in view.latest if "stuck" not in k)

        def stuck_ok() -> bool:
            stuck = view.stuck("stuck_topic_posts")
            return stuck is not None and [k.queue for k in stuck.keys] == [
                f"topic_t{i}" for i in (2, 3, 4, 5, 6, 7)
            ]

        view.poll_until(stuck_ok, "stuck ranking", app)
        conv = view.stuck("stuck_private_messages")
        assert conv is not None
        assert [k.queue for k in conv.keys] == ["users_u1:zed", "users_u2:zed"]

        assert app.stop() == 0, app.text()
        _assert_offsets_committed(settings)

        # while it is down: progress, a replayed submission, a new post
        _publish(
            settings,
            [
                _decide(posts[3][2]),
                posts[5][0],  # re-sent (at-least-once producer): not counted twice
                _post(7, 50),
                *(_decide(p) for p in posts[2][1:]),
            ],
        )
        app = App(settings, tmp_path / "app2.log")
        expected2 = dict(expected)
        del expected2["topic_t2"]
        expected2["topic_t3"] = (1, posts[3][3].submitted_at)
        expected2["topic_t7"] = (9, posts[7][0].submitted_at)
        view.poll_until(
            lambda: _matches(view, expected2, {*drained, "topic_t2"}), "after restart", app
        )
        assert view.key_views()["topic_t3"].verdicts == {Verdict.APPROVED: 3}

        # A moment after recovery the app re-reads its inputs from the committed offsets
        # (faust-streaming#596); records it reads twice change nothing, and it goes on.
        view.poll_until(lambda: REREAD_LOG in app.text(), "the re-read after recovery", app)
        _publish(settings, [_decide(posts[4][0]), _decide(posts[6][0]), _post(5, 60)])
        expected3 = dict(expected2)
        expected3["topic_t4"] = (4, posts[4][1].submitted_at)
        expected3["topic_t5"] = (7, posts[5][0].submitted_at)
        expected3["topic_t6"] = (6, posts[6][1].submitted_at)
        view.poll_until(
            lambda: _matches(view, expected3, {*drained, "topic_t2"}), "after the re-read", app
        )
        assert all(SECRET.encode() not in (v or b"") for _, v in view.history)
        assert app.stop() == 0, app.text()
    finally:
        view.close()
        if app.proc.poll() is None:
            app.stop(signal.SIGKILL)


def _assert_offsets_committed(settings: Settings) -> None:
    """The stopped app committed every input record: a restart does not re-read them."""
    names = TopicNames.from_prefix(settings.topic_prefix)
    consumer: Any = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": _app_id(settings)}
    )
    try:
        tps = [
            TopicPartition(t, p)
            for t in (names.submissions_posts, names.decisions)
            for p in range(settings.topic_partitions)
        ]
        committed = consumer.committed(tps, timeout=10)
        for tp in committed:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            assert tp.offset == high, f"{tp.topic}[{tp.partition}] at {tp.offset} of {high}"
    finally:
        consumer.close()


def test_refuses_topics_that_are_not_co_partitioned(settings: Settings) -> None:
    names = TopicNames.from_prefix(settings.topic_prefix)
    add_partitions({"bootstrap.servers": str(settings.kafka_bootstrap_servers)}, names.decisions, 4)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "queue-state"],
        cwd=ROOT,
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "same partition count" in done.stderr
    assert f"{names.decisions}=4" in done.stderr
    assert f"{names.submissions_posts}=3" in done.stderr
