"""The `modq` command line: the operator surface of ../shared/CONTRACT.md.

Commands are thin: they read settings once at the edge, then call the module that does the
work. Imports of heavy modules happen inside commands so `modq --help` stays fast.
Exit codes: 0 ok, 1 runtime failure, 2 invalid input or settings.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from orchestrator.commands import control, dashboard, pipeline, publishing, queue_state, status
from schemas.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    name="modq",
    help="Moderation queues for a forum on Apache Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
kafka_app = typer.Typer(help="Start and stop the local Apache Kafka broker.", no_args_is_help=True)
topics_app = typer.Typer(help="Create and describe modq's topics.", no_args_is_help=True)
schemas_app = typer.Typer(help="JSON Schema and AsyncAPI documents.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")

T = TypeVar("T")
console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` in red on stderr and exit with ``code``."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_or_exit(**overrides: Any) -> Settings:
    """Load settings; an invalid one stops start-up with exit code 2 naming it."""
    try:
        return load_settings({k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        fail(str(exc), 2)


# --- kafka ---------------------------------------------------------------------------------


@kafka_app.command("up")
def kafka_up(
    three: Annotated[bool, typer.Option("--three", help="three-broker cluster (RF 3)")] = False,
    name: Annotated[str, typer.Option(help="cluster name (folder under .modq/kafka)")] = "",
) -> None:
    """Start (or reuse) a local KRaft broker from Kafka's Maven Central jars."""
    from orchestrator.localkafka import cluster
    from orchestrator.localkafka.jars import JarFetchError, ToolMissingError

    settings = settings_or_exit()
    nodes = 3 if three else 1
    cluster_name = name or ("three" if three else "default")
    try:
        with console.status("starting Apache Kafka") as status:
            handle = cluster.up(
                settings.state_dir,
                name=cluster_name,
                nodes=nodes,
                progress=status.update,
            )
    except (ToolMissingError, JarFetchError, cluster.BrokerStartError) as exc:
        fail(str(exc))
    out.print(handle.bootstrap)
    console.print(
        f"[green]Kafka {handle.kafka_version} ready[/] at {handle.bootstrap} "
        f"({len(handle.nodes)} node(s), data and logs in {handle.directory})"
    )


@kafka_app.command("down")
def kafka_down(
    wipe: Annotated[bool, typer.Option(help="also delete the data and log folder")] = False,
    name: Annotated[str, typer.Option(help="cluster name")] = "default",
    all_clusters: Annotated[bool, typer.Option("--all", help="every local cluster")] = False,
) -> None:
    """Stop exactly the broker processes `kafka up` started."""
    from orchestrator.localkafka import cluster

    settings = settings_or_exit()
    root = settings.state_dir / "kafka"
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if all_clusters else [name]
    for cluster_name in names if root.exists() else []:
        pids = cluster.down(settings.state_dir, name=cluster_name, wipe=wipe)
        console.print(f"stopped {cluster_name}: {len(pids)} process(es) {pids}")


@kafka_app.command("status")
def kafka_status(name: Annotated[str, typer.Option(help="cluster name")] = "default") -> None:
    """Say whether the local broker is running, and where."""
    from orchestrator.localkafka import cluster

    settings = settings_or_exit()
    handle = cluster.status(settings.state_dir, name)
    if handle is None:
        fail(f"local cluster {name!r} is not running", 3)
    out.print(handle.bootstrap)


# --- topics --------------------------------------------------------------------------------


@topics_app.command("create")
def topics_create() -> None:
    """Create every modq topic that does not exist yet (idempotent)."""
    from orchestrator.provisioning import provision

    settings = settings_or_exit()
    report = _with_kafka_errors(lambda: provision(settings))
    for name in report.created:
        out.print(f"created  {name}")
    for name in report.existing:
        out.print(f"exists   {name}")
    for line in report.drift:
        console.print(f"[yellow]drift[/]    {line}")


@topics_app.command("describe")
def topics_describe() -> None:
    """Partitions, replication factor and configs of modq's topics."""
    from rich.table import Table

    from orchestrator.kafka_admin import describe_topics
    from orchestrator.provisioning import topic_specs
    from schemas.kafka_config import client_config

    settings = settings_or_exit()
    specs = topic_specs(settings)
    infos = _with_kafka_errors(
        lambda: describe_topics(client_config(settings), [s.name for s in specs])
    )
    table = Table("topic", "partitions", "replication", "config")
    for spec in specs:
        info = infos.get(spec.name)
        if info is None:
            table.add_row(spec.name, "[red]missing[/]", "", "")
            continue
        cfg = ", ".join(f"{k}={v}" for k, v in sorted(info.config.items()))
        table.add_row(spec.name, str(info.partitions), str(info.replication_factor), cfg)
    out.print(table)


@topics_app.command("grow")
def topics_grow(
    topic: Annotated[str, typer.Argument(help="full topic name")],
    partitions: Annotated[int, typer.Option(help="new total partition count")],
    force: Annotated[bool, typer.Option(help="allow growing a keyed topic")] = False,
) -> None:
    """Add partitions to a topic; refuses keyed topics without --force (breaks key order)."""
    from orchestrator.provisioning import KeyedTopicGrowthError, grow_partitions, topic_specs
    from schemas.kafka_config import client_config

    settings = settings_or_exit()
    specs = {s.name: s for s in topic_specs(settings)}
    if topic not in specs:
        fail(f"topic: {topic} is not one of modq's topics ({', '.join(specs)})", 2)
    try:
        grow_partitions(client_config(settings), specs[topic], partitions, force=force)
    except KeyedTopicGrowthError as exc:
        fail(str(exc), 2)
    out.print(f"{topic}: {partitions} partitions")


# --- schemas -------------------------------------------------------------------------------


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Option(help="where to write")] = Path("docs"),
    check: Annotated[bool, typer.Option(help="fail if the files differ instead")] = False,
) -> None:
    """Write JSON Schema for every public message and the AsyncAPI 3.0 document."""
    from schemas.export import render_all

    stale: list[str] = []
    for rel, text in sorted(render_all().items()):
        path = directory / rel
        current = path.read_text("utf-8") if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
        out.print(f"wrote {path}")
    if stale:
        fail("out of date (run `modq schemas export`): " + ", ".join(stale))


def _with_kafka_errors(action: Callable[[], T]) -> T:
    from orchestrator.kafka_admin import KafkaUnavailableError

    try:
        return action()
    except KafkaUnavailableError as exc:
        fail(f"{exc} (is the broker up? `make kafka-up`, or set KAFKA_BOOTSTRAP_SERVERS)")


# Sub-commands defined in their own modules, registered here explicitly (no import magic).
app.command("run")(pipeline.run)
app.command("worker")(pipeline.worker)
app.command("controller")(control.controller)
app.command("queue-state")(queue_state.queue_state)
app.command("dashboard")(dashboard.dashboard)
app.command("submit")(publishing.submit)
app.command("loadgen")(publishing.loadgen)
app.command("status")(status.status)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
