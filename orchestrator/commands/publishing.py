"""`modq submit` and `modq loadgen`: publish submissions through the publisher SDK.

`submit` reads submissions from JSON arguments, field options (``--kind post --topic-id ...``),
a JSON file (one object, an array of objects, or JSON lines) or JSON lines on stdin. It
validates everything first: without ``--keep-going`` one invalid input means nothing is sent
(exit 2, the error names the input and the field); with it the valid ones are sent and the
invalid ones reported (still exit 2). Each delivery is printed as one JSON line on stdout in
input order. A delivery failure (broker unreachable past ``--timeout``) exits 1.

`loadgen` drives :mod:`streams.loadgen` at a rate, for a duration or a count (or until
Ctrl-C), shows a progress bar on stderr and prints a summary (sent, failed, msgs/s).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from schemas.errors import ContractError
from schemas.submissions import SubmissionKind

if TYPE_CHECKING:
    from streams.publisher import Delivery, PublisherOptions, SyncPublisher

console = Console(stderr=True)

_FIELD_OPTIONS = (
    "id",
    "topic_id",
    "author_id",
    "title",
    "body",
    "sender_id",
    "recipient_id",
    "submitted_at",
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One input record and where it came from (for error messages)."""

    where: str
    raw: bytes


# --- reading input (pure but for the file/stdin reads at the edge) ----------------------------


