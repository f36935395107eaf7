"""Topic provisioning from settings: idempotent create, and drift checks that protect key order.

Creating is idempotent (existing topics are left alone). Growing a keyed topic's partition
count remaps keys to partitions and breaks per-key order for records in flight, so
:func:`grow_partitions` refuses it unless ``force`` is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.kafka_admin import (
    TopicInfo,
    TopicRequest,
    add_partitions,
    create_topics,
    describe_topics,
)
from schemas.kafka_config import ConfigValue, client_config
from schemas.settings import Settings
from schemas.topics import TopicNames, TopicSpec, default_topic_specs


class KeyedTopicGrowthError(RuntimeError):
    """Refused to add partitions to a keyed topic without ``--force``."""

    def __init__(self, topic: str, current: int, wanted: int) -> None:
        super().__init__(
            f"refusing to grow keyed topic {topic} from {current} to {wanted} partitions: "
            "adding partitions remaps keys to partitions, so a forum topic's or a "
            "conversation's later records could be moderated before earlier ones. Drain the "
            "pipeline first, then pass --force."
        )
        self.topic = topic
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True, slots=True)
class ProvisionReport:
    """What provisioning did: topics created, topics already present, and their drift."""

    created: tuple[str, ...]
    existing: tuple[str, ...]
    drift: tuple[str, ...]


def topic_names(settings: Settings) -> TopicNames:
    """The contract's topic names under the configured prefix."""
    return TopicNames.from_prefix(settings.topic_prefix)


def topic_specs(settings: Settings, replication_factor: int | None = None) -> list[TopicSpec]:
    """Every topic modq needs, sized from settings."""
    return list(
        default_topic_specs(
            topic_names(settings),
            partitions=settings.topic_partitions,
            replication_factor=replication_factor or settings.topic_replication_factor,
        )
    )


def ensure_topics(config: Mapping[str, ConfigValue], specs: Sequence[TopicSpec]) -> ProvisionReport:
    """Create missing topics; report existing ones whose shape differs from the spec."""
    created = create_topics(
        config,
        [TopicRequest(s.name, s.partitions, s.replication_factor, dict(s.config)) for s in specs],
    )
    infos = describe_topics(config, [s.name for s in specs])
    drift = tuple(msg for s in specs if s.name in infos for msg in _drift(s, infos[s.name]))
    existing = tuple(sorted(s.name for s in specs if s.name not in created))
    return ProvisionReport(tuple(created), existing, drift)


def provision(settings: Settings, bootstrap: str | None = None) -> ProvisionReport:
    """Create the topics of ``settings`` on its cluster (or ``bootstrap``)."""
    return ensure_topics(client_config(settings, bootstrap=bootstrap), topic_specs(settings))


def grow_partitions(
    config: Mapping[str, ConfigValue], spec: TopicSpec, wanted: int, *, force: bool
) -> None:
    """Raise ``spec``'s topic to ``wanted`` partitions; keyed topics need ``force``."""
    current = describe_topics(config, [spec.name])[spec.name].partitions
    if wanted <= current:
        return
    if spec.keyed and not force:
        raise KeyedTopicGrowthError(spec.name, current, wanted)
    add_partitions(config, spec.name, wanted)


def _drift(spec: TopicSpec, info: TopicInfo) -> list[str]:
    out: list[str] = []
    if info.partitions != spec.partitions:
        out.append(f"{spec.name}: {info.partitions} partitions (settings say {spec.partitions})")
    for key, value in spec.config.items():
        if info.config.get(key, value) != value:
            out.append(f"{spec.name}: {key}={info.config.get(key)} (settings say {value})")
    return out
