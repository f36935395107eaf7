"""Shared machinery of the later slow scenarios and the fuzz test (issue 8, #3, #7, #8, #9).

- :func:`worker_env` and :class:`Pool` / :func:`worker_pool`: ``modq worker`` subprocesses
  with a supervisor task that restarts (and counts) any that exits, as ``modq run`` would;
- :class:`ServiceProcess`: any other ``modq`` subcommand as a subprocess (controller,
  dashboard), by pid, with its log file;
- :func:`publish_assignment`: a :class:`~schemas.control.WorkerAssignment` written to the
  control topic, as the leading controller would (scenario 3 drives moves this way);
- :func:`read_timings`: the Kafka timestamps of every submission and decision (producer
  CreateTime, ms), read ``read_committed`` after a run;
- pure figures on those timings: :func:`first_decisions`, :func:`latencies_ms`,
  :func:`percentile`, :func:`stalls`, :func:`longest_stall`, :func:`workers_by_partition`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer
from confluent_kafka import TopicPartition as KafkaTP

from chaos.history import Position
from chaos.processes import WorkerProcess
from schemas.codec import decode_decision, encode
from schemas.control import WorkerAssignment, assignment_key
from schemas.errors import ContractError
from schemas.kafka_config import producer_config
from schemas.queues import QueueClass
from schemas.settings import Settings
from schemas.topics import TopicNames

STOP_TIMEOUT_S = 40.0
SUPERVISE_EVERY_S = 0.5


def worker_env(s: Settings, **extra: str) -> dict[str, str]:
    """The environment of a scenario's subprocesses (plus ``MODQ_*`` extras)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers or "",
        "MODQ_TOPIC_PREFIX": s.topic_prefix,
        "MODQ_PROCESSING_GUARANTEE": s.processing_guarantee.value,
        **extra,
    }


@dataclass
class Pool:
    """Worker subprocesses by id, and a supervisor that restarts any that exits."""

    workers: dict[str, WorkerProcess]
    restarts: int = 0
    exits: list[tuple[str, int | None]] = field(default_factory=list)
    """(worker id, exit status) of every exit the supervisor saw."""

    async def supervise(self) -> None:
        while True:
            for worker_id, worker in self.workers.items():
                if not worker.alive():
                    self.exits.append((worker_id, worker.wait_exit(5)))
                    worker.start()
                    self.restarts += 1
            await asyncio.sleep(SUPERVISE_EVERY_S)  # polling process state, not synchronisation


@asynccontextmanager
async def worker_pool(
    layout: Sequence[tuple[str, QueueClass]], env: Mapping[str, str], log_dir: Path
) -> AsyncIterator[Pool]:
    """Start one ``modq worker`` per ``(id, class)``; on exit stop them (SIGTERM, drain) and
    record their exit statuses in ``Pool.exits`` as ``(id, status)``."""
    pool = Pool({wid: WorkerProcess(wid, cls, env=env, log_dir=log_dir) for wid, cls in layout})
    for worker in pool.workers.values():
        worker.start()
    supervisor = asyncio.create_task(pool.supervise())
    try:
        yield pool
    finally:
        supervisor.cancel()
        await asyncio.wait([supervisor])
        statuses = await asyncio.gather(*(asyncio.to_thread(w.stop) for w in pool.workers.values()))
        pool.exits.extend(zip(pool.workers, statuses, strict=True))


class ServiceProcess:
    """One ``python -m orchestrator.cli <args>`` subprocess (controller, dashboard)."""

    def __init__(self, name: str, args: Sequence[str], *, env: Mapping[str, str], log_dir: Path):
        self.name = name
        self._argv = [sys.executable, "-m", "orchestrator.cli", *args]
        self._env = {**os.environ, **env}
        self.log_path = log_dir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL; the exit status."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                return self._proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return self._proc.wait(timeout=STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])


def publish_assignment(
    s: Settings, worker_id: str, queue_class: QueueClass | None, generation: int, reason: str
) -> None:
    """Write ``worker_id``'s assignment to the control topic, as a controller would."""
    names = TopicNames.from_prefix(s.topic_prefix)
    message = WorkerAssignment(
        worker_id=worker_id,
        queue_class=queue_class,
        generation=generation,
        reason=reason,
        assigned_at=datetime.now(UTC),
        controller_id="chaos-mover",
    )
    producer = Producer(dict(producer_config(s)))
    producer.produce(names.control, key=assignment_key(worker_id).encode(), value=encode(message))
    if producer.flush(15):
        raise RuntimeError(f"assignment for {worker_id} not acknowledged")


# --- timings ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimedDecision:
    """A decision record: what it decided, who, and its Kafka timestamp (ms)."""

    submission_id: str
    source: Position
    worker_id: str
    verdict: str
    at_ms: int


@dataclass(frozen=True)
class Timings:
    """Kafka timestamps (ms) of every submission by position, and every decision."""

    submitted_ms: Mapping[Position, int]
    decisions: tuple[TimedDecision, ...]


