"""What machine a benchmark ran on: cores, memory, load, versions, date (for every figure)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _free_h() -> str:
    """The ``Mem:`` line of ``free -h`` (total, used, free, ..., available)."""
    if shutil.which("free") is None:
        return "unknown"
    out = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if line.startswith("Mem:"):
            parts = line.split()
            return f"total {parts[1]}, used {parts[2]}, available {parts[-1]}"
    return "unknown"


def _nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 0


def machine_info() -> dict[str, str | int | float]:
    """Date, cores (``nproc``), CPU, ``free -h`` summary, load average and versions."""
    load1, load5, _ = os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": _nproc(),
        "cpu": _cpu_model(),
        "memory": _free_h(),
        "loadavg_1m": round(load1, 2),
        "loadavg_5m": round(load5, 2),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "confluent_kafka": _version("confluent-kafka"),
        "faust_streaming": _version("faust-streaming"),
    }


def machine_line(meta: dict[str, object]) -> str:
    """One line for a report: ``2 cores (CPU), total 23Gi ..., load 3.1, Linux, Python``."""
    return (
        f"{meta.get('nproc', '?')} cores (`nproc`; {meta.get('cpu', '?')}), memory "
        f"{meta.get('memory', '?')} (`free -h`), load average {meta.get('loadavg_1m', '?')} "
        f"at start, {meta.get('os', '?')}, Python {meta.get('python', '?')}, confluent-kafka "
        f"{meta.get('confluent_kafka', '?')}, faust-streaming {meta.get('faust_streaming', '?')}"
    )


def rss_mib(pid: int) -> float:
    """Resident memory (``VmRSS``) of process ``pid`` in MiB; NaN once it has gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """SIGTERM (a graceful drain), then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
