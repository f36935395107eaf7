"""One record in, the messages to publish out: decode, moderate with retries, decide or DLQ.

Contract (ARCHITECTURE.md #3): every record ends as a decision, or as a DLQ record; a policy
failure after every retry gives both a DLQ record (original bytes unchanged) and a ``failed``
decision. Invalid input (not JSON, not UTF-8, oversize, contract violations) goes straight to
the DLQ with its reason. Retries happen in place, so the key's later records wait (order kept).

Nothing here touches Kafka; ``now`` comes from the caller's clock function.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from schemas.codec import decode_submission, encode
from schemas.decisions import SourcePosition, Verdict, build_decision, encode_decision
from schemas.dlq import dead_letter_context
from schemas.errors import ContractError
from schemas.submissions import (
    PostSubmission,
    PrivateMessageSubmission,
    Submission,
    SubmissionKind,
    TopicSubmission,
)
from schemas.topics import TopicNames
from schemas.trusted import construct
from streams.kafka_io import Record
from streams.moderation import ModerationInput, Policy, PolicyError, PolicyResult, PolicyVerdict

_LOG = logging.getLogger("modq.worker")
_VERDICT_OF = {verdict: Verdict(verdict.value) for verdict in PolicyVerdict}
"""The decision's verdict for each policy verdict (a dict lookup, not ``Enum.__call__``)."""


class OutMessage(NamedTuple):
    """A message to publish: topic, key, value and headers (a named tuple, like
    :class:`streams.flow.Work`: built once per record)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Outcome(NamedTuple):
    """What processing one record produced, plus facts for metrics (never content)."""

    messages: tuple[OutMessage, ...]
    verdict: Verdict | None
    dead_lettered: bool
    attempts: int
    submitted_at: datetime | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """In-place retries: ``max_attempts`` tries, back-off doubling from ``backoff_seconds``."""

    max_attempts: int
    backoff_seconds: float
    max_backoff_seconds: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.backoff_seconds * (2 ** (attempt - 1)), self.max_backoff_seconds))


def moderation_input(submission: Submission) -> ModerationInput:
    """What the policy sees of ``submission``.

    Built with :func:`schemas.trusted.construct`: every value comes from a submission the
    contract already validated, so validating again would only cost time on the hot path."""
    if isinstance(submission, PostSubmission):  # the most common kind first
        kind, author, title = SubmissionKind.POST, submission.author_id, None
    elif isinstance(submission, TopicSubmission):
        kind, author, title = SubmissionKind.TOPIC, submission.author_id, submission.title
    else:
        assert isinstance(submission, PrivateMessageSubmission)
        kind, author, title = SubmissionKind.PRIVATE_MESSAGE, submission.sender_id, None
    return construct(
        ModerationInput,
        {
            "submission_id": submission.id,
            "kind": kind,
            "author_id": author,
            "title": title,
            "body": submission.body,
            "submitted_at": submission.submitted_at,
        },
    )


class RecordProcessor:
    """Turns records into outcomes with one policy; safe to call concurrently for many keys."""

    def __init__(
        self,
        *,
        policy: Policy,
        topics: TopicNames,
        worker_id: str,
        retry: RetryPolicy,
        max_record_bytes: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._policy = policy
        self._topics = topics
        self._worker_id = worker_id
        self._retry = retry
        self._max_bytes = max_record_bytes
        self._clock = clock
        self._kinds: dict[str, str | None] = {}

    def _kind_of_topic(self, topic: str) -> str | None:
        if topic not in self._kinds:
            self._kinds[topic] = self._topics.kind_of_topic(topic)
        return self._kinds[topic]

    async def process(self, record: Record) -> Outcome:
        """Moderate ``record``; never raises for bad input or policy failures."""
        try:
            submission = decode_submission(record.value, max_bytes=self._max_bytes)
        except ContractError as error:
            return self._dead_letter(record, error, attempts=1, submission=None)
        if self._kind_of_topic(record.topic) not in (None, submission.kind):
            misplaced = ContractError(
                "kind", f"{submission.kind!r} submissions do not belong on {record.topic}"
            )
            return self._dead_letter(record, misplaced, attempts=1, submission=None)
        item = moderation_input(submission)
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self._policy.moderate(item, self._clock())
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retryable = not isinstance(exc, PolicyError) or exc.retryable
                if not retryable or attempt >= self._retry.max_attempts:
                    _LOG.warning(
                        "policy failed on %s after %d attempt(s): %s",
                        submission.id,
                        attempt,
                        type(exc).__name__,
                    )
                    return self._dead_letter(record, exc, attempt, submission)
                await asyncio.sleep(self._retry.delay(attempt))  # back-off, holding the key
        return self._decided(record, submission, result, attempt)

    def _decided(
        self, record: Record, submission: Submission, result: PolicyResult, attempts: int
    ) -> Outcome:
        verdict = _VERDICT_OF[result.verdict]
        value = encode_decision(
            submission,
            verdict=verdict,
            reasons=result.reasons,
            decided_at=self._clock(),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            worker_id=self._worker_id,
        )
        message = OutMessage(self._topics.decisions, submission.key.encode(), value)
        return Outcome((message,), verdict, False, attempts, submission.submitted_at)

    def _dead_letter(
        self,
        record: Record,
        error: Exception,
        attempts: int,
        submission: Submission | None,
    ) -> Outcome:
        now = self._clock()
        # The broker's own coordinates: valid by construction, so not validated again.
        source = construct(
            SourcePosition,
            {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        context = dead_letter_context(
            error, source=source, worker_id=self._worker_id, failed_at=now, attempts=attempts
        )
        dlq = OutMessage(self._topics.dlq, record.key, record.value, tuple(context.to_headers()))
        if submission is None:
            return Outcome((dlq,), None, True, attempts, None)
        failed = build_decision(
            submission,
            verdict=Verdict.FAILED,
            reasons=(f"policy failed after {attempts} attempt(s): {type(error).__name__}",),
            decided_at=now,
            source=source,
            worker_id=self._worker_id,
        )
        decision = OutMessage(self._topics.decisions, submission.key.encode(), encode(failed))
        # DLQ first: a `failed` decision always has its dead letter already published.
        return Outcome((dlq, decision), Verdict.FAILED, True, attempts, submission.submitted_at)