def entries_from_text(text: str, source: str) -> list[Entry]:
    """A JSON document or JSON lines → entries.

    An array gives one entry per item; a single object one entry; anything else is read as
    JSON lines (blank lines skipped), so a broken line is reported by its number.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            return [Entry(source, f"[{exc.msg}".encode())]  # fails decoding as "not JSON"
        if isinstance(items, list):
            return [
                Entry(f"{source} item {n}", json.dumps(item).encode())
                for n, item in enumerate(items, 1)
            ]
    if stripped.startswith("{") and "\n" in stripped:
        try:
            json.loads(stripped)
        except json.JSONDecodeError:
            pass
        else:
            return [Entry(source, stripped.encode())]
    return [
        Entry(f"{source} line {n}", line.encode())
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]


def entry_from_options(fields: dict[str, str | None], kind: SubmissionKind) -> Entry:
    """The submission the field options describe; ``id`` and ``submitted_at`` default."""
    doc: dict[str, Any] = {"kind": kind.value}
    doc.update({name: value for name, value in fields.items() if value is not None})
    doc.setdefault("id", uuid.uuid4().hex)
    doc.setdefault("submitted_at", datetime.now(UTC).isoformat())
    return Entry("options", json.dumps(doc).encode())


def _delivery_line(delivery: Delivery, kind: str) -> str:
    return json.dumps(
        {
            "id": delivery.submission_id,
            "kind": kind,
            "key": delivery.key,
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
        }
    )


def _options(timeout: float) -> PublisherOptions:
    from streams.publisher import PublisherOptions

    return PublisherOptions(delivery_timeout_s=timeout, client_id="modq-cli")


# --- modq submit -------------------------------------------------------------------------------


def submit(  # noqa: PLR0917 - typer maps each parameter to an option
    records: Annotated[
        list[str] | None, typer.Argument(help="submissions as JSON objects", show_default=False)
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="JSON file: an object, an array, or JSON lines ('-': stdin)"
        ),
    ] = None,
    kind: Annotated[
        SubmissionKind | None, typer.Option(help="build one submission from the options below")
    ] = None,
    submission_id: Annotated[str | None, typer.Option("--id", help="default: random")] = None,
    topic_id: Annotated[str | None, typer.Option()] = None,
    author_id: Annotated[str | None, typer.Option()] = None,
    title: Annotated[str | None, typer.Option()] = None,
    body: Annotated[str | None, typer.Option()] = None,
    sender_id: Annotated[str | None, typer.Option()] = None,
    recipient_id: Annotated[str | None, typer.Option()] = None,
    submitted_at: Annotated[str | None, typer.Option(help="RFC 3339; default: now")] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="send the valid inputs even if some are invalid")
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the broker's ack")] = 30.0,
) -> None:
    """Publish submissions from arguments, a JSON file, or JSON lines on stdin."""
    from orchestrator.cli import fail, settings_or_exit
    from schemas.codec import decode_submission

    entries = [Entry(f"argument {n}", r.encode()) for n, r in enumerate(records or [], 1)]
    if kind is not None:
        values = (submission_id, topic_id, author_id, title, body, sender_id, recipient_id)
        fields = dict(zip(_FIELD_OPTIONS, (*values, submitted_at), strict=True))
        entries.append(entry_from_options(fields, kind))
    if file is not None:
        entries += _file_entries(file)
    elif not entries:
        if sys.stdin.isatty():
            fail("nothing to submit: give JSON arguments, --kind, --file, or lines on stdin", 2)
        entries = entries_from_text(sys.stdin.read(), "stdin")
    if not entries:
        fail("nothing to submit: the input is empty", 2)

    settings = settings_or_exit()
    valid: list[tuple[Entry, Any]] = []
    invalid = 0
    for entry in entries:
        try:
            valid.append((entry, decode_submission(entry.raw, max_bytes=settings.max_record_bytes)))
        except ContractError as exc:
            invalid += 1
            console.print(f"[bold red]error:[/] {entry.where}: {exc}", highlight=False)
    if invalid and not keep_going:
        fail(f"{invalid} invalid input(s); nothing was sent (--keep-going sends the rest)", 2)
    failed = _publish_entries(settings, valid, timeout)
    if failed:
        raise typer.Exit(1)
    if invalid:
        fail(f"{invalid} invalid input(s) skipped; {len(valid)} sent", 2)


def _file_entries(file: Path) -> list[Entry]:
    """Entries of ``--file`` (``-``: stdin); exit 2 when it cannot be read."""
    from orchestrator.cli import fail

    if str(file) == "-":
        return entries_from_text(sys.stdin.read(), "stdin")
    try:
        return entries_from_text(file.read_text("utf-8"), str(file))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--file: cannot read {file}: {exc}", 2)


def _publish_entries(settings: Any, valid: list[tuple[Entry, Any]], timeout: float) -> int:
    """Send ``valid`` in order, print each delivery or error; returns the number that failed."""
    from streams.publisher import PublishError, SyncPublisher

    failed = 0
    with SyncPublisher(settings, _options(timeout)) as pub:
        futures = [(entry, model, pub.send(model)) for entry, model in valid]
        for entry, model, future in futures:
            try:
                print(_delivery_line(future.result(), model.kind), flush=True)
            except PublishError as exc:
                failed += 1
                console.print(f"[bold red]error:[/] {entry.where}: {exc}", highlight=False)
    return failed


# --- modq loadgen ------------------------------------------------------------------------------


class _Tally:
    """Delivery outcomes, counted from the publisher's report thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.first_error: str | None = None

    def done(self, future: Future[Delivery]) -> None:
        error = future.exception()
        with self._lock:
            if error is None:
                self.sent += 1
            else:
                self.failed += 1
                self.first_error = self.first_error or str(error)


