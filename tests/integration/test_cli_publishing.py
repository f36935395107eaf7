"""`modq submit` and `modq loadgen` against the real broker, through the real CLI app."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from orchestrator.cli import app
from schemas.codec import decode_submission
from schemas.errors import ContractError
from schemas.settings import Settings
from schemas.topics import TopicNames
from tests.integration.topic_probes import end_offsets, read_topic

runner = CliRunner()
TS = "2024-05-01T12:00:00Z"


def _env(settings: Settings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "MODQ_TOPIC_PREFIX": settings.topic_prefix,
        "MODQ_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "MODQ_STATE_DIR": str(settings.state_dir),
    }


def _run(settings: Settings, args: list[str], stdin: str | None = None) -> Result:
    return runner.invoke(app, args, input=stdin, env=_env(settings))


def _deliveries(result: Result) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_submit_from_options_round_trips_every_kind(settings: Settings) -> None:
    names = TopicNames.from_prefix(settings.topic_prefix)
    cases = [
        ["--kind", "topic", "--topic-id", "t1", "--author-id", "u1", "--title", "Hi", "--body", ""],
        ["--kind", "post", "--topic-id", "t1", "--author-id", "u1", "--body", "first!"],
        [
            "--kind",
            "private_message",
            "--sender-id",
            "zed",
            "--recipient-id",
            "amy",
            "--body",
            "hi",
        ],
    ]
    for args in cases:
        result = _run(settings, ["submit", *args])
        assert result.exit_code == 0, result.stderr
        [delivery] = _deliveries(result)
        kind = args[1]
        assert delivery["topic"] == names.submission_topic(kind)
        [record] = read_topic(settings.kafka_bootstrap_servers or "", str(delivery["topic"]), 1)
        assert (record.partition(), record.offset()) == (delivery["partition"], delivery["offset"])
        sub = decode_submission(record.value())
        assert (sub.kind, sub.id, sub.key) == (kind, delivery["id"], delivery["key"])
    assert delivery["key"] == "amy:zed"


def test_submit_from_arguments_a_file_and_stdin(settings: Settings, tmp_path: Path) -> None:
    def post(i: int) -> dict[str, object]:
        return {
            "kind": "post",
            "id": f"p{i}",
            "submitted_at": TS,
            "topic_id": "t9",
            "author_id": "u",
            "body": f"b{i}",
        }

    args = _run(settings, ["submit", json.dumps(post(0)), json.dumps(post(1))])
    assert args.exit_code == 0, args.stderr
    path = tmp_path / "posts.json"
    path.write_text(json.dumps([post(2), post(3)]), "utf-8")
    from_file = _run(settings, ["submit", "--file", str(path)])
    assert from_file.exit_code == 0, from_file.stderr
    lines = "\n".join(json.dumps(post(i)) for i in (4, 5, 6)) + "\n\n"
    from_stdin = _run(settings, ["submit"], stdin=lines)
    assert from_stdin.exit_code == 0, from_stdin.stderr
    ids = [d["id"] for r in (args, from_file, from_stdin) for d in _deliveries(r)]
    assert ids == [f"p{i}" for i in range(7)]
    offsets = [d["offset"] for r in (args, from_file, from_stdin) for d in _deliveries(r)]
    assert offsets == list(range(7))  # one key, one partition, in input order


GOOD = json.dumps(
    {
        "kind": "post",
        "id": "ok1",
        "submitted_at": TS,
        "topic_id": "t",
        "author_id": "u",
        "body": "b",
    }
)
BAD_LINES = [
    ('{"kind": "post", "id": ', "$"),
    (GOOD.replace('"topic_id": "t"', '"topic_id": 5'), "topic_id"),
    (GOOD.replace('"author_id": "u", ', ""), "author_id"),
    (GOOD.replace('"body": "b"', '"body": "' + "b" * 65_537 + '"'), "body"),
    (GOOD.replace('"id": "ok1"', '"id": "no spaces!"'), "id"),
    (
        '{"kind": "private_message", "id": "m1", "submitted_at": "' + TS + '", '
        '"sender_id": "amy", "recipient_id": "amy", "body": "b"}',
        "recipient_id",
    ),
]


@pytest.mark.parametrize(("line", "field"), BAD_LINES)
def test_submit_rejects_invalid_input_naming_the_field_and_sends_nothing(
    settings: Settings, line: str, field: str
) -> None:
    result = _run(settings, ["submit"], stdin=f"{GOOD}\n{line}\n")
    assert result.exit_code == 2
    assert f"stdin line 2: {field}:" in result.stderr
    assert "nothing was sent" in result.stderr
    assert result.stdout == ""
    names = TopicNames.from_prefix(settings.topic_prefix)
    bootstrap = settings.kafka_bootstrap_servers or ""
    assert sum(end_offsets(bootstrap, t) for t in names.submission_topics()) == 0


def test_submit_keep_going_sends_the_valid_lines(settings: Settings) -> None:
    lines = [GOOD, BAD_LINES[0][0], GOOD.replace("ok1", "ok2"), BAD_LINES[5][0]]
    result = _run(settings, ["submit", "--keep-going"], stdin="\n".join(lines))
    assert result.exit_code == 2
    assert [d["id"] for d in _deliveries(result)] == ["ok1", "ok2"]
    assert "stdin line 2: $:" in result.stderr
    assert "stdin line 4: recipient_id:" in result.stderr
    names = TopicNames.from_prefix(settings.topic_prefix)
    assert end_offsets(settings.kafka_bootstrap_servers or "", names.submissions_posts) == 2


def test_submit_with_an_unreachable_broker_fails_clearly(settings: Settings) -> None:
    env = {**_env(settings), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = runner.invoke(app, ["submit", "--timeout", "1", GOOD], env=env)
    assert result.exit_code == 1
    assert "_MSG_TIMED_OUT" in result.stderr
    assert "127.0.0.1:1" in result.stderr


def test_submit_without_input_is_a_usage_error(settings: Settings) -> None:
    result = _run(settings, ["submit"], stdin="")
    assert result.exit_code == 2
    assert "nothing to submit" in result.stderr


def test_loadgen_sends_sequenced_skewed_load_with_bad_records(settings: Settings) -> None:
    result = _run(
        settings,
        [
            *("loadgen", "--count", "300", "--rate", "0", "--bad-fraction", "0.1", "--seed", "3"),
            *("--topics", "5", "--user-pairs", "3", "--run-id", "lg", "--json"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["generated"] == summary["sent"] == 300
    assert summary["failed"] == 0
    assert 10 <= summary["bad"] <= 60
    assert summary["msgs_per_s"] > 0
    names = TopicNames.from_prefix(settings.topic_prefix)
    bootstrap = settings.kafka_bootstrap_servers or ""
    records = []
    for topic in names.submission_topics():
        records += read_topic(
            bootstrap, topic, summary["by_kind"].get(names.kind_of_topic(topic), 0)
        )
    assert len(records) == 300
    seqs: dict[str, list[int]] = defaultdict(list)
    bad = 0
    for record in sorted(records, key=lambda r: (r.topic(), r.partition(), r.offset())):
        try:
            sub = decode_submission(record.value())
        except ContractError:
            bad += 1
            continue
        assert sub.seq is not None
        seqs[sub.key].append(sub.seq)
    assert bad == summary["bad"]
    for key, numbers in seqs.items():
        assert numbers == list(range(len(numbers))), key  # per-key order survives the trip


def test_loadgen_paces_to_the_rate_within_the_duration(settings: Settings) -> None:
    result = _run(settings, ["loadgen", "--duration", "1", "--rate", "40", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert 1 <= summary["generated"] <= 41  # never ahead of the schedule
    assert summary["sent"] == summary["generated"]


def test_loadgen_refuses_a_bad_mix_naming_it(settings: Settings) -> None:
    result = _run(settings, ["loadgen", "--count", "1", "--mix", "post=1,reply=2"])
    assert result.exit_code == 2
    assert "mix:" in result.stderr
