"""`modq submit` and `modq loadgen`: publish submissions (to be filled in by issue 3)."""

import typer


def submit() -> None:
    """Publish submissions from arguments, a JSON file, or JSON lines on stdin."""
    raise typer.Exit(1)


def loadgen() -> None:
    """Generate realistic load for demos and benchmarks."""
    raise typer.Exit(1)
