"""The one frozen, validated settings object of a modq process.

Read from the environment (and optionally a TOML file named by ``MODQ_CONFIG``) once, at the
edge, by :func:`load_settings`; then passed down. Environment names are the contract's
(../shared/CONTRACT.md): ``KAFKA_BOOTSTRAP_SERVERS``, ``MODQ_TOPIC_PREFIX``,
``MODQ_TOTAL_WORKERS``, ``MODQ_WORKERS__<CLASS>__MIN``/``__MAX``,
``MODQ_CIRCUIT_BREAKER_SECONDS``, ``MODQ_PROCESSING_GUARANTEE``, ``MODQ_DASHBOARD_HOST``,
``MODQ_DASHBOARD_PORT``; the rest follow the same ``MODQ_`` + field name scheme.

An invalid value raises :class:`SettingsError`, whose message names the setting the way the
operator wrote it (``MODQ_WORKERS__TOPIC_POSTS__MIN``), never pydantic's internal path.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from schemas.queues import QueueClass

ENV_PREFIX = "MODQ_"
_TOPIC_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]{0,200}$")


class ProcessingGuarantee(StrEnum):
    """Delivery semantics of the workers."""

    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"


class SecurityProtocol(StrEnum):
    """How every modq client connects to the brokers."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class ClassBounds(BaseModel):
    """Minimum and maximum number of workers one queue class may hold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: Annotated[int, Field(ge=0, le=1000)]
    max: Annotated[int, Field(ge=0, le=1000)]


_SEED_BOUNDS = {
    QueueClass.GLOBAL_TOPICS.value: ClassBounds(min=1, max=1),
    QueueClass.TOPIC_POSTS.value: ClassBounds(min=0, max=1),
    QueueClass.PRIVATE_MESSAGES.value: ClassBounds(min=0, max=1),
}


class WorkerBounds(BaseModel):
    """Per-class bounds; the seed's defaults are 1/1, 0/1, 0/1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    global_topics: ClassBounds = ClassBounds(min=1, max=1)
    topic_posts: ClassBounds = ClassBounds(min=0, max=1)
    private_messages: ClassBounds = ClassBounds(min=0, max=1)

    @model_validator(mode="before")
    @classmethod
    def _fill_partial(cls, data: Any) -> Any:
        """Let an operator set only ``__MIN`` or only ``__MAX``; the other keeps its default."""
        if not isinstance(data, dict):
            return data
        merged: dict[str, Any] = dict(data)
        for name, value in data.items():
            default = _SEED_BOUNDS.get(str(name).lower())
            if default is not None and isinstance(value, dict):
                merged[name] = {**default.model_dump(), **value}
        return merged

    def for_class(self, queue_class: QueueClass) -> ClassBounds:
        """The bounds of ``queue_class``."""
        bounds: ClassBounds = getattr(self, queue_class.value)
        return bounds

    def as_mapping(self) -> dict[QueueClass, ClassBounds]:
        """All bounds keyed by class, in the classes' declaration order."""
        return {cls: self.for_class(cls) for cls in QueueClass}


