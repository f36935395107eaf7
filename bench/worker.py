"""Worker throughput and latency: modq against a bare passthrough loop and a faust agent.

Run: ``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.worker [--quick]``.
Writes ``docs/bench/worker.md`` (medians and ratios) and ``docs/bench/worker.json`` (every
run's raw numbers). Each system runs in its own process against its own fresh topics
(6 partitions) on the same broker; the driver (this process) publishes ~500-byte post
submissions and reads the decisions back. Systems are interleaved within each repetition,
so a noisy machine slows all of them alike.

Per repetition:

0. **processor**: the per-record work alone (``RecordProcessor`` + ``RuleBasedPolicy``),
   in this process, no Kafka: what one core can moderate at most.
1. **compare** (passthrough, modq, faust; ``RuleBasedPolicy``, at-least-once): preload a
   backlog, start the system, measure the drain rate (first → last answer visible to a
   read-committed reader, so start-up is excluded); then, on the same warm process,
   publish at a steady 25/50/75% of the rate just measured and time each submission from
   ``submitted_at`` to the reader seeing its answer (p50/p99).
2. **exactly-once**: the modq drain again with ``processing_guarantee=exactly_once``.
3. **I/O-bound**: modq with ``DelayPolicy(0.02)`` at ``max_in_flight_keys`` 1, 64, 256.

Every run's answers are checked: every submission answered, per key in submission order
(first occurrences; at-least-once may repeat), no duplicates under exactly-once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import kafka_driver as kd
from bench.checks import check_order, drain_rate, finite_or_none, latencies_ms, percentile
from bench.machine import machine_info, stop_process
from bench.report import summarize_worker, worker_markdown
from bench.sut import processor_rate
from orchestrator.provisioning import provision
from schemas.settings import ProcessingGuarantee
from schemas.topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_MD = ROOT / "docs" / "bench" / "worker.md"
OUTPUT_JSON = ROOT / "docs" / "bench" / "worker.json"
QUICK_ARGV = ["--quick"]
ALOS = ProcessingGuarantee.AT_LEAST_ONCE
EOS = ProcessingGuarantee.EXACTLY_ONCE


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run."""

    quick: bool
    reps: int
    backlog: int
    keys: int
    load_seconds: float
    io_records: dict[int, int]
    loads: tuple[float, ...] = (0.25, 0.5, 0.75)
    io_delay_s: float = 0.02
    stall_s: float = 90.0
    processor_records: int = 3000


FULL = Plan(
    quick=False,
    reps=3,
    backlog=20_000,
    keys=1000,
    load_seconds=10.0,
    io_records={1: 500, 64: 8000, 256: 12_000},
)
QUICK = Plan(
    quick=True,
    reps=1,
    backlog=3000,
    keys=300,
    load_seconds=4.0,
    io_records={1: 100, 64: 1500, 256: 3000},
    stall_s=60.0,
    processor_records=1000,
)


@dataclass(frozen=True)
class RunSpec:
    """One system, one configuration, one repetition."""

    experiment: str  # processor | compare | exactly_once | io_bound
    system: str  # processor | passthrough | modq | faust
    rep: int
    guarantee: str = ALOS.value
    max_in_flight_keys: int = 64
    delay_s: float = 0.0
    backlog: int = 0
    loads: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """A short human name."""
        extra = ""
        if self.experiment == "io_bound":
            extra = f" mifk={self.max_in_flight_keys}"
        elif self.experiment == "exactly_once":
            extra = " exactly_once"
        return f"rep {self.rep}: {self.system}{extra}"


@dataclass
class RunResult:
    """What one run measured (``error`` set when it did not complete)."""

    spec: RunSpec
    throughput: float = 0.0
    answered: int = 0
    order: dict[str, int | bool] = field(default_factory=dict)
    latency: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    error: str | None = None


