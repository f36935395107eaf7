"""Benchmark reports: numbers in, markdown (and, via :mod:`bench.plots`, PNG) out.

- :func:`summarize_worker` / :func:`worker_markdown`: the worker benchmark's medians, ratios
  and ``docs/bench/worker.md`` from its raw runs (pure).
- :func:`assemble`: ``docs/benchmarks.md`` from every ``docs/bench/*.md`` plus the figures
  drawn from ``docs/bench/worker.json`` and ``docs/bench/controller.json`` (when present);
  every figure is captioned with the command that reproduces it, the machine and the date.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.checks import median, ratio
from bench.machine import machine_line

SYSTEMS = ("passthrough", "modq", "faust")
SECTION_ORDER = ("publisher", "worker", "memory", "controller", "reallocation", "queue_state")


def _pct(load: float) -> str:
    return str(round(load * 100))


def summarize_worker(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians and ratios of the worker benchmark's runs (failed runs left out, counted)."""
    good = [r for r in runs if not r.get("error")]

    def rates(experiment: str, system: str = "modq", **match: Any) -> list[float]:
        return [
            float(r["throughput"])
            for r in good
            if r["experiment"] == experiment
            and r["system"] == system
            and all(r.get(k) == v for k, v in match.items())
        ]

    throughput = {s: rates("compare", s) for s in SYSTEMS}
    throughput["processor"] = rates("processor", "processor")
    med = {s: median(v) for s, v in throughput.items()}
    kafka_runs = [r for r in runs if r["experiment"] != "processor"]
    latency: dict[str, dict[str, dict[str, float]]] = {}
    for system in SYSTEMS:
        phases = [
            p
            for r in good
            if r["experiment"] == "compare" and r["system"] == system
            for p in r.get("latency", [])
        ]
        by_load: dict[str, dict[str, float]] = {}
        for load in sorted({float(p["load"]) for p in phases}):
            at = [p for p in phases if float(p["load"]) == load]
            by_load[_pct(load)] = {
                key: median(float(p[key]) for p in at)
                for key in ("offered_rate", "achieved_rate", "p50_ms", "p90_ms", "p99_ms")
            } | {"runs": len(at)}
        latency[system] = by_load
    io: dict[str, dict[str, float]] = {}
    delays = {float(r["delay_s"]) for r in good if r["experiment"] == "io_bound"}
    delay = delays.pop() if len(delays) == 1 else math.nan
    mifks = sorted({int(r["max_in_flight_keys"]) for r in runs if r["experiment"] == "io_bound"})
    for mifk in mifks:
        values = rates("io_bound", max_in_flight_keys=mifk)
        bound = mifk / delay if delay else math.nan
        io[str(mifk)] = {
            "median": median(values),
            "bound": bound,
            "of_bound": ratio(median(values), bound),
            "runs": len(values),
            "min": min(values, default=math.nan),
            "max": max(values, default=math.nan),
        }
    base_io = io.get(str(mifks[0]), {}).get("median", math.nan) if mifks else math.nan
    for entry in io.values():
        entry["vs_lowest"] = ratio(entry["median"], base_io)
    eos = rates("exactly_once", guarantee="exactly_once")
    # Systems are interleaved inside each repetition, so a per-repetition ratio compares runs
    # that shared the machine's state of the moment: steadier than a ratio of medians when
    # the (shared) machine drifts during the run.
    per_rep: dict[int, dict[str, float]] = {}
    for r in good:
        if r["experiment"] == "compare" and r["system"] in ("modq", "faust"):
            per_rep.setdefault(int(r["rep"]), {})[r["system"]] = float(r["throughput"])
    rep_ratios = [
        ratio(pair["modq"], pair["faust"])
        for _, pair in sorted(per_rep.items())
        if "modq" in pair and "faust" in pair
    ]
    return {
        "throughput": throughput,
        "throughput_median": med,
        "modq_vs_passthrough": ratio(med["modq"], med["passthrough"]),
        "modq_vs_faust": ratio(med["modq"], med["faust"]),
        "modq_vs_faust_per_rep": rep_ratios,
        "modq_vs_processor": ratio(med["modq"], med["processor"]),
        "latency": latency,
        "io_bound": io,
        "io_delay_s": delay,
        "exactly_once": {
            "at_least_once": med["modq"],
            "exactly_once": median(eos),
            "exactly_once_runs": eos,
            "ratio": ratio(median(eos), med["modq"]),
        },
        "runs": len(kafka_runs),
        "failed": [
            f"{r['experiment']}/{r['system']}/rep {r['rep']}" for r in runs if r.get("error")
        ],
        "order_ok": sum(1 for r in kafka_runs if r.get("order", {}).get("ok")),
        "duplicates": sum(int(r.get("order", {}).get("duplicates", 0)) for r in kafka_runs),
    }


def _n(value: Any, digits: int = 0) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}"


def _x(value: Any) -> str:
    return (
        "–" if not isinstance(value, int | float) or not math.isfinite(value) else f"{value:.2f}×"
    )


