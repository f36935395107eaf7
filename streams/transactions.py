"""Exactly-once commits: a batch's decisions and its consumed offsets in one transaction.

Under ``exactly_once`` nothing is published when a record finishes; its messages wait in the
offset tracker. Every commit cycle takes the finished prefix of each partition and, in one
Kafka transaction, publishes its messages in offset order and adds the offsets with the
consumer's group metadata (KIP-447), so a fenced zombie can neither publish nor commit.
Consumers of decisions read committed.

Failure rules (by error attributes, never message text): an abortable error aborts and the
caller rewinds; a fatal error, or a timeout while committing or aborting, makes the producer
unusable, so it is rebuilt (``init_transactions`` fences its predecessor) and the caller
rewinds to the last committed offsets.

:class:`OffsetCommitter` is what a session calls: plain offset commits under at-least-once,
the transactional committer under exactly-once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streams import offset_map
from streams.kafka_io import TP, DataConsumer, DataProducer, KafkaIOError
from streams.offsets import Release
from streams.processing import OutMessage

_LOG = logging.getLogger("modq.worker.txn")
TXN_TIMEOUT_S = 30.0


class TransactionalCommitter:
    """Owns the transactional producer of one class session. Used from one thread."""

    def __init__(
        self,
        producer: DataProducer,
        factory: Callable[[str], DataProducer],
        client_id: str,
    ) -> None:
        self.producer = producer
        self._factory = factory
        self._client_id = client_id
        self.commits = 0
        self.aborts = 0
        self.rebuilds = 0

    def start(self) -> None:
        """Register the transactional id (fences an older instance of this worker)."""
        self.producer.init_transactions(TXN_TIMEOUT_S)

    def commit(self, release: Release[tuple[OutMessage, ...]], group_metadata: Any) -> bool:
        """Publish ``release``'s messages and commit its offsets atomically; False on failure.

        On False nothing of the release is visible to read-committed consumers and its
        offsets are not committed: the caller must re-read from ``release.starts``.
        """
        try:
            self.producer.begin()
            for _tp, messages in release.results:
                for message in messages:
                    self.producer.produce(
                        message.topic,
                        key=message.key,
                        value=message.value,
                        headers=list(message.headers),
                    )
            self.producer.send_offsets(release.offsets, group_metadata, TXN_TIMEOUT_S)
            self.producer.commit(TXN_TIMEOUT_S)
        except KafkaIOError as exc:
            self._recover(exc)
            return False
        self.commits += 1
        return True

    def _recover(self, exc: KafkaIOError) -> None:
        _LOG.warning("transaction failed: %s", exc)
        if exc.abortable and not exc.fatal:
            try:
                self.producer.abort(TXN_TIMEOUT_S)
                self.aborts += 1
                return
            except KafkaIOError as abort_exc:
                _LOG.warning("abort failed, rebuilding the producer: %s", abort_exc)
        self._rebuild()

    def _rebuild(self) -> None:
        self.rebuilds += 1
        self.producer.flush(0)
        self.producer = self._factory(self._client_id)
        self.producer.init_transactions(TXN_TIMEOUT_S)


class OffsetCommitter:
    """Commits released prefixes: plain offset commits (at-least-once), or transactions.

    Used only from the consumer's thread (periodic commits and rebalance callbacks alike), so
    its state needs no lock. At-least-once: offsets whose commit failed are kept and retried
    with the next commit, unless the group fenced this member (the new owner re-reads).
    """

    def __init__(self, consumer: DataConsumer, transactional: TransactionalCommitter | None):
        self._consumer = consumer
        self._txn = transactional
        self._pending: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}
        self._metadata: dict[TP, str] = {}

    def seed(self, tp: TP, offset: int, metadata: str) -> None:
        """What the group had committed for ``tp`` when it was assigned to us."""
        self._committed[tp] = offset
        self._metadata[tp] = metadata

    def commit(self, release: Release[tuple[OutMessage, ...]]) -> bool:
        """Commit ``release``; False only when a transaction failed: then nothing of it is
        visible or committed, and the caller must rewind to ``release.starts``."""
        if self._txn is not None:
            if not release.offsets:
                return True
            return self._txn.commit(release, self._consumer.group_metadata())
        self._pending.update(release.offsets)
        offsets = dict(self._pending)
        metadata: dict[TP, str] = {}
        # Records finished beyond the commit point go along as metadata, so a crash does not
        # decide them again; a changed set alone is worth a commit of the same offset.
        for tp, finished in release.finished_beyond.items():
            if not finished and not self._metadata.get(tp):
                continue
            base = offsets.get(tp, self._committed.get(tp, release.heads.get(tp)))
            if base is None:
                continue
            meta = offset_map.encode(base, finished)
            if meta != self._metadata.get(tp, "") or tp in offsets:
                offsets[tp] = base
                metadata[tp] = meta
        if not offsets:
            return True
        try:
            self._consumer.commit(offsets, metadata)
        except KafkaIOError as exc:
            if exc.fenced:
                self._pending.clear()
            _LOG.warning("commit failed (retried with the next one): %s", exc)
            return True
        for tp, offset in offsets.items():
            self._committed[tp] = offset
            self._metadata[tp] = metadata.get(tp, "")
            if self._pending.get(tp) == offset:
                del self._pending[tp]
        return True

    def forget(self, tps: list[TP]) -> None:
        """``tps`` are no longer ours: drop their uncommitted offsets."""
        for tp in tps:
            self._pending.pop(tp, None)
            self._committed.pop(tp, None)
            self._metadata.pop(tp, None)
