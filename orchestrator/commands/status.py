"""`modq status`: the pipeline at a glance, read from Kafka alone.

Shows whether the broker answers, modq's topics, each queue class's length (per partition:
log-end − committed offset of the class's group; the whole backlog when nothing is committed)
and oldest wait, the workers from their latest heartbeats (with the heartbeat's age), and the
controller that leads (the member of ``{prefix}modq.controllers`` that owns the control
partition). Only the bootstrap address is printed: never a credential.

Exit codes: 0 ok, 1 broker unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from schemas.settings import Settings

out = Console()


@dataclass(frozen=True)
class ClassRow:
    """One queue class's line."""

    name: str
    length: int
    partitions: str
    oldest_wait_seconds: float


@dataclass(frozen=True)
class WorkerRow:
    """One worker's line."""

    worker_id: str
    queue_class: str
    state: str
    in_flight: int
    processed: int
    heartbeat_age_seconds: float
    alive: bool


@dataclass(frozen=True)
class StatusReport:
    """Everything `modq status` prints."""

    bootstrap: str
    broker_count: int
    topics: tuple[tuple[str, int | None], ...]
    classes: tuple[ClassRow, ...]
    workers: tuple[WorkerRow, ...]
    leader: str | None


def collect(settings: Settings, now: datetime) -> StatusReport:
    """Ask the cluster; raises ``KafkaUnavailableError`` when no broker answers."""
    from orchestrator.controller.control_plane import ControlLog, heartbeat_age
    from orchestrator.controller.kafka_io import OffsetsReader, describe_leader, read_log
    from orchestrator.controller.leadership import controllers_group
    from orchestrator.controller.measurement import timestamp_positions, waits
    from orchestrator.controller.runtime import class_sources
    from orchestrator.kafka_admin import cluster_info, describe_topics
    from schemas.kafka_config import bootstrap_servers, client_config
    from schemas.topics import TopicNames

    config = client_config(settings)
    info = cluster_info(config)
    names = TopicNames.from_prefix(settings.topic_prefix)
    described = describe_topics(config, names.all())
    topics = tuple(
        (name, described[name].partitions if name in described else None) for name in names.all()
    )
    classes: list[ClassRow] = []
    if all(t in described for t in names.submission_topics()):
        reader = OffsetsReader(settings, class_sources(names))
        try:
            offsets = reader.snapshot()
            stamps = reader.timestamps(timestamp_positions(offsets.values()))
        finally:
            reader.close()
        for cls, class_offsets in offsets.items():
            oldest, _avg = waits(class_offsets, stamps, now)
            parts = " ".join(f"p{p.partition}:{p.lag}" for p in class_offsets.partitions)
            classes.append(ClassRow(cls.value, class_offsets.length, parts, oldest))
    workers: list[WorkerRow] = []
    leader = None
    if names.control in described:
        log = ControlLog()
        for key, value in read_log(settings, names.control):
            log.apply(key, value)
        for beat in log.known(now, forget_seconds=float("inf")):
            assigned = log.class_of(beat.worker_id)
            workers.append(
                WorkerRow(
                    worker_id=beat.worker_id,
                    queue_class=assigned.value if assigned is not None else "-",
                    state=beat.state.value,
                    in_flight=beat.in_flight,
                    processed=beat.processed,
                    heartbeat_age_seconds=heartbeat_age(beat, now),
                    alive=log.is_alive(beat.worker_id, now, settings.worker_timeout_seconds),
                )
            )
        client = describe_leader(settings, controllers_group(names), names.control)
        leader = client.removeprefix("controller-") if client else None
    return StatusReport(
        bootstrap=bootstrap_servers(settings),
        broker_count=len(info.broker_ids),
        topics=topics,
        classes=tuple(classes),
        workers=tuple(workers),
        leader=leader,
    )


def render(report: StatusReport, console: Console) -> None:
    """Print the report as rich tables."""
    console.print(
        f"[green]Kafka[/] {report.bootstrap}: {report.broker_count} broker(s) · leading "
        f"controller: {report.leader or '[yellow]none[/] (workers keep their assignments)'}"
    )
    topics = Table("topic", "partitions", title="topics")
    for name, partitions in report.topics:
        topics.add_row(name, str(partitions) if partitions is not None else "[red]missing[/]")
    console.print(topics)
    classes = Table("class", "length", "lag per partition", "oldest wait", title="queues")
    for row in report.classes:
        classes.add_row(
            row.name, str(row.length), row.partitions, f"{row.oldest_wait_seconds:.1f} s"
        )
    console.print(classes)
    workers = Table(
        "worker", "class", "state", "in flight", "processed", "heartbeat age", title="workers"
    )
    for w in report.workers:
        age = f"{w.heartbeat_age_seconds:.1f} s" + ("" if w.alive else " [red](lost)[/]")
        workers.add_row(
            w.worker_id, w.queue_class, w.state, str(w.in_flight), str(w.processed), age
        )
    console.print(workers)


def status() -> None:
    """Broker, topics, queue lengths per class, workers and the leading controller."""
    from orchestrator.cli import fail, settings_or_exit
    from orchestrator.kafka_admin import KafkaUnavailableError
    from schemas.kafka_config import bootstrap_servers

    settings = settings_or_exit()
    try:
        report = collect(settings, datetime.now(UTC))
    except KafkaUnavailableError as exc:
        fail(f"broker unreachable at {bootstrap_servers(settings)}: {exc.detail}")
    render(report, out)
