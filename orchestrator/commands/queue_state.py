"""`modq queue-state`: the per-key queue materializer (issue 6, `streams.queue_state`)."""

from typing import Annotated

import typer


def queue_state(
    log_level: Annotated[str, typer.Option(help="logging level")] = "info",
) -> None:
    """Run the faust-streaming app that materialises per-key queues (SIGTERM stops it)."""
    from orchestrator.cli import settings_or_exit
    from orchestrator.commands.pipeline import configure_logging
    from streams.queue_state import run_queue_state_process

    configure_logging(log_level)
    settings = settings_or_exit()
    raise typer.Exit(run_queue_state_process(settings, loglevel=log_level))
