"""`modq queue-state`: the per-key queue materializer (to be filled in by issue 6)."""

import typer


def queue_state() -> None:
    """Run the faust-streaming app that materialises per-key queues."""
    raise typer.Exit(1)
