"""`modq status`: the pipeline at a glance (to be filled in by issue 5)."""

import typer


def status() -> None:
    """Broker, topics, queue lengths per class, workers and the leading controller."""
    raise typer.Exit(1)