def loadgen(  # noqa: PLR0917 - typer maps each parameter to an option
    rate: Annotated[float, typer.Option(help="records per second (0: as fast as possible)")] = 100,
    duration: Annotated[float, typer.Option(help="seconds to run (0: no limit)")] = 0,
    count: Annotated[int, typer.Option(help="records to send (0: no limit)")] = 0,
    mix: Annotated[str, typer.Option(help="kind weights")] = "topic=1,post=6,private_message=3",
    topics: Annotated[int, typer.Option(help="forum topics that posts go to")] = 100,
    user_pairs: Annotated[int, typer.Option(help="conversations (pairs of users)")] = 100,
    zipf: Annotated[float, typer.Option(help="Zipf exponent of key popularity")] = 1.1,
    body_bytes: Annotated[int, typer.Option(help="mean body size")] = 300,
    bad_fraction: Annotated[float, typer.Option(help="share of invalid records (0-1)")] = 0.0,
    seed: Annotated[int, typer.Option(help="random seed (same seed: same records)")] = 1,
    run_id: Annotated[str, typer.Option(help="prefix of ids and keys; default: random")] = "",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the broker's ack")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Generate realistic load for demos and benchmarks (Ctrl-C stops early)."""
    from orchestrator.cli import fail, settings_or_exit
    from streams.loadgen import LoadGenerator, LoadProfile, parse_mix
    from streams.publisher import SyncPublisher

    if rate < 0 or duration < 0 or count < 0:
        fail("--rate, --duration and --count must not be negative", 2)
    try:
        profile = LoadProfile(
            run_id=run_id or uuid.uuid4().hex[:8],
            seed=seed,
            mix=parse_mix(mix),
            topics=topics,
            user_pairs=user_pairs,
            zipf_s=zipf,
            body_bytes=body_bytes,
            bad_fraction=bad_fraction,
        )
    except ValueError as exc:
        fail(str(exc), 2)
    settings = settings_or_exit()
    generator = LoadGenerator(profile)
    tally = _Tally()
    started = time.monotonic()
    with SyncPublisher(settings, _options(timeout)) as pub:
        kinds, bad = _drive(pub, generator, tally, rate=rate, duration=duration, count=count)
    seconds = max(time.monotonic() - started, 1e-9)
    summary = {
        "run_id": profile.run_id,
        "generated": generator.generated,
        "sent": tally.sent,
        "failed": tally.failed,
        "bad": bad,
        "by_kind": dict(sorted(kinds.items())),
        "seconds": round(seconds, 3),
        "msgs_per_s": round(tally.sent / seconds, 1),
    }
    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        Console().print(
            f"run {profile.run_id}: sent {tally.sent} (of which {bad} deliberately bad), "
            f"failed {tally.failed}, in {seconds:.1f} s: {summary['msgs_per_s']} msgs/s",
            highlight=False,
        )
    if tally.failed:
        fail(f"{tally.failed} record(s) not delivered; first: {tally.first_error}")


def _drive(
    pub: SyncPublisher,
    generator: Any,
    tally: _Tally,
    *,
    rate: float,
    duration: float,
    count: int,
) -> tuple[Counter[str], int]:
    """Generate and queue records on schedule until the limits; returns (per kind, bad)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.loadgen import BadRecord

    total = count or (int(duration * rate) if duration and rate else None)
    kinds: Counter[str] = Counter()
    bad = 0
    columns = (
        TextColumn("[bold]loadgen"),
        BarColumn(),
        TextColumn("{task.completed} queued"),
        TextColumn("{task.fields[acked]} acked, {task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("load", total=total, acked=0, failed=0)
        try:
            for chunk in _schedule(started, rate, duration, count, generator):
                now = datetime.now(UTC)
                for record in generator.take(chunk, now):
                    if isinstance(record, BadRecord):
                        bad += 1
                        future = pub.send_unchecked(record.kind, record.key, record.value)
                    else:
                        future = pub.send(record)
                    kinds[record.kind] += 1
                    future.add_done_callback(tally.done)
                progress.update(task, advance=chunk, acked=tally.sent, failed=tally.failed)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: flushing what was queued")
        pub.flush()  # every queued record gets its report before the summary
        progress.update(task, acked=tally.sent, failed=tally.failed)
    return kinds, bad


def _schedule(
    started: float, rate: float, duration: float, count: int, generator: Any
) -> Iterator[int]:
    """Chunk sizes to generate, paced to ``rate``; sleeps between chunks when ahead."""
    from streams.loadgen import records_due

    limit = count or 2**62
    while generator.generated < limit:
        elapsed = time.monotonic() - started
        if duration and elapsed >= duration:
            return
        due = min(records_due(elapsed, rate), limit) - generator.generated
        if due > 0:
            yield min(due, 1000)
            continue
        # Ahead of schedule: wait for the next record's slot (pacing, not synchronisation).
        next_slot = generator.generated / rate
        time.sleep(max(0.0, min(next_slot - elapsed, 0.1)))
