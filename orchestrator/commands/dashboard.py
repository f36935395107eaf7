"""`modq dashboard`: serve the live dashboard on the visualization topic."""

from typing import Annotated

import typer


def dashboard(
    host: Annotated[
        str | None, typer.Option(help="bind address (default MODQ_DASHBOARD_HOST, 127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="port (default MODQ_DASHBOARD_PORT, 8765)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="logging level")] = "warning",
) -> None:
    """Serve the live dashboard on the visualization topic.

    Binding to anything but a loopback address needs MODQ_DASHBOARD_TOKEN (a bearer token, or
    a sign-in form in the browser); start-up refuses otherwise.
    """
    from orchestrator.cli import settings_or_exit
    from orchestrator.commands.pipeline import configure_logging
    from orchestrator.dashboard import run_dashboard_process

    configure_logging(log_level)
    settings = settings_or_exit(dashboard_host=host, dashboard_port=port)
    raise typer.Exit(run_dashboard_process(settings))