def worker_markdown(data: dict[str, Any]) -> str:
    """The text of ``docs/bench/worker.md``."""
    meta, s = data["meta"], data["summary"]
    plan = meta["plan"]
    quick = meta.get("quick")
    per_rep: list[float] = s.get("modq_vs_faust_per_rep", [])
    medians: dict[str, float] = s["throughput_median"]
    title = "# Worker throughput and latency" + (
        " — QUICK RUN (noisy, small sizes)" if quick else ""
    )
    lines = [title, ""]
    if quick:
        lines += [
            "> **Quick run**: one repetition at small sizes, to check the benchmark works end to "
            "end. Its numbers are noisy and not the project's figures; the full run is "
            "`.venv/bin/python -m bench.worker` on a quiet machine.",
            "",
        ]
    lines += [
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']} (finished {meta.get('finished', '?')})",
        f"- machine: {machine_line(meta)}; a shared dev machine, one local Apache Kafka 4.1 "
        f"broker at {meta['bootstrap']}",
        f"- workload: {plan['backlog']:,} post submissions preloaded per drain "
        f"(~{meta['record_bytes']} bytes each) over {plan['keys']:,} topic keys, "
        f"{meta['partitions']} partitions; {plan['reps']} repetition(s), systems interleaved "
        "in each; medians reported",
        "",
        "## Throughput: draining a backlog (RuleBasedPolicy, at-least-once)",
        "",
        "Rate from the first to the last answer visible to a read-committed consumer "
        "(process start-up and group join excluded).",
        "",
        "| system | median msgs/s | min | max | runs | vs passthrough |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = s["throughput_median"]["passthrough"]
    for system in (*SYSTEMS, "processor"):
        vals = s["throughput"].get(system, [])
        med = s["throughput_median"].get(system)
        name = "processor (in-process, no Kafka)" if system == "processor" else system
        lines.append(
            f"| {name} | {_n(med)} | {_n(min(vals, default=math.nan))} | "
            f"{_n(max(vals, default=math.nan))} | {len(vals)} | {_x(ratio(med, base))} |"
        )
    lines += [
        "",
        f"- modq ÷ passthrough: **{_x(s['modq_vs_passthrough'])}** (target ≥ 0.50×)",
        f"- modq ÷ faust agent: **{_x(s['modq_vs_faust'])}** (target ≥ 5×); per "
        f"repetition (the two ran back to back): {', '.join(map(_x, per_rep)) or '–'}, "
        f"median **{_x(median(per_rep) if per_rep else None)}**",
        f"- modq ÷ processor (the work alone on one core): **{_x(s.get('modq_vs_processor'))}**",
        "",
        "`passthrough`: bare confluent-kafka consume → produce (a decision-sized value) → ack → "
        "commit per batch, no decoding or policy: the ceiling. `faust`: one faust-streaming "
        "agent running the same RecordProcessor (decode, RuleBasedPolicy, decision) and "
        "sending with faust's producer. `modq`: `streams.worker.serve_worker`, `topic_posts`, "
        "max_in_flight_keys=64. `processor`: the same RecordProcessor called in a loop in one "
        "process with no Kafka at all: the CPU cost of the work itself, i.e. the most one "
        "core can moderate whatever the pipeline around it.",
        "",
        "The passthrough target is out of reach for any pipeline that does this work in one "
        "process: the work alone, with no Kafka at all, runs at "
        f"{_x(ratio(medians.get('processor'), medians.get('passthrough')))} "
        "the passthrough here. `modq ÷ processor` is what the pipeline around the work "
        "costs (consuming, scheduling per key, publishing, offsets, metrics, and the broker "
        "sharing the same two cores).",
        "",
        "## Latency at a steady offered rate",
        "",
        "Each system at 25/50/75% of the drain rate it reached just before, in the same "
        f"process, {plan['load_seconds']:g} s per load; latency is `submitted_at` → the "
        "decision visible to a read-committed consumer. An achieved rate below the offered one "
        "means the driver (one Python process on the same machine) could not publish faster: "
        "that row then measures the lower, achieved load.",
        "",
        "| system | load | offered msgs/s | achieved | p50 ms | p90 ms | p99 ms | runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system in SYSTEMS:
        for load, v in s["latency"].get(system, {}).items():
            lines.append(
                f"| {system} | {load}% | {_n(v['offered_rate'])} | {_n(v['achieved_rate'])} | "
                f"{_n(v['p50_ms'], 1)} | {_n(v['p90_ms'], 1)} | {_n(v['p99_ms'], 1)} | "
                f"{int(v['runs'])} |"
            )
    delay = s["io_delay_s"]
    delay_ms = _n(delay * 1000) if isinstance(delay, int | float) else "?"
    lines += [
        "",
        f"## Key concurrency under an I/O-bound policy (DelayPolicy {delay_ms} ms, no jitter)",
        "",
        "Bound = max_in_flight_keys ÷ delay (what perfect key concurrency would give).",
        "",
        "| max_in_flight_keys | records | median msgs/s | bound msgs/s | % of bound | vs lowest |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for mifk, v in s["io_bound"].items():
        records = plan["io_records"].get(mifk, plan["io_records"].get(int(mifk), "?"))
        of_bound = v["of_bound"] * 100 if isinstance(v["of_bound"], int | float) else None
        lines.append(
            f"| {mifk} | {records} | {_n(v['median'])} | {_n(v['bound'])} | "
            f"{_n(of_bound)}% | {_x(v['vs_lowest'])} |"
        )
    eos = s["exactly_once"]
    lines += [
        "",
        "## Exactly-once cost (modq drain, RuleBasedPolicy)",
        "",
        "| guarantee | median msgs/s |",
        "|---|---:|",
        f"| at_least_once | {_n(eos['at_least_once'])} |",
        f"| exactly_once | {_n(eos['exactly_once'])} |",
        "",
        f"exactly_once ÷ at_least_once: **{_x(eos['ratio'])}**",
        "",
        "Neither guarantee pays a Python callback per published message: at-least-once "
        "finishes records by producer barrier (`streams/deliveries.py`: one flush proves a "
        "whole batch durable, and the producer reports failed deliveries only), "
        "exactly-once commits decisions and offsets in one transaction per commit interval.",
        "",
        "## Ordering and completeness",
        "",
        f"{s['order_ok']} of {s['runs']} runs passed the check (every submission answered; "
        "per key, first answers in submission order; no duplicates under exactly-once); "
        f"{s['duplicates']} duplicate answers in all (at-least-once allows them).",
    ]
    if s["failed"]:
        lines += ["", "**Failed runs** (left out of the medians): " + ", ".join(s["failed"])]
    lines += ["", "Raw numbers: `docs/bench/worker.json`.", ""]
    return "\n".join(lines)


# --- assembling docs/benchmarks.md ------------------------------------------------------------


def _demote(text: str) -> str:
    return re.sub(r"^(#+) ", r"#\1 ", text, flags=re.MULTILINE)


def _order(path: Path) -> tuple[int, str]:
    stem = path.stem
    return (SECTION_ORDER.index(stem) if stem in SECTION_ORDER else len(SECTION_ORDER), stem)


def _caption(title: str, meta: dict[str, Any]) -> str:
    machine = machine_line(meta) if "nproc" in meta else str(meta.get("machine", "not recorded"))
    return (
        f"*{title}.* Command: `{meta.get('command', 'not recorded')}`. "
        f"Machine: {machine}. Date: {meta.get('date', 'not recorded')}."
    )


def _command_in(markdown: Path) -> str:
    """The ``command: `...``` a benchmark's markdown names, if any."""
    try:
        found = re.search(r"(?i)command: `([^`]+)`", markdown.read_text("utf-8"))
    except OSError:
        return "not recorded"
    return found.group(1) if found else "not recorded"


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def assemble(docs: Path) -> tuple[Path, list[str]]:
    """Write ``docs/benchmarks.md`` (and the PNGs under ``docs/bench``); notes on what
    was missing. Returns the path written and the notes."""
    from bench import plots

    bench_dir = docs / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    figures: list[str] = []
    worker = _load_json(bench_dir / "worker.json")
    if worker is not None:
        meta, summary = worker["meta"], worker["summary"]
        label = " (QUICK run: noisy, small sizes)" if meta.get("quick") else ""
        for name, title, draw in plots.WORKER_FIGURES:
            target = bench_dir / f"{name}.png"
            draw(summary, target)
            figures += [f"![{title}](bench/{target.name})", "", _caption(title + label, meta), ""]
    else:
        notes.append("docs/bench/worker.json missing: run `python -m bench.worker`")
    controller = _load_json(bench_dir / "controller.json")
    if controller is not None:
        target = bench_dir / "reallocation.png"
        if plots.plot_reallocation(controller, target):
            meta = dict(controller.get("meta", controller))
            meta.setdefault("command", _command_in(bench_dir / "controller.md"))
            title = "Reallocation latency (docs/bench/controller.json)"
            figures += [f"![{title}](bench/{target.name})", "", _caption(title, meta), ""]
        else:
            notes.append("docs/bench/controller.json has no numeric series to plot")
    else:
        notes.append("docs/bench/controller.json missing: no reallocation figure")
    sections = [
        _demote(p.read_text("utf-8").strip()) for p in sorted(bench_dir.glob("*.md"), key=_order)
    ]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`.venv/bin/python -m bench`) from `docs/bench/*.md` and "
        "`docs/bench/*.json`; each section and figure names the command that reproduces it, "
        "the machine and the date. Do not edit by hand.",
        "",
        "## Figures",
        "",
        *(figures or ["(none yet)", ""]),
        *(f"> {note}\n" for note in notes),
        *(f"{section}\n" for section in sections),
    ]
    out = docs / "benchmarks.md"
    out.write_text("\n".join(lines).rstrip() + "\n", "utf-8")
    return out, notes