def read_timings(bootstrap: str, names: TopicNames, *, deadline_s: float = 120.0) -> Timings:
    """Read the submission topics and the decisions topic (``read_committed``) to their end."""
    topics = [*names.submission_topics(), names.decisions]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-timings-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    submitted: dict[Position, int] = {}
    decisions: list[TimedDecision] = []
    try:
        metadata = consumer.list_topics(timeout=10)
        tps = [
            KafkaTP(t, p, OFFSET_BEGINNING) for t in topics for p in metadata.topics[t].partitions
        ]
        consumer.assign(tps)
        ends = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(
                KafkaTP(tp.topic, tp.partition), timeout=10
            )[1]
            for tp in tps
        }
        end_at = time.monotonic() + deadline_s
        while not _reached(consumer, ends):
            if time.monotonic() > end_at:
                raise TimeoutError(f"timings: topics not read to their end in {deadline_s:.0f} s")
            for msg in consumer.consume(2000, 0.5):
                _take(msg, names.decisions, submitted, decisions)
    finally:
        consumer.close()
    return Timings(submitted, tuple(decisions))


def _reached(consumer: Any, ends: Mapping[tuple[str, int], int]) -> bool:
    positions = consumer.position([KafkaTP(t, p) for t, p in ends])
    return all(
        tp.offset >= ends[(tp.topic, tp.partition)]
        for tp in positions
        if ends[(tp.topic, tp.partition)] > 0
    )


def _take(
    msg: Any, decisions_topic: str, submitted: dict[Position, int], out: list[TimedDecision]
) -> None:
    error = msg.error()
    if error is not None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        raise RuntimeError(f"timings: {error}")
    _kind, at_ms = msg.timestamp()
    if msg.topic() != decisions_topic:
        submitted[Position(msg.topic(), msg.partition(), msg.offset())] = at_ms
        return
    try:
        d = decode_decision(msg.value())
    except ContractError:
        return  # the recorder reports malformed decisions
    source = Position(d.source.topic, d.source.partition, d.source.offset)
    out.append(TimedDecision(d.submission_id, source, d.worker_id, d.verdict.value, at_ms))


# --- figures (pure) ----------------------------------------------------------------------------


def first_decisions(decisions: Iterable[TimedDecision]) -> dict[str, TimedDecision]:
    """The earliest decision of each submission id (at-least-once may repeat one)."""
    first: dict[str, TimedDecision] = {}
    for d in decisions:
        held = first.get(d.submission_id)
        if held is None or d.at_ms < held.at_ms:
            first[d.submission_id] = d
    return first


def latencies_ms(timings: Timings, ids: Collection[str] | None = None) -> dict[str, int]:
    """Submission-to-first-decision latency (ms) by submission id (only ``ids`` if given)."""
    out: dict[str, int] = {}
    for sid, d in first_decisions(timings.decisions).items():
        if ids is not None and sid not in ids:
            continue
        sent = timings.submitted_ms.get(d.source)
        if sent is not None:
            out[sid] = d.at_ms - sent
    return out


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q ≤ 100) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of nothing")
    rank = max(1, -(-len(ordered) * q // 100))
    return float(ordered[int(rank) - 1])


@dataclass(frozen=True, slots=True)
class Stall:
    """The longest stall of a partition: its length and when it began and ended (ms)."""

    ms: int
    start_ms: int
    end_ms: int


def stalls(records: Iterable[tuple[int, int]], *, since_ms: int = 0) -> list[Stall]:
    """Every time a partition had undecided work and decided nothing, longest first.

    ``records``: ``(submitted_ms, first_decided_ms)`` of each of the partition's records.
    Before each decision, the partition was stalled from the later of the previous decision
    and the oldest submission still undecided, until that decision. Only time after
    ``since_ms`` counts.
    """
    by_decided = sorted(records, key=lambda r: r[1])
    oldest_pending = [0] * len(by_decided)
    running = None
    for i in range(len(by_decided) - 1, -1, -1):
        sent = by_decided[i][0]
        running = sent if running is None else min(running, sent)
        oldest_pending[i] = running
    out: list[Stall] = []
    previous = since_ms
    for i, (_sent, decided) in enumerate(by_decided):
        start = max(previous, oldest_pending[i], since_ms)
        if decided > start:
            out.append(Stall(decided - start, start, decided))
        previous = max(previous, decided)
    return sorted(out, key=lambda stall: -stall.ms)


def longest_stall(records: Iterable[tuple[int, int]], *, since_ms: int = 0) -> Stall:
    """The longest of :func:`stalls` (a zero stall when there is none)."""
    found = stalls(records, since_ms=since_ms)
    return found[0] if found else Stall(0, since_ms, since_ms)


def partition_records(
    timings: Timings, ids: Collection[str] | None = None
) -> dict[Position, list[tuple[int, int]]]:
    """``(submitted_ms, first_decided_ms)`` by source partition (``offset`` set to -1)."""
    out: dict[Position, list[tuple[int, int]]] = defaultdict(list)
    for sid, d in first_decisions(timings.decisions).items():
        if ids is not None and sid not in ids:
            continue
        sent = timings.submitted_ms.get(d.source)
        if sent is not None:
            out[Position(d.source.topic, d.source.partition, -1)].append((sent, d.at_ms))
    return dict(out)


def workers_by_partition(
    timings: Timings, ids: Collection[str] | None = None
) -> dict[Position, set[str]]:
    """Which workers decided records (only ``ids`` if given) of each source partition
    (``offset`` set to -1)."""
    out: dict[Position, set[str]] = defaultdict(set)
    for d in timings.decisions:
        if ids is not None and d.submission_id not in ids:
            continue
        out[Position(d.source.topic, d.source.partition, -1)].add(d.worker_id)
    return dict(out)
