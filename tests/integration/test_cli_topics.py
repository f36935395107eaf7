"""`modq topics create|describe|grow` against the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from orchestrator.kafka_admin import delete_topics, describe_topics
from schemas.topics import TopicNames

runner = CliRunner()


@pytest.fixture
def env(kafka_bootstrap: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """CLI environment with a fresh prefix whose topics the test creates (and we delete)."""
    prefix = f"c{uuid.uuid4().hex[:10]}."
    yield {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MODQ_TOPIC_PREFIX": prefix,
        "MODQ_TOPIC_PARTITIONS": "2",
        "MODQ_STATE_DIR": str(tmp_path / "state"),
        "COLUMNS": "400",  # rich tables: no truncated topic names
    }
    delete_topics({"bootstrap.servers": kafka_bootstrap}, TopicNames.from_prefix(prefix).all())


def _invoke(env: dict[str, str], *args: str) -> Result:
    from orchestrator.cli import app

    return runner.invoke(app, list(args), env=env)


def _partitions(env: dict[str, str], topic: str) -> int:
    config = {"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]}
    return describe_topics(config, [topic])[topic].partitions


def test_create_is_idempotent_and_describe_shows_the_topics(env: dict[str, str]) -> None:
    names = TopicNames.from_prefix(env["MODQ_TOPIC_PREFIX"])
    first = _invoke(env, "topics", "create")
    assert first.exit_code == 0, first.stderr
    assert sorted(line.split()[1] for line in first.stdout.splitlines()) == sorted(names.all())
    assert all(line.startswith("created") for line in first.stdout.splitlines())
    again = _invoke(env, "topics", "create")
    assert again.exit_code == 0, again.stderr
    assert all(line.startswith("exists") for line in again.stdout.splitlines())
    assert len(again.stdout.splitlines()) == 7

    described = _invoke(env, "topics", "describe")
    assert described.exit_code == 0, described.stderr
    rows = {
        line.split("│")[1].strip(): line for line in described.stdout.splitlines() if "│" in line
    }
    assert "missing" not in described.stdout
    assert "cleanup.policy=compact" in rows[names.visualization]
    assert rows[names.submissions_posts].split("│")[2].strip() == "2"
    assert rows[names.control].split("│")[2].strip() == "1"


def test_describe_marks_missing_topics(env: dict[str, str]) -> None:
    result = _invoke(env, "topics", "describe")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("missing") == 7


def test_grow_refuses_a_keyed_topic_without_force_and_says_why(env: dict[str, str]) -> None:
    assert _invoke(env, "topics", "create").exit_code == 0
    topic = TopicNames.from_prefix(env["MODQ_TOPIC_PREFIX"]).submissions_posts
    refused = _invoke(env, "topics", "grow", topic, "--partitions", "4")
    assert refused.exit_code == 2
    message = " ".join(refused.stderr.split())
    assert "refusing to grow keyed topic" in message
    assert "remaps keys to partitions" in message
    assert "--force" in message
    assert _partitions(env, topic) == 2

    forced = _invoke(env, "topics", "grow", topic, "--partitions", "4", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert _partitions(env, topic) == 4


def test_grow_names_an_unknown_topic(env: dict[str, str]) -> None:
    result = _invoke(env, "topics", "grow", "not.ours", "--partitions", "4")
    assert result.exit_code == 2
    assert "not.ours is not one of modq's topics" in " ".join(result.stderr.split())
