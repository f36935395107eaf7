"""Worker memory against backlog size: does one worker stay flat with a million records waiting?

Run: ``KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.memory``
(``--backlogs 100000 1000000`` by default; ``--quick`` for 20,000 and 100,000).
Writes ``docs/bench/memory.md``, ``docs/bench/memory.json`` and
``docs/bench/worker-memory.png``.

For each backlog, in one run, smallest first: fresh topics (6 partitions) under their own
prefix, the backlog of ~500-byte posts preloaded before the worker starts, then one complete
modq worker (``python -m bench.sut modq``: RuleBasedPolicy, at-least-once,
max_in_flight_keys 64) drains it. Every 0.5 s the driver samples the worker's resident memory
(``VmRSS``) and its group's committed offsets, until everything is committed. The smallest
backlog is the baseline: memory is flat when the peak RSS does not grow with the backlog
(ratio ≈ 1), because a worker holds at most ``max_buffered`` records plus librdkafka's bounded
prefetch (``queued.max.messages.kbytes``), whatever waits in Kafka.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import kafka_driver as kd
from bench.machine import machine_info, machine_line, rss_mib, stop_process
from orchestrator.provisioning import provision
from schemas.kafka_config import client_config, producer_config
from schemas.topics import TopicNames

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_MD = ROOT / "docs" / "bench" / "memory.md"
FIGURE = "worker-memory.png"
QUICK_ARGV = ["--quick"]
SAMPLE_S = 0.5


@dataclass(frozen=True)
class Sample:
    """One reading: seconds since the worker started, records committed, RSS in MiB."""

    t: float
    committed: int
    rss_mib: float


@dataclass(frozen=True)
class Run:
    """One backlog drained by one worker."""

    backlog: int
    samples: tuple[Sample, ...]
    drain_s: float

    @property
    def peak_mib(self) -> float:
        """Highest RSS seen while draining."""
        return max(s.rss_mib for s in self.samples)

    def rss_at(self, fraction: float) -> float:
        """RSS at the first sample with at least ``fraction`` of the backlog committed."""
        for s in self.samples:
            if s.committed >= fraction * self.backlog:
                return s.rss_mib
        return self.samples[-1].rss_mib


def preload(prefix: str, names: TopicNames, count: int, progress: Progress) -> None:
    """Publish ``count`` posts over 1,000 keys with the contract's producer, all acknowledged."""
    settings = kd.bench_settings(prefix)
    producer: Any = Producer({**producer_config(settings), "linger.ms": 20})
    workload = kd.Workload(1000)
    task = progress.add_task(f"preload {count:,}", total=count)
    now = time.time()
    for n in range(count):
        key, value = workload.next(now)
        while True:
            try:
                producer.produce(names.submissions_posts, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 5000 == 0:
            producer.poll(0)
            progress.update(task, completed=n)
    if producer.flush(120):
        raise RuntimeError("preload: records not acknowledged")
    progress.update(task, completed=count)


def drain(prefix: str, backlog: int, progress: Progress, workdir: Path) -> Run:
    """Start one worker on the preloaded backlog; sample RSS and commits until it is done."""
    settings = kd.bench_settings(prefix)
    names = TopicNames.from_prefix(prefix)
    group = f"{prefix}modq.topic_posts"
    watcher: Any = Consumer({**client_config(settings), "group.id": group})
    tps = [TopicPartition(names.submissions_posts, p) for p in range(kd.PARTITIONS)]
    log = (workdir / f"worker-{backlog}.log").open("wb")
    cmd = [sys.executable, "-m", "bench.sut", "modq", "--prefix", prefix]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    task = progress.add_task(f"drain {backlog:,}", total=backlog)
    samples: list[Sample] = []
    began = time.monotonic()
    try:
        committed = 0
        while committed < backlog:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}; see {log.name}")
            if time.monotonic() - began > 60 + backlog / 500:
                raise RuntimeError(f"backlog of {backlog} not drained in time")
            parts = watcher.committed(tps, timeout=10)
            committed = sum(max(tp.offset, 0) for tp in parts)
            samples.append(Sample(time.monotonic() - began, committed, rss_mib(proc.pid)))
            progress.update(task, completed=committed)
            time.sleep(SAMPLE_S)  # the sampling interval of a measurement, not a sync point
        return Run(backlog, tuple(samples), samples[-1].t)
    finally:
        stop_process(proc)
        log.close()
        watcher.close()


