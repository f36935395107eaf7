"""`modq run`: start and watch the pipeline's processes; drain and stop them on Ctrl-C.

Each component (controller, workers, queue-state app, dashboard) runs as its own OS process,
so a crash in one never takes the others down and a worker can be killed and restarted alone.
The supervisor restarts a child that exits unexpectedly (with capped exponential back-off).

Shutdown contract (arq-style graceful, not cancel): the first SIGINT/SIGTERM forwards SIGTERM
to every child, which stops taking work, finishes in-flight work, commits and exits; children
still alive after ``drain_timeout`` get SIGKILL. A second SIGINT/SIGTERM kills them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_LOG = logging.getLogger("modq.supervisor")
RESTART_BACKOFF_MAX_S = 10.0


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A process the supervisor keeps alive: a name and the argv after the Python executable."""

    name: str
    argv: tuple[str, ...]
    restart: bool = True


@dataclass(slots=True)
class ChildState:
    """Book-keeping of one child (mutable, owned by the supervisor task)."""

    spec: ChildSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """Runs children until :meth:`request_stop`; an async context manager.

    ``on_event`` receives one-line human-readable events (started, exited, restarting).
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        env: Mapping[str, str],
        drain_timeout: float,
        on_event: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self._children = [ChildState(spec) for spec in children]
        self._env = dict(env)
        self._drain_timeout = drain_timeout
        self._on_event = on_event
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._stopping = False

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.request_stop()
        await self._terminate_all()

    @property
    def children(self) -> list[ChildState]:
        """Live view of the children (for status output and tests)."""
        return self._children

    def request_stop(self) -> None:
        """First call: drain gracefully. Second call: kill everything now."""
        if self._stop.is_set():
            self._force.set()
            self._kill_all()
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM call :meth:`request_stop` (twice means force)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)

    async def run(self) -> None:
        """Start every child, restart crashed ones, return after a full stop."""
        async with asyncio.TaskGroup() as group:
            for child in self._children:
                group.create_task(self._watch(child), name=f"watch:{child.spec.name}")
        await self._terminate_all()

    async def _spawn(self, child: ChildState) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *child.spec.argv,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            # Own process group: the terminal's Ctrl-C reaches the supervisor only, which
            # then drains children in order instead of all of them dying at once.
            start_new_session=True,
        )
        child.process = proc
        child.started_at = time.monotonic()
        self._on_event(f"started {child.spec.name} (pid {proc.pid})")
        return proc

    async def _watch(self, child: ChildState) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            proc = await self._spawn(child)
            wait = asyncio.ensure_future(proc.wait())
            stop = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not wait.done():
                wait.cancel()
                return  # stopping: _terminate_all drains it
            code = wait.result()
            child.exits.append(code)
            if self._stop.is_set() or not child.spec.restart:
                self._on_event(f"{child.spec.name} exited with {code}")
                return
            lived = time.monotonic() - child.started_at
            backoff = 0.5 if lived > 30 else min(backoff * 2, RESTART_BACKOFF_MAX_S)
            child.restarts += 1
            self._on_event(
                f"{child.spec.name} exited with {code}; restarting in {backoff:.1f} s "
                f"(restart {child.restarts})"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=backoff)

    async def _terminate_all(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        alive = [c.process for c in self._children if c.process and c.process.returncode is None]
        for proc in alive:
            _send(proc, signal.SIGTERM)
        if alive:
            self._on_event(
                f"draining {len(alive)} process(es), up to {self._drain_timeout:.0f} s "
                "(Ctrl-C again to force)"
            )
        waits = [asyncio.ensure_future(p.wait()) for p in alive]
        force = asyncio.ensure_future(self._force.wait())
        try:
            if waits:
                done_all: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*waits))
                racing: set[asyncio.Future[Any]] = {done_all, force}
                await asyncio.wait(
                    racing,
                    timeout=self._drain_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            force.cancel()
        self._kill_all()
        for proc in alive:
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()

    def _kill_all(self) -> None:
        for child in self._children:
            if child.process is not None and child.process.returncode is None:
                _send(child.process, signal.SIGKILL)


def _send(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
