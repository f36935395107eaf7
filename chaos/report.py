"""Render a checker :class:`~chaos.checker.Report` as a rich table or as markdown.

Each row is one violation class: its count, ``ok`` / ``tolerated`` / ``FAIL`` under the
report's guarantee, and up to a few example ids or positions.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from chaos.checker import TOLERATED, Report, Violation


def _status(report: Report, violation: Violation) -> str:
    if report.count(violation) == 0:
        return "ok"
    return "tolerated" if violation in TOLERATED[report.guarantee] else "FAIL"


def _summary(report: Report) -> str:
    return (
        f"{report.guarantee.value}: {report.submitted} submitted ({report.valid} valid), "
        f"{report.decided} decided ({report.decisions_total} decision records), "
        f"{report.dead_letters_total} dead letters — {'PASS' if report.ok else 'FAIL'}"
    )


def render_table(report: Report, *, title: str = "checker") -> Table:
    """A rich table of ``report`` (its caption is the summary line); print it with a console."""
    table = Table(title=title, caption=_summary(report))
    table.add_column("violation")
    table.add_column("count", justify="right")
    table.add_column("status")
    table.add_column("examples")
    for violation in Violation:
        table.add_row(
            violation.value,
            str(report.count(violation)),
            _status(report, violation),
            ", ".join(report.examples.get(violation, ())),
        )
    return table


def render_markdown(report: Report, *, title: str = "checker") -> str:
    """A markdown section: a summary line and one table row per violation class."""
    lines = [
        f"**{title}** — {_summary(report)}",
        "",
        "| violation | count | status | examples |",
        "|---|---:|---|---|",
    ]
    for violation in Violation:
        examples = ", ".join(report.examples.get(violation, ()))
        lines.append(
            f"| {violation.value} | {report.count(violation)} | "
            f"{_status(report, violation)} | {examples} |"
        )
    return "\n".join(lines) + "\n"


def print_report(report: Report, *, title: str = "checker", figures: str = "") -> None:
    """Print the table (and a line of scenario figures) to stdout, uncoloured for logs."""
    console = Console(no_color=True, width=140)
    console.print(render_table(report, title=title))
    console.print(f"[{title}] {_summary(report)}", markup=False, highlight=False)
    if figures:
        console.print(f"[{title}] {figures}", markup=False, highlight=False)
