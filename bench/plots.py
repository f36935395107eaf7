"""PNG figures of the benchmark summaries (matplotlib, Agg; numbers in, files out).

Each ``plot_*`` takes a summary dict as written to ``docs/bench/*.json`` (missing numbers
may be ``None``) and a target path, and writes one PNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SYSTEMS = ("passthrough", "modq", "faust")
COLOURS = {"passthrough": "#9e9e9e", "modq": "#1f77b4", "faust": "#ff7f0e"}


def _f(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_throughput(summary: dict[str, Any], path: Path) -> None:
    """Median drain rate per system, min–max as error bars, ratios to the ceiling."""
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    base = _f(summary["throughput_median"].get("passthrough"))
    bars = (*SYSTEMS, "processor")
    for i, system in enumerate(bars):
        values = [_f(v) for v in summary["throughput"].get(system, [])]
        med = _f(summary["throughput_median"].get(system))
        if not math.isfinite(med):
            continue
        low = med - min(values, default=med)
        high = max(values, default=med) - med
        ax.bar(i, med, color=COLOURS.get(system, "#8c564b"), yerr=[[low], [high]], capsize=4)
        if math.isfinite(base) and base:
            ax.annotate(
                f"{med:,.0f}/s\n{med / base:.0%} of ceiling",
                (i, med),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 4),
                textcoords="offset points",
            )
    names = ["passthrough\n(ceiling)", "modq", "faust agent", "processor alone\n(no Kafka)"]
    ax.set_xticks(range(len(bars)), names)
    ax.set_yscale("log")
    ax.set_ylabel("moderated msgs/s (median, log scale)")
    ax.set_title("Draining a backlog: modq vs the passthrough ceiling and a faust agent")
    ax.margins(y=0.25)
    save(fig, path)


def plot_latency(summary: dict[str, Any], path: Path) -> None:
    """p50 and p99 per system at each offered load (log scale)."""
    fig, ax = plt.subplots(figsize=(9.0, 3.8))
    loads = sorted({load for s in SYSTEMS for load in summary["latency"].get(s, {})}, key=int)
    width = 0.8 / len(SYSTEMS)
    for j, system in enumerate(SYSTEMS):
        by_load = summary["latency"].get(system, {})
        xs = [i + (j - 1) * width for i in range(len(loads))]
        p50 = [_f(by_load.get(load, {}).get("p50_ms")) for load in loads]
        p99 = [_f(by_load.get(load, {}).get("p99_ms")) for load in loads]
        ax.bar(xs, p99, width, color=COLOURS[system], alpha=0.35)
        ax.bar(xs, p50, width, color=COLOURS[system], label=f"{system} (p50 solid, p99 light)")
    ax.set_xticks(range(len(loads)), [f"{load}% of its max" for load in loads])
    ax.set_yscale("log")
    ax.set_ylabel("submitted_at → decision visible (ms)")
    ax.set_title("Latency at a steady offered rate")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save(fig, path)


def plot_io(summary: dict[str, Any], path: Path) -> None:
    """Throughput vs max_in_flight_keys under the I/O-bound policy, with the ideal bound."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    entries = sorted(summary["io_bound"].items(), key=lambda kv: int(kv[0]))
    xs = [int(k) for k, _ in entries]
    ax.plot(xs, [_f(v["bound"]) for _, v in entries], "k--", label="bound: keys in flight ÷ delay")
    med = [_f(v["median"]) for _, v in entries]
    ax.plot(xs, med, "o-", color=COLOURS["modq"], label="modq (median)")
    for x, y, (_, v) in zip(xs, med, entries, strict=True):
        if math.isfinite(y):
            share = _f(v.get("of_bound"))
            ax.annotate(
                f"{y:,.0f}/s ({share:.0%})",
                (x, y),
                fontsize=8,
                xytext=(4, -12),
                textcoords="offset points",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("max_in_flight_keys")
    ax.set_ylabel("msgs/s")
    delay = _f(summary.get("io_delay_s")) * 1000
    ax.set_title(f"Key concurrency, I/O-bound policy ({delay:g} ms per record)")
    ax.legend(fontsize=8)
    save(fig, path)


def plot_exactly_once(summary: dict[str, Any], path: Path) -> None:
    """modq's drain rate under both guarantees."""
    eos = summary["exactly_once"]
    values = [_f(eos.get("at_least_once")), _f(eos.get("exactly_once"))]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.bar([0, 1], values, color=[COLOURS["modq"], "#2ca02c"])
    ax.set_xticks([0, 1], ["at_least_once", "exactly_once"])
    ax.set_ylabel("msgs/s (median)")
    cost = _f(eos.get("ratio"))
    ax.set_title(f"Exactly-once cost: {cost:.2f}× the at-least-once rate")
    save(fig, path)


WORKER_FIGURES: tuple[tuple[str, str, Callable[[dict[str, Any], Path], None]], ...] = (
    (
        "worker-throughput",
        "Throughput vs the passthrough ceiling and the faust agent",
        plot_throughput,
    ),
    ("worker-latency", "Latency percentiles at 25/50/75% load", plot_latency),
    ("worker-key-concurrency", "Key-concurrency scaling under the I/O-bound policy", plot_io),
    ("worker-exactly-once", "Exactly-once cost", plot_exactly_once),
)


def numeric_series(data: Any, path: str = "") -> Iterator[tuple[str, list[float]]]:
    """Every non-empty list of numbers in ``data`` (nested dicts/lists), with its key path."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key != "meta":
                yield from numeric_series(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list) and data:
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in data):
            yield path, [float(v) for v in data]
        else:
            for i, value in enumerate(data):
                yield from numeric_series(value, f"{path}[{i}]")


def plot_reallocation(data: dict[str, Any], path: Path) -> bool:
    """Box plots of every numeric series in the controller benchmark's JSON (its format is
    that benchmark's own; series are labelled by key path). False if there is none."""
    series = [
        (name, values)
        for name, values in numeric_series(data)
        if any(w in name.lower() for w in ("realloc", "latenc", "_s", "_ms", "second"))
    ]
    if not series:
        series = list(numeric_series(data))
    if not series:
        return False
    series = series[:12]
    fig, ax = plt.subplots(figsize=(7.0, 0.5 * len(series) + 1.8))
    ax.boxplot([v for _, v in series], vert=False)
    ax.set_yticks(range(1, len(series) + 1), [name for name, _ in series], fontsize=8)
    names = [name for name, _ in series]
    unit = "seconds" if all(n.endswith("_s") for n in names) else "value (unit as in the key)"
    ax.set_xlabel("milliseconds" if all(n.endswith("_ms") for n in names) else unit)
    ax.set_title("Reallocation (docs/bench/controller.json)")
    save(fig, path)
    return True