def plot(runs: list[Run], path: Path) -> None:
    """RSS against the share of the backlog committed, one line per backlog."""
    import matplotlib.pyplot as plt

    from bench.plots import save  # also selects matplotlib's Agg backend

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for run in runs:
        xs = [100 * s.committed / run.backlog for s in run.samples]
        ax.plot(xs, [s.rss_mib for s in run.samples], label=f"backlog {run.backlog:,}")
    ax.set_xlabel("backlog committed (%)")
    ax.set_ylabel("worker RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("One worker's memory while it drains a backlog")
    ax.legend()
    save(fig, path)


def markdown(runs: list[Run], meta: dict[str, Any]) -> str:
    """The report section."""
    base = runs[0]
    rows = [
        f"| {r.backlog:,} | {r.rss_at(0.1):.0f} | {r.rss_at(0.5):.0f} | {r.rss_at(0.9):.0f} | "
        f"{r.peak_mib:.0f} | {r.peak_mib / base.peak_mib:.2f}× | "
        f"{r.backlog / r.drain_s:,.0f} |"
        for r in runs
    ]
    biggest = runs[-1]
    return "\n".join(
        [
            "# Worker memory against backlog size",
            "",
            f"- command: `{meta['command']}`",
            f"- date: {meta['date']}",
            f"- machine: {machine_line(meta)}; one local Apache Kafka 4.1 broker",
            "- workload: ~500-byte posts over 1,000 keys, 6 partitions, preloaded before one "
            "`modq` worker (RuleBasedPolicy, at-least-once, max_in_flight_keys 64) starts; RSS "
            f"(`VmRSS`) and the group's committed offsets sampled every {SAMPLE_S} s",
            "",
            "| backlog | RSS at 10% (MiB) | at 50% | at 90% | peak | peak vs smallest | "
            "records/s |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"With {biggest.backlog:,} records waiting the worker's peak RSS is "
            f"**{biggest.peak_mib / base.peak_mib:.2f}×** that with {base.backlog:,}: memory "
            "depends on the in-flight bound (`max_buffered`, librdkafka's "
            "`queued.max.messages.kbytes`), not on the backlog.",
            "",
            f"![Worker RSS while draining](bench/{FIGURE})",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run each backlog, write the report, the JSON and the figure."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--backlogs", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="backlogs of 20,000 and 100,000")
    parser.add_argument("--output", type=Path, default=OUTPUT_MD)
    args = parser.parse_args(argv)
    backlogs = sorted([20_000, 100_000] if args.quick else args.backlogs)
    given = sys.argv[1:] if argv is None else argv
    command = "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.memory"
    meta: dict[str, Any] = {"command": " ".join([command, *given]), **machine_info()}
    console = Console(stderr=True)
    runs: list[Run] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with (
        Progress(*columns, TimeElapsedColumn(), console=console) as progress,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for backlog in backlogs:
            prefix = f"mem{uuid.uuid4().hex[:6]}."
            settings = kd.bench_settings(prefix)
            provision(settings)
            try:
                preload(prefix, TopicNames.from_prefix(prefix), backlog, progress)
                run = drain(prefix, backlog, progress, Path(tmp))
            finally:
                kd.teardown(settings)
            console.print(
                f"backlog {backlog:,}: peak RSS {run.peak_mib:.0f} MiB, "
                f"{backlog / run.drain_s:,.0f} records/s"
            )
            runs.append(run)
    meta["finished"] = machine_info()["date"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    plot(runs, args.output.parent / FIGURE)
    data = {
        "meta": meta,
        "runs": [{**asdict(r), "peak_mib": r.peak_mib} for r in runs],
        "peak_ratio": runs[-1].peak_mib / runs[0].peak_mib,
        "median_rss_mib": {
            r.backlog: statistics.median(s.rss_mib for s in r.samples) for r in runs
        },
    }
    args.output.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n", "utf-8")
    args.output.write_text(markdown(runs, meta) + "\n", "utf-8")
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