def schedule(plan: Plan) -> list[RunSpec]:
    """Every run, repetitions outermost and systems interleaved inside each.

    The compared systems' order rotates from one repetition to the next, so none always
    runs right after the same one: a run leaves the broker busy for a while (deleting its
    topics, cleaning its logs), and in a fixed order the system after the passthrough paid
    for it every time (measured in one run: modq's drain went 12.0k, 13.8k, 17.8k/s after
    passthrough runs of 284k, 217k, 107k/s, while exactly-once modq, run after faust, held
    16-18k/s).
    """
    runs: list[RunSpec] = []
    compared = ("passthrough", "modq", "faust")
    for rep in range(1, plan.reps + 1):
        runs.append(RunSpec("processor", "processor", rep, backlog=plan.processor_records))
        turn = (rep - 1) % len(compared)
        for system in compared[turn:] + compared[:turn]:
            runs.append(RunSpec("compare", system, rep, backlog=plan.backlog, loads=plan.loads))
        runs.append(RunSpec("exactly_once", "modq", rep, guarantee=EOS.value, backlog=plan.backlog))
        for mifk, count in plan.io_records.items():
            runs.append(
                RunSpec(
                    "io_bound",
                    "modq",
                    rep,
                    max_in_flight_keys=mifk,
                    delay_s=plan.io_delay_s,
                    backlog=count,
                )
            )
    return runs


def _command(spec: RunSpec, prefix: str, workdir: Path) -> list[str]:
    if spec.system == "faust":
        return [
            sys.executable,
            "-m",
            "bench.faust_agent",
            "--prefix",
            prefix,
            "--app-id",
            f"{prefix}faust",
            "--datadir",
            str(workdir / "faust"),
        ]
    return [
        sys.executable,
        "-m",
        "bench.sut",
        spec.system,
        "--prefix",
        prefix,
        "--guarantee",
        spec.guarantee,
        "--max-in-flight-keys",
        str(spec.max_in_flight_keys),
        "--delay",
        str(spec.delay_s),
    ]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_one(spec: RunSpec, plan: Plan, progress: Progress, workdir: Path) -> RunResult:
    """Run ``spec`` on fresh topics; never raises for a failed run (``error`` says why)."""
    result = RunResult(spec)
    if spec.experiment == "processor":
        started = time.monotonic()
        result.throughput = processor_rate(spec.backlog, plan.keys)
        result.answered = spec.backlog
        result.wall_s = time.monotonic() - started
        return result
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    settings = kd.bench_settings(
        prefix, guarantee=ProcessingGuarantee(spec.guarantee), max_in_flight_keys=64
    )
    names = TopicNames.from_prefix(prefix)
    task = progress.add_task(f"  {spec.label}: preloading", total=spec.backlog)
    started = time.monotonic()
    log = workdir / f"{prefix}log"
    proc: subprocess.Popen[bytes] | None = None
    reader: kd.OutputReader | None = None
    try:
        provision(settings)
        feeder = kd.Feeder(settings, names.submissions_posts, kd.Workload(plan.keys))
        feeder.preload(spec.backlog)
        reader = kd.OutputReader(settings, names.decisions)
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                _command(spec, prefix, workdir), cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT
            )
        running = proc

        def tick(n: int) -> None:
            progress.update(task, completed=n)

        progress.update(task, description=f"  {spec.label}: draining backlog")
        if not reader.wait_for(
            spec.backlog, stall_s=plan.stall_s, on_tick=tick, alive=lambda: running.poll() is None
        ):
            raise RuntimeError(f"backlog not drained ({reader.answered}/{spec.backlog})")
        result.throughput = drain_rate(reader.outputs)
        for load in spec.loads:
            rate = max(1.0, load * result.throughput)
            progress.update(
                task,
                description=f"  {spec.label}: {load:.0%} load ({rate:,.0f}/s)",
                completed=0,
                total=round(rate * plan.load_seconds),
            )
            before = set(feeder.sent_at)
            t0 = time.monotonic()
            sent = feeder.at_rate(rate, plan.load_seconds)
            achieved = sent / (time.monotonic() - t0)
            phase = {src: at for src, at in feeder.sent_at.items() if src not in before}
            base = len(before)

            def phase_tick(n: int, base: int = base) -> None:
                progress.update(task, completed=n - base)

            ok = reader.wait_for(
                len(feeder.sent_at),
                stall_s=plan.stall_s,
                on_tick=phase_tick,
                alive=lambda: running.poll() is None,
            )
            lat = latencies_ms(list(reader.outputs), phase)
            result.latency.append(
                {
                    "load": load,
                    "offered_rate": rate,
                    "achieved_rate": achieved,
                    "sent": sent,
                    "answered": len(lat),
                    "p50_ms": percentile(lat, 50),
                    "p90_ms": percentile(lat, 90),
                    "p99_ms": percentile(lat, 99),
                    "max_ms": max(lat, default=float("nan")),
                }
            )
            if not ok:
                raise RuntimeError(f"{load:.0%} load not answered ({len(lat)}/{sent})")
        stop_process(proc)
        outputs = reader.close()
        reader = None
        order = check_order(
            outputs, feeder.sent_at.keys(), duplicates_allowed=spec.guarantee != EOS.value
        )
        result.order = order.as_dict()
        result.answered = order.unique
        if not order.ok:
            result.error = f"order/completeness check failed: {order.as_dict()}"
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        if log.exists():
            result.error += "\n" + _tail(log)
    finally:
        if proc is not None:
            stop_process(proc)
        if reader is not None:
            reader.close()
        kd.teardown(settings, groups=(f"{prefix}faust",))
        progress.remove_task(task)
    result.wall_s = time.monotonic() - started
    return result


