"""`modq controller`: run a controller process (any number may run; exactly one leads)."""

from typing import Annotated

import typer


def controller(
    controller_id: Annotated[
        str, typer.Option("--id", help="unique controller id, e.g. c1 (the smallest alive leads)")
    ] = "c1",
    log_level: Annotated[str, typer.Option(help="logging level")] = "info",
) -> None:
    """Run a controller (any number may run; one leads, the others stand by)."""
    from orchestrator.cli import settings_or_exit
    from orchestrator.commands.pipeline import configure_logging
    from orchestrator.controller import run_controller_process

    configure_logging(log_level)
    settings = settings_or_exit()
    raise typer.Exit(run_controller_process(settings, controller_id))
