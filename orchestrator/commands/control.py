"""`modq controller`: run a controller process (to be filled in by issue 5)."""

import typer


def controller() -> None:
    """Run a controller (any number may run; one leads)."""
    raise typer.Exit(1)
