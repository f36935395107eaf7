"""Worker subprocesses for fault injection: ``python -m orchestrator.cli worker`` by pid.

A :class:`WorkerProcess` starts one ``modq worker`` with the scenario's environment
(bootstrap, prefix, guarantee, policy), writes its output to a log file, and exposes its pid
for :mod:`chaos.faults`. :meth:`WorkerProcess.stop` asks it to drain (SIGTERM) and kills it
after a deadline; it only ever signals the process it started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from schemas.queues import QueueClass

STOP_TIMEOUT_S = 40.0


class WorkerProcess:
    """One worker subprocess. ``start`` may be called again after it died (a restart)."""

    def __init__(
        self,
        worker_id: str,
        queue_class: QueueClass,
        *,
        env: Mapping[str, str],
        log_dir: Path,
    ) -> None:
        self.worker_id = worker_id
        self.queue_class = queue_class
        self._env = {**os.environ, **env}
        self._log_dir = log_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        """The running process's pid."""
        if self._proc is None:
            raise RuntimeError(f"worker {self.worker_id} was never started")
        return self._proc.pid

    @property
    def log_path(self) -> Path:
        """Where the worker's stdout and stderr go (appended across restarts)."""
        return self._log_dir / f"worker-{self.worker_id}.log"

    def alive(self) -> bool:
        """Whether the process is running."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> WorkerProcess:
        """Start (or restart) the worker; the previous process must have exited."""
        if self.alive():
            raise RuntimeError(f"worker {self.worker_id} is still running")
        self._log_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "orchestrator.cli", "worker", "--id", self.worker_id]
        argv += ["--class", self.queue_class.value]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv, env=self._env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.starts += 1
        return self

    def wait_exit(self, timeout_s: float) -> int:
        """Reap the process (after a kill -9, say); its exit status."""
        assert self._proc is not None
        return self._proc.wait(timeout=timeout_s)

    def stop(self) -> int | None:
        """SIGTERM, wait up to :data:`STOP_TIMEOUT_S`, then SIGKILL; the exit status."""
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
        """The end of the worker's log, for failure messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
