"""THE faust adapter of the queue-state app: the only module that imports faust (untyped).

What it wires (the logic lives in :mod:`.state` and :mod:`.views`):

- one agent over the three submission topics and the decisions topic (co-partitioned:
  same key, same partition count, checked before start-up by :func:`input_partition_counts`
  and :func:`streams.queue_state.views.check_copartitioning`);
- two tables in the in-memory store, backed by compacted changelog topics that faust creates
  (``{app id}-queue-keys-changelog``, ``{app id}-queue-classes-changelog``), with as many
  partitions as the inputs; a restart reloads them from the changelog instead of
  re-reading the inputs from the beginning, and the reducers ignore replayed events;
- a timer that publishes, at most once per interval, each changed per-key queue (a record, or
  a tombstone once it is empty) and each class's top-N stuck keys when the ranking changed;
- a re-read of the inputs from their committed offsets :data:`REREAD_AFTER_S` after every
  recovery (see :meth:`QueueStateApp.reread_inputs`: faust can drop the first records after a
  restart, and the reducers make the re-read harmless).

Empty states are deleted after the grace period while a later event of the same partition is
handled (faust writes a table's changelog to the partition of the event being processed).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaClient
from faust.serializers import codecs

from schemas.codec import decode_decision, decode_submission, encode
from schemas.errors import ContractError
from schemas.kafka_config import bootstrap_servers
from schemas.queues import QueueClass
from schemas.settings import SecurityProtocol, Settings
from schemas.submissions import QUEUE_CLASS_BY_KIND
from schemas.topics import TopicNames
from streams.queue_state import serde
from streams.queue_state.options import QueueStateOptions
from streams.queue_state.state import (
    ClassStats,
    Outcome,
    Transition,
    apply_class,
    apply_decision,
    apply_submission,
    decision_state_key,
    expired,
    is_published_key,
    submission_state_key,
    summarize_class,
)
from streams.queue_state.views import (
    PER_KEY_CLASSES,
    StuckEntry,
    key_record,
    render_stuck,
    stuck_entry,
    top_stuck,
)

_LOG = logging.getLogger("modq.queue_state")
_SUMMARY_EVERY = 10.0
REREAD_AFTER_S = 1.0
"""How long after a recovery completes the inputs are re-read from their committed offsets."""


class _KeyCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return serde.dump_key(obj)

    def _loads(self, s: bytes) -> Any:
        return serde.load_key(s)


class _ClassCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return serde.dump_class(obj)

    def _loads(self, s: bytes) -> Any:
        return serde.load_class(s)


def app_id(settings: Settings) -> str:
    """The faust application id (consumer group, changelog topic prefix): one per prefix."""
    return f"{settings.topic_prefix}modq-queue-state"


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    sec = settings.kafka_security
    if sec.protocol not in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        return None
    cafile = None if sec.ssl_ca_location is None else str(sec.ssl_ca_location)
    return ssl.create_default_context(cafile=cafile)


def _credentials(settings: Settings) -> Any:
    sec = settings.kafka_security
    if sec.protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        password = None if sec.sasl_password is None else sec.sasl_password.get_secret_value()
        return faust.SASLCredentials(
            username=sec.sasl_username,
            password=password,
            mechanism=sec.sasl_mechanism,
            ssl_context=_ssl_context(settings),
        )
    context = _ssl_context(settings)
    return None if context is None else faust.SSLCredentials(context)


async def input_partition_counts(settings: Settings) -> dict[str, int | None]:
    """Partition count of each input topic from the cluster's metadata (``None``: missing)."""
    names = TopicNames.from_prefix(settings.topic_prefix)
    sec = settings.kafka_security
    kwargs: dict[str, Any] = {"security_protocol": sec.protocol.value}
    if sec.protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        kwargs.update(
            sasl_mechanism=sec.sasl_mechanism,
            sasl_plain_username=sec.sasl_username,
            sasl_plain_password=(
                None if sec.sasl_password is None else sec.sasl_password.get_secret_value()
            ),
        )
    context = _ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers(settings), **kwargs)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
    finally:
        await client.close()
    out: dict[str, int | None] = {}
    for topic in (*names.submission_topics(), names.decisions):
        parts = metadata.partitions_for_topic(topic)
        out[topic] = None if parts is None else len(parts)
    for topic in changelog_topics(settings):  # must agree too, once they exist
        parts = metadata.partitions_for_topic(topic)
        if parts is not None:
            out[topic] = len(parts)
    return out


