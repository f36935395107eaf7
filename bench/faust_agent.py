"""The faust-streaming baseline: one agent doing modq's per-record work (untyped; quarantined).

``python -m bench.faust_agent --prefix P --app-id ID --datadir DIR`` consumes the posts topic
of prefix ``P`` with an agent (faust's defaults: one agent instance, events handled one at a
time, offsets acknowledged after each event and committed every few seconds), runs the very
same :class:`streams.processing.RecordProcessor` (decode, ``RuleBasedPolicy``, decision
bytes) the modq worker runs, and sends each outcome's messages (the decision) with faust's
producer (``acks=all``, lz4, linger 5 ms, like modq's). Runs until SIGTERM.

The app id is unique per run, so each run is a fresh consumer group reading the backlog
from the beginning; faust's internal topics are named after it and deleted by the driver.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from typing import Any

import faust

from bench.kafka_driver import BOOTSTRAP, PARTITIONS
from schemas.topics import TopicNames
from streams.kafka_io import Record
from streams.moderation import RuleBasedPolicy
from streams.processing import RecordProcessor, RetryPolicy


def _now() -> datetime:
    return datetime.now(UTC)


def build_app(prefix: str, app_id: str, datadir: str) -> Any:
    """The faust app with its one agent."""
    names = TopicNames.from_prefix(prefix)
    app: Any = faust.App(
        app_id,
        broker=f"kafka://{BOOTSTRAP}",
        store="memory://",
        datadir=datadir,
        autodiscover=False,
        web_enabled=False,
        topic_partitions=PARTITIONS,
        producer_acks=-1,
        producer_compression_type="lz4",
        producer_linger_ms=5,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    source = app.topic(names.submissions_posts, key_serializer="raw", value_serializer="raw")
    processor = RecordProcessor(
        policy=RuleBasedPolicy(),
        topics=names,
        worker_id="bench-faust",
        retry=RetryPolicy(max_attempts=5, backoff_seconds=0.1),
        max_record_bytes=1_000_000,
        clock=_now,
    )

    async def moderate(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            record = Record(
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                value=msg.value,
                headers=(),
                timestamp_ms=int(msg.timestamp * 1000),
            )
            outcome = await processor.process(record)
            for out in outcome.messages:
                await app.send(
                    out.topic, key=out.key, value=out.value, headers=list(out.headers) or None
                )

    app.agent(source, name="moderate")(moderate)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the agent in faust's worker until SIGTERM; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench.faust_agent", description=__doc__)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--datadir", required=True)
    args = parser.parse_args(argv)
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = build_app(args.prefix, args.app_id, args.datadir)
    worker = app.Worker(loglevel="warning", redirect_stdouts=False, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