class KafkaSecurity(BaseModel):
    """Client-side security settings, shared by every Kafka client of the process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None


class Settings(BaseSettings):
    """Everything a modq process needs to know, validated once at start-up.

    Durations are seconds (floats where sub-second values make sense). Frozen: a process
    never changes its settings after start-up.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        frozen=True,
        extra="forbid",
        validate_default=True,
    )

    # --- Kafka ------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "MODQ_KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port[,host:port...]; unset means: start or reuse a local broker",
    )
    kafka_security: KafkaSecurity = KafkaSecurity()
    topic_prefix: str = Field(default="forum.", description="replaces the leading `forum.`")
    topic_partitions: Annotated[int, Field(ge=1, le=10_000)] = 6
    topic_replication_factor: Annotated[int, Field(ge=1, le=10)] = 1
    processing_guarantee: ProcessingGuarantee = ProcessingGuarantee.AT_LEAST_ONCE
    group_protocol: Annotated[str, Field(pattern=r"^(consumer|classic)$")] = "consumer"

    # --- Controller ---------------------------------------------------------------------
    total_workers: Annotated[int, Field(ge=1, le=1000)] = 2
    workers: WorkerBounds = WorkerBounds()
    circuit_breaker_seconds: Annotated[float, Field(gt=0, le=86_400)] = 120.0
    controller_tick_seconds: Annotated[float, Field(gt=0, le=3600)] = 1.0
    cooldown_seconds: Annotated[float, Field(ge=0, le=86_400)] = 10.0
    breaker_recovery_seconds: Annotated[float, Field(ge=0, le=86_400)] = 30.0
    rebalance_margin: Annotated[float, Field(ge=0, le=100)] = 0.25
    score_length_weight: Annotated[float, Field(ge=0, le=1e6)] = 10.0
    score_wait_weight: Annotated[float, Field(ge=0, le=1e6)] = 1.0
    heartbeat_seconds: Annotated[float, Field(gt=0, le=600)] = 1.0
    worker_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0

    # --- Workers ------------------------------------------------------------------------
    policy: str = "streams.moderation.rules:RuleBasedPolicy"
    max_in_flight_keys: Annotated[int, Field(ge=1, le=100_000)] = 64
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 5
    batch_wait_seconds: Annotated[float, Field(ge=0, le=60)] = 0.2
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    retry_backoff_seconds: Annotated[float, Field(ge=0, le=60)] = 0.1
    max_record_bytes: Annotated[int, Field(ge=1024, le=100_000_000)] = 1_000_000
    drain_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0

    # --- Dashboard ----------------------------------------------------------------------
    dashboard_host: str = "127.0.0.1"
    dashboard_port: Annotated[int, Field(ge=0, le=65_535)] = 8765
    dashboard_token: SecretStr | None = None

    # --- Local state --------------------------------------------------------------------
    state_dir: Path = Path(".modq")

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if not _TOPIC_PREFIX_RE.match(self.topic_prefix):
            raise ValueError(
                "topic_prefix: only letters, digits, '.', '_' and '-' are allowed "
                f"(got {self.topic_prefix!r})"
            )
        for cls, bounds in self.workers.as_mapping().items():
            if bounds.min > bounds.max:
                raise ValueError(
                    f"workers.{cls.value}.min: {bounds.min} is above "
                    f"workers.{cls.value}.max ({bounds.max})"
                )
        mins = sum(b.min for b in self.workers.as_mapping().values())
        if mins > self.total_workers:
            raise ValueError(
                f"total_workers: {self.total_workers} is less than the sum of the per-class "
                f"minimums ({mins})"
            )
        if not _is_loopback(self.dashboard_host) and self.dashboard_token is None:
            raise ValueError(
                f"dashboard_token: required when dashboard_host ({self.dashboard_host}) is not "
                "a loopback address; set MODQ_DASHBOARD_TOKEN or bind to 127.0.0.1"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: explicit arguments, then the environment, then ``MODQ_CONFIG``'s TOML."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = os.environ.get("MODQ_CONFIG")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)

    @property
    def uses_local_broker(self) -> bool:
        """True when no cluster was named, so modq starts (or reuses) its own broker."""
        return self.kafka_bootstrap_servers is None


class SettingsError(Exception):
    """Start-up refused: a setting is invalid. ``setting`` names it as the operator writes it."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"invalid setting {setting}: {reason}")
        self.setting = setting
        self.reason = reason


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable an operator sets for a pydantic error location."""
    parts = [str(p) for p in loc]
    if not parts:
        return "settings"
    if parts[0] in ("kafka_bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS"):
        return "KAFKA_BOOTSTRAP_SERVERS"
    return ENV_PREFIX + "__".join(p.upper() for p in parts)


def _setting_from_message(message: str) -> tuple[str, str] | None:
    """Split a model-validator message ``"workers.x.min: reason"`` into (ENV_NAME, reason)."""
    head, sep, rest = message.partition(": ")
    if not sep or " " in head:
        return None
    return env_name(tuple(head.split("."))), rest


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the process's settings from the environment (the edge); raise :class:`SettingsError`.

    ``overrides`` are explicit values (e.g. from CLI flags) that win over the environment.
    """
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", "invalid"))
        loc = tuple(first.get("loc", ()))
        if not loc:
            message = message.removeprefix("Value error, ")
            named = _setting_from_message(message)
            if named is not None:
                raise SettingsError(*named) from None
            raise SettingsError("settings", message) from None
        value = first.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        raise SettingsError(env_name(loc), f"{message}{shown}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
