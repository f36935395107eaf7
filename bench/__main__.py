"""``make bench`` (``python -m bench``): run every benchmark present, then write docs/benchmarks.md.

Runs, in order, each of :data:`MODULES` that exists (others are skipped with a note) by
calling its ``main(argv)`` (``main()`` if it takes no arguments); a failing benchmark is
reported and the rest still run. Then :func:`bench.report.assemble` writes
``docs/benchmarks.md`` from ``docs/bench/*.md`` and the figures (PNG under ``docs/bench/``).

Options: ``--quick`` runs only the modules that define ``QUICK_ARGV``, each with it;
``--only NAME`` (repeatable: ``worker``, ``publisher``, ...) runs just those;
``--assemble-only`` runs nothing and rebuilds the page from the files already there.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.report import assemble

MODULES = (
    "bench.publisher",
    "bench.worker",
    "bench.memory",
    "bench.reallocation",
    "bench.queue_state",
)
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def run_module(name: str, quick: bool, console: Console) -> str:
    """Run one benchmark module's ``main``; a one-line outcome."""
    if not _present(name):
        return f"{name}: not present, skipped"
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        return f"{name}: import failed ({type(exc).__name__}: {exc}), skipped"
    entry: Callable[..., Any] | None = getattr(module, "main", None)
    if entry is None:
        return f"{name}: no main(), skipped"
    quick_argv: list[str] | None = getattr(module, "QUICK_ARGV", None)
    if quick and quick_argv is None:
        return f"{name}: no QUICK_ARGV (no quick mode), skipped in --quick"
    argv = list(quick_argv or []) if quick else []
    takes_argv = bool(inspect.signature(entry).parameters)
    console.rule(f"{name} {' '.join(argv)}".strip())
    try:
        status = entry(argv) if takes_argv else entry()
    except SystemExit as exc:
        status = exc.code
    except Exception:
        console.print(traceback.format_exc())
        return f"{name}: FAILED (traceback above)"
    if isinstance(status, int) and status != 0:
        return f"{name}: exited with status {status}"
    return f"{name}: done" + (" (quick)" if argv else "")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and assemble the page; 1 if any benchmark failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--assemble-only", action="store_true")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    outcomes: list[str] = []
    if not args.assemble_only:
        wanted = {f"bench.{n.removeprefix('bench.')}" for n in args.only}
        for name in MODULES:
            if wanted and name not in wanted:
                continue
            outcomes.append(run_module(name, args.quick, console))
    page, notes = assemble(DOCS)
    console.rule("benchmarks")
    for line in [*outcomes, *notes]:
        console.print(f"- {line}")
    console.print(f"wrote {page}")
    failed = any("FAILED" in o or "exited with status" in o for o in outcomes)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