def _as_json(result: RunResult) -> dict[str, Any]:
    data = asdict(result)
    data.update(data.pop("spec"))
    return data


def run(plan: Plan, console: Console) -> list[dict[str, Any]]:
    """Every scheduled run, with a progress bar; their raw results."""
    runs = schedule(plan)
    results: list[dict[str, Any]] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with (
        tempfile.TemporaryDirectory(prefix="modq-bench-") as tmp,
        Progress(*columns, console=console) as progress,
    ):
        overall = progress.add_task("worker benchmark", total=len(runs))
        for spec in runs:
            progress.update(overall, description=f"worker benchmark ({spec.label})")
            result = run_one(spec, plan, progress, Path(tmp))
            if result.error:
                console.print(f"[red]{spec.label} failed:[/red] {result.error}")
            else:
                checked = ", order ok" if result.order else ""
                console.print(f"{spec.label}: {result.throughput:,.0f} msgs/s{checked}")
            results.append(_as_json(result))
            progress.advance(overall)
    return results


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, write docs/bench/worker.md and worker.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--reps", type=int, help="repetitions (default 3; quick 1)")
    parser.add_argument("--backlog", type=int, help="posts preloaded per drain")
    parser.add_argument("--output", type=Path, default=OUTPUT_MD)
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.reps or args.backlog:
        plan = Plan(
            **{
                **asdict(plan),
                "reps": args.reps or plan.reps,
                "backlog": args.backlog or plan.backlog,
            }
        )
    given = sys.argv[1:] if argv is None else argv
    command = "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.worker"
    meta = {
        "command": " ".join([command, *given]),
        "quick": plan.quick,
        "plan": asdict(plan),
        "bootstrap": kd.BOOTSTRAP,
        "record_bytes": kd.Workload(plan.keys).record_bytes,
        "partitions": kd.PARTITIONS,
        **machine_info(),
    }
    console = Console(stderr=True)
    results = run(plan, console)
    meta["finished"] = machine_info()["date"]
    data = {"meta": meta, "runs": results, "summary": summarize_worker(results)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    json_path = args.output.with_suffix(".json")
    strict = finite_or_none(data)
    json_path.write_text(json.dumps(strict, indent=1, default=str) + "\n", "utf-8")
    args.output.write_text(worker_markdown(data), "utf-8")
    console.print(f"wrote {args.output} and {json_path}")


if __name__ == "__main__":
    main()
