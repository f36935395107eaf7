"""`modq dashboard`: serve the live dashboard (to be filled in by issue 7)."""

import typer


def dashboard() -> None:
    """Serve the live dashboard on the visualization topic."""
    raise typer.Exit(1)
