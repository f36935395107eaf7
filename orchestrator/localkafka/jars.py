"""Apache Kafka's own broker jars, fetched from Maven Central by the pom beside this module.

The jars land in a cache folder (ignored by git) keyed by the Kafka version, so a second
``make run`` finds them and downloads nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

POM = Path(__file__).with_name("pom.xml")
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


class ToolMissingError(RuntimeError):
    """Java or Maven is not installed; the message says what to do instead."""

    def __init__(self, tool: str) -> None:
        super().__init__(
            f"`{tool}` was not found on PATH. modq starts a local Apache Kafka broker from "
            "Kafka's own jars and needs Java 17+ and Maven for it. Install them "
            "(Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless maven`), or set "
            "KAFKA_BOOTSTRAP_SERVERS to an existing cluster, or run "
            "`docker compose -f docker-compose.kafka.yml up -d` where Docker is available."
        )
        self.tool = tool


class JarFetchError(RuntimeError):
    """Maven could not fetch the jars; ``output`` holds the tail of its log."""

    def __init__(self, output: str) -> None:
        super().__init__(f"fetching Apache Kafka's jars with Maven failed:\n{output}")
        self.output = output


def kafka_version() -> str:
    """The Kafka version the pom pins (``<kafka.version>``)."""
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text("utf-8"))
    if match is None:  # pragma: no cover - the pom is ours
        raise RuntimeError(f"{POM} has no <kafka.version>")
    return match.group(1)


def require_tool(tool: str) -> str:
    """The absolute path of ``tool``, or :class:`ToolMissingError`."""
    path = shutil.which(tool)
    if path is None:
        raise ToolMissingError(tool)
    return path


def ensure_jars(cache_root: Path) -> Path:
    """Return the folder holding Kafka's runtime classpath, fetching it once if needed.

    Idempotent: a folder with a completion marker is reused without running Maven.
    """
    target = cache_root.resolve() / f"kafka-{kafka_version()}"
    marker = target / ".complete"
    if marker.exists():
        return target
    require_tool("java")
    mvn = require_tool("mvn")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise JarFetchError(tail)
    (partial / ".complete").write_text(kafka_version() + "\n", "utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