def changelog_topics(settings: Settings) -> tuple[str, ...]:
    """The topics faust creates for the app: table changelogs and the assignor's leader."""
    app = app_id(settings)
    return (f"{app}-queue-keys-changelog", f"{app}-queue-classes-changelog")


class QueueStateApp:
    """The faust app, its tables, agent and timer, and the in-memory publication bookkeeping.

    In-memory only (rebuilt from the tables after every recovery): the set of changed keys
    not yet published, the stuck ranking entries, each partition's empty states, and the
    last stuck rankings published.
    """

    def __init__(
        self,
        settings: Settings,
        options: QueueStateOptions,
        *,
        partitions: int,
        clock: Any = time.time,
    ) -> None:
        self.settings = settings
        self.options = options
        self.names = TopicNames.from_prefix(settings.topic_prefix)
        self._clock = clock
        datadir = settings.state_dir / "queue-state"
        self.app: Any = faust.App(
            app_id(settings),
            broker=f"kafka://{bootstrap_servers(settings)}",
            broker_credentials=_credentials(settings),
            store="memory://",
            datadir=str(datadir),
            autodiscover=False,
            web_enabled=False,
            topic_partitions=partitions,
            topic_replication_factor=settings.topic_replication_factor,
            producer_acks=-1,
            producer_linger=0.005,  # batch the changelog writes of a burst
            processing_guarantee="at_least_once",
            broker_commit_interval=options.commit_interval,
            consumer_auto_offset_reset="earliest",
            table_standby_replicas=0,
        )
        self.keys: Any = self._table("queue-keys", _KeyCodec(), partitions)
        self.classes: Any = self._table("queue-classes", _ClassCodec(), partitions)
        self.source: Any = self.app.topic(
            *self.names.submission_topics(),
            self.names.decisions,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.visualization: Any = self.app.topic(
            self.names.visualization, key_serializer="raw", value_serializer="raw"
        )
        self.dirty: set[str] = set()
        self.stuck: dict[str, StuckEntry] = {}
        self.empties: dict[int, dict[str, float]] = {}
        self.last_stuck: dict[QueueClass, tuple[StuckEntry, ...] | None] = {}
        self.needs_rebuild = True
        self.reread_at: float | None = None
        self.counters: dict[str, int] = {o.value: 0 for o in Outcome} | {"invalid": 0}
        self._last_sweep: dict[int, float] = {}
        self._last_summary = 0.0
        self.agent: Any = self.app.agent(self.source, name="modq-queue-state")(self._process)
        self.app.timer(options.publish_interval)(self._tick)
        self.app.on_rebalance_complete.connect(self._on_rebalance)

    def _table(self, name: str, codec: Any, partitions: int) -> Any:
        table = self.app.Table(name, default=None, partitions=partitions)
        # faust derives a table's serializers from its key/value types (JSON here); set ours
        # and rebuild the changelog topic (same name and configs) so that writes and recovery
        # both use the codec.
        table.key_serializer = "json"
        table.value_serializer = codec
        table.changelog_topic = table._new_changelog_topic()
        # Co-partitioning of inputs and changelogs is checked before start-up
        # (check_copartitioning); faust's own per-event check reads consumer metadata that
        # may not list a just-created changelog yet (0 partitions) and would crash the agent.
        table._verified_source_topics_for_partitions.update(
            (*self.names.submission_topics(), self.names.decisions)
        )
        return table

    async def _on_rebalance(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.needs_rebuild = True

    # --- the agent ------------------------------------------------------------------------

    async def _process(self, stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            self.handle(message.topic, message.partition, message.key, event.value)

    def handle(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        """Fold one input record into the tables (must run inside the agent's stream)."""
        now = self._clock()
        try:
            if topic == self.names.decisions:
                self._on_decision(partition, key, value, now)
            else:
                self._on_submission(topic, partition, value, now)
        except ContractError as exc:
            self.counters["invalid"] += 1
            _LOG.warning("skipping invalid record %s[%d]: %s", topic, partition, exc)
        self._sweep(partition, now)

    def _on_submission(self, topic: str, partition: int, value: bytes | None, now: float) -> None:
        kind = self.names.kind_of_topic(topic)
        submission = decode_submission(value, kind=kind, max_bytes=self.settings.max_record_bytes)
        state_key = submission_state_key(submission.queue_name, submission.key)
        at = submission.submitted_at.timestamp()
        stored = self.keys.get(state_key)
        transition = apply_submission(
            None if stored is None else stored.state,
            key=state_key,
            queue_class=submission.queue_class,
            submission_id=submission.id,
            submitted_at=at,
        )
        self._store(partition, state_key, transition, None, at)

    def _on_decision(
        self, partition: int, key: bytes | None, value: bytes | None, now: float
    ) -> None:
        decision = decode_decision(value, max_bytes=self.settings.max_record_bytes)
        record_key = "" if key is None else key.decode("utf-8", "replace")
        state_key = decision_state_key(decision.queue, record_key)
        at = decision.decided_at.timestamp()
        stored = self.keys.get(state_key)
        transition = apply_decision(
            None if stored is None else stored.state,
            key=state_key,
            queue_class=QUEUE_CLASS_BY_KIND[decision.kind],
            submission_id=decision.submission_id,
            verdict=decision.verdict,
            decided_at=at,
            now=now,
        )
        self._store(partition, state_key, transition, decision.verdict, at)

    def _store(
        self, partition: int, state_key: str, transition: Transition, verdict: Any, at: float
    ) -> None:
        self.counters[transition.outcome.value] += 1
        if transition.outcome is Outcome.DUPLICATE:
            return
        state = transition.state
        self.keys[state_key] = serde.StoredKey(partition, state)
        class_key = f"{state.queue_class.value}@{partition}"
        stats = self.classes.get(class_key) or ClassStats(state.queue_class)
        self.classes[class_key] = apply_class(
            stats,
            transition,
            verdict=verdict,
            event_at=at,
            window_size=self.options.window_seconds,
        )
        self._index(partition, state_key, state)
        if is_published_key(state_key):
            self.dirty.add(state_key)

    def _index(self, partition: int, state_key: str, state: Any) -> None:
        entry = stuck_entry(state)
        if entry is None:
            self.stuck.pop(state_key, None)
        else:
            self.stuck[state_key] = entry
        empties = self.empties.setdefault(partition, {})
        if state.emptied_at is None:
            empties.pop(state_key, None)
        else:
            empties[state_key] = state.emptied_at

    def _sweep(self, partition: int, now: float) -> None:
        """Delete this partition's states that have been empty for the grace period."""
        grace = self.options.empty_grace_seconds
        if now - self._last_sweep.get(partition, 0.0) < max(1.0, grace / 4):
            return
        self._last_sweep[partition] = now
        empties = self.empties.get(partition, {})
        for state_key, emptied_at in list(empties.items()):
            if now - emptied_at < grace:
                continue
            stored = self.keys.get(state_key)
            del empties[state_key]
            if stored is not None and expired(stored.state, now=now, grace=grace):
                del self.keys[state_key]

    # --- publication ----------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether the tables are recovered and no rebalance is in progress."""
        recovery = self.app.tables.recovery
        return bool(
            recovery.completed.is_set() and not self.app.rebalancing and not recovery.in_recovery
        )

    def rebuild(self) -> None:
        """Rebuild the in-memory indexes from the tables and mark every key changed."""
        self.stuck.clear()
        self.empties.clear()
        for state_key, stored in list(self.keys.items()):
            self._index(stored.partition, state_key, stored.state)
            if is_published_key(state_key):
                self.dirty.add(state_key)
        self.last_stuck.clear()
        self.needs_rebuild = False

    async def _tick(self) -> None:
        if not self.ready():
            return
        now = self._clock()
        if self.needs_rebuild:
            self.rebuild()
            self.reread_at = now + REREAD_AFTER_S
        elif self.reread_at is not None and now >= self.reread_at:
            self.reread_at = None
            await self.reread_inputs()
        await self.publish(now)

    async def reread_inputs(self) -> None:
        """Seek every input partition back to its committed offset.

        Why: when records wait in the inputs at start-up, faust can fetch some of them while
        the tables recover, clear them from its queues when recovery completes, and still
        count them as read, so the first records after the committed offset are never handed
        to the agent (faust-streaming#596; seen here about once in ten restarts: a decision
        or an arrival lost, a key's count off for good). Faust cannot commit past the lost
        record either, so the committed offset is still before it: re-reading from there,
        once the flow has settled, hands it over. Records handled twice are harmless: the
        reducers count a re-delivered arrival or decision once (``Outcome.DUPLICATE``).
        """
        _LOG.info("re-reading the inputs from their committed offsets after recovery")
        await self.app.consumer.perform_seek()

    async def publish(self, now: float) -> int:
        """Publish every changed key and each changed stuck ranking; returns records sent."""
        sent = 0
        if not self.dirty and len(self.last_stuck) == len(PER_KEY_CLASSES):
            return sent
        dirty, self.dirty = self.dirty, set()
        for state_key in sorted(dirty):
            stored = self.keys.get(state_key)
            value = key_record(state_key, None if stored is None else stored.state, now=now)
            await self.visualization.send(key=state_key.encode(), value=value)
            sent += 1
        for queue_class in PER_KEY_CLASSES:
            top = top_stuck(self.stuck.values(), queue_class, limit=self.options.top_n)
            if self.last_stuck.get(queue_class) == top:
                continue
            view = render_stuck(queue_class, top, now=now)
            await self.visualization.send(key=view.queue.encode(), value=encode(view))
            self.last_stuck[queue_class] = top
            sent += 1
        if now - self._last_summary >= _SUMMARY_EVERY:
            self._last_summary = now
            self._log_summary(now)
        return sent

    def _log_summary(self, now: float) -> None:
        parts: dict[QueueClass, list[ClassStats]] = {c: [] for c in QueueClass}
        for stats in list(self.classes.values()):
            parts[stats.queue_class].append(stats)
        for queue_class, stats_list in parts.items():
            s = summarize_class(
                queue_class, stats_list, now=now, window_size=self.options.window_seconds
            )
            _LOG.info(
                "%s: pending=%d arrivals=%d decisions=%d in=%.2f/s out=%.2f/s keys=%d %s",
                queue_class.value,
                s.pending,
                s.arrivals,
                s.decisions,
                s.arrival_rate,
                s.decision_rate,
                sum(1 for e in self.stuck.values() if e.queue_class is queue_class),
                self.counters,
            )


def run_app(
    settings: Settings, options: QueueStateOptions, *, partitions: int, loglevel: str
) -> int:
    """Run the app in faust's worker until SIGTERM/SIGINT; the process's exit status."""
    (settings.state_dir / "queue-state").mkdir(parents=True, exist_ok=True)
    for noisy in ("faust", "mode", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # "producer buffer full" is faust's back-pressure working as designed, logged per batch;
    # on an operator's terminal it drowns everything else.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    qs = QueueStateApp(settings, options, partitions=partitions)
    worker = qs.app.Worker(
        loglevel=loglevel, redirect_stdouts=False, override_logging=False, quiet=True
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def partition_counts_blocking(settings: Settings) -> dict[str, int | None]:
    """:func:`input_partition_counts` on a private event loop (before faust owns one)."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(input_partition_counts(settings))
    finally:
        loop.close()


__all__: Sequence[str] = (
    "QueueStateApp",
    "app_id",
    "input_partition_counts",
    "partition_counts_blocking",
    "run_app",
)
