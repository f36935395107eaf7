"""`modq run`, `modq worker`: the processes of the pipeline.

`modq run` is the supervisor of ``make run``: it ensures a broker (by the project's
precedence) and the topics, then starts the controller, N workers, the queue-state app and
the dashboard as child processes, restarts any that crash, and on Ctrl-C/SIGTERM drains and
stops them all (and the broker, if it started one).
"""

import asyncio
import importlib.util
import logging
import os
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from schemas.queues import QueueClass
from schemas.settings import Settings

console = Console(stderr=True)

# Components that later parts of the pipeline provide: (child name, module, argv after `cli`).
_OPTIONAL_CHILDREN = (
    ("controller", "orchestrator.controller", ("controller", "--id", "c1")),
    ("queue-state", "streams.queue_state", ("queue-state",)),
    ("dashboard", "orchestrator.dashboard", ("dashboard",)),
)


def configure_logging(level: str) -> None:
    """Plain, timestamped log lines on stderr for every modq process."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)


def worker(
    worker_id: Annotated[str, typer.Option("--id", help="unique worker id, e.g. w1")],
    queue_class: Annotated[
        QueueClass | None,
        typer.Option("--class", help="class to serve until the controller says otherwise"),
    ] = None,
    metrics_port: Annotated[int, typer.Option(help="Prometheus port (0: none)")] = 0,
    log_level: Annotated[str, typer.Option(help="logging level")] = "info",
) -> None:
    """Run one worker process (serves one queue class at a time; SIGTERM drains)."""
    from orchestrator.cli import settings_or_exit
    from streams.worker import run_worker_process

    configure_logging(log_level)
    settings = settings_or_exit()
    code = run_worker_process(
        settings, worker_id=worker_id, initial_class=queue_class, metrics_port=metrics_port
    )
    raise typer.Exit(code)


def pipeline_children(settings: Settings, bootstrap: str) -> list[tuple[str, tuple[str, ...]]]:
    """(name, argv) of every child `modq run` starts, in start order."""
    from orchestrator.pool import initial_assignments, worker_ids

    children: list[tuple[str, tuple[str, ...]]] = []
    for name, module, extra in _OPTIONAL_CHILDREN:
        if importlib.util.find_spec(module) is not None:
            children.append((name, ("-m", "orchestrator.cli", *extra)))
    ids = worker_ids(settings.total_workers)
    for worker_id, cls in initial_assignments(settings, ids, datetime.now(UTC)).items():
        argv: tuple[str, ...] = ("-m", "orchestrator.cli", "worker", "--id", worker_id)
        if cls is not None:
            argv = (*argv, "--class", cls.value)
        children.append((worker_id, argv))
    del bootstrap
    return children


def run(
    workers: Annotated[
        int | None, typer.Option(help="worker processes (default MODQ_TOTAL_WORKERS)")
    ] = None,
) -> None:
    """Run the whole pipeline in the foreground; Ctrl-C drains and stops everything."""
    from orchestrator.broker import ensure_broker, release_broker
    from orchestrator.cli import fail, settings_or_exit
    from orchestrator.kafka_admin import KafkaUnavailableError
    from orchestrator.localkafka.cluster import BrokerStartError
    from orchestrator.localkafka.jars import JarFetchError, ToolMissingError
    from orchestrator.provisioning import provision
    from orchestrator.supervisor import ChildSpec, Supervisor

    configure_logging("warning")
    settings = settings_or_exit(total_workers=workers)
    try:
        with console.status("starting Apache Kafka") as status:
            lease = ensure_broker(settings, progress=status.update)
    except (ToolMissingError, JarFetchError, BrokerStartError) as exc:
        fail(str(exc))
    try:
        try:
            report = provision(settings, bootstrap=lease.bootstrap)
        except KafkaUnavailableError as exc:
            fail(str(exc))
        console.print(
            f"[green]Kafka[/] {lease.bootstrap} ({lease.source.value}); topics: "
            f"{len(report.created)} created, {len(report.existing)} present"
        )
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": lease.bootstrap}
        specs = [ChildSpec(n, argv) for n, argv in pipeline_children(settings, lease.bootstrap)]
        console.print(
            f"dashboard: http://{settings.dashboard_host}:{settings.dashboard_port}/ "
            "· Ctrl-C drains and stops everything"
        )

        async def supervise() -> None:
            supervisor = Supervisor(
                specs,
                env=env,
                drain_timeout=settings.drain_timeout_seconds + 5,
                on_event=lambda line: console.print(f"[dim]{_clock()}[/] {line}"),
            )
            supervisor.install_signal_handlers()
            async with supervisor:
                await supervisor.run()

        asyncio.run(supervise())
    finally:
        release_broker(settings, lease)
        if lease.started:
            console.print("stopped the Kafka broker modq started")


def _clock() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")
