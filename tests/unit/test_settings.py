"""Invalid settings stop start-up with a message naming the setting as the operator wrote it."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import ProcessingGuarantee, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MODQ_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


def test_defaults_are_the_seed() -> None:
    s = load_settings()
    assert s.total_workers == 2
    assert (s.workers.global_topics.min, s.workers.global_topics.max) == (1, 1)
    assert (s.workers.topic_posts.min, s.workers.topic_posts.max) == (0, 1)
    assert (s.workers.private_messages.min, s.workers.private_messages.max) == (0, 1)
    assert s.circuit_breaker_seconds == 120
    assert s.processing_guarantee is ProcessingGuarantee.AT_LEAST_ONCE
    assert (s.dashboard_host, s.dashboard_port) == ("127.0.0.1", 8765)
    assert s.uses_local_broker


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"MODQ_TOTAL_WORKERS": "abc"}, "MODQ_TOTAL_WORKERS"),
        ({"MODQ_TOTAL_WORKERS": "0"}, "MODQ_TOTAL_WORKERS"),
        ({"MODQ_WORKERS__TOPIC_POSTS__MIN": "3"}, "MODQ_WORKERS__TOPIC_POSTS__MIN"),
        ({"MODQ_WORKERS__NEWS__MIN": "1"}, "MODQ_WORKERS__NEWS"),
        ({"MODQ_PROCESSING_GUARANTEE": "maybe"}, "MODQ_PROCESSING_GUARANTEE"),
        ({"MODQ_CIRCUIT_BREAKER_SECONDS": "-5"}, "MODQ_CIRCUIT_BREAKER_SECONDS"),
        ({"MODQ_DASHBOARD_PORT": "70000"}, "MODQ_DASHBOARD_PORT"),
        ({"MODQ_DASHBOARD_HOST": "0.0.0.0"}, "MODQ_DASHBOARD_TOKEN"),
        ({"MODQ_TOPIC_PREFIX": "bad prefix/"}, "MODQ_TOPIC_PREFIX"),
        (
            {
                "MODQ_TOTAL_WORKERS": "1",
                "MODQ_WORKERS__PRIVATE_MESSAGES__MIN": "1",
            },
            "MODQ_TOTAL_WORKERS",
        ),
    ],
)
def test_invalid_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], setting: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert info.value.setting == setting
    assert setting in str(info.value)


def test_partial_bounds_keep_the_other_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODQ_TOTAL_WORKERS", "5")
    monkeypatch.setenv("MODQ_WORKERS__TOPIC_POSTS__MAX", "3")
    s = load_settings()
    assert (s.workers.topic_posts.min, s.workers.topic_posts.max) == (0, 3)


def test_toml_file_below_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "modq.toml"
    config.write_text('total_workers = 4\ntopic_prefix = "acme."\n[workers.topic_posts]\nmax = 2\n')
    monkeypatch.setenv("MODQ_CONFIG", str(config))
    monkeypatch.setenv("MODQ_TOTAL_WORKERS", "6")
    s = load_settings()
    assert s.total_workers == 6  # the environment wins
    assert s.topic_prefix == "acme."
    assert s.workers.topic_posts.max == 2


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODQ_DASHBOARD_HOST", "0.0.0.0")
    monkeypatch.setenv("MODQ_DASHBOARD_TOKEN", "hunter2")
    monkeypatch.setenv("MODQ_KAFKA_SECURITY__SASL_PASSWORD", "s3cret")
    s = load_settings()
    assert "hunter2" not in repr(s)
    assert "s3cret" not in repr(s)
    assert s.dashboard_token is not None
    assert s.dashboard_token.get_secret_value() == "hunter2"
