"""Self-test of the reliability checker: every violation class is detected, a clean history
reports nothing, and the guarantee decides which findings fail a run."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chaos.checker import MIN_LEAK_CHARS, Violation, check, dead_letter_scores
from chaos.history import (
    DeadLetter,
    DecidedRecord,
    History,
    Position,
    SubmittedRecord,
    VisualizationRecordSeen,
    position_id,
)
from chaos.report import render_markdown, render_table
from schemas.settings import ProcessingGuarantee

POSTS = "p.submissions.posts"
PMS = "p.submissions.private_messages"
BOTH = list(ProcessingGuarantee)


def post(i: int, key: str = "t1", seq: int | None = None) -> SubmittedRecord:
    return SubmittedRecord(f"s{i}", key, i if seq is None else seq, POSTS, 0, i, "post")


def pm(i: int, body: str) -> SubmittedRecord:
    return SubmittedRecord(f"m{i}", "a:b", i, PMS, 1, i, "private_message", private_body=body)


def poison(offset: int) -> SubmittedRecord:
    return SubmittedRecord(
        position_id(Position(POSTS, 2, offset)), "t9", None, POSTS, 2, offset, None
    )


_decision_offsets = iter(range(10**9))


def decided(s: SubmittedRecord, verdict: str = "approved", *reasons: str) -> DecidedRecord:
    return DecidedRecord(
        s.id, s.key, verdict, s.position, "w1", 0, next(_decision_offsets), tuple(reasons)
    )


def dead(s: SubmittedRecord, error_type: str = "invalid_json") -> DeadLetter:
    return DeadLetter(s.key, s.position, error_type, "w1", 0, next(_decision_offsets))


def clean_history() -> History:
    """Posts decided in order, a PM, a poison record in the DLQ, a policy failure with both
    its DLQ record and its failed decision, and a visualization record with ids only."""
    posts = [post(i) for i in range(5)]
    message = pm(0, "a private body that is long enough to index")
    bad = poison(7)
    failing = post(5)
    submitted = (*posts, message, bad, failing)
    decisions = (
        *(decided(s) for s in posts),
        decided(message),
        decided(failing, "failed", "policy failed after 5 attempt(s): PolicyError"),
    )
    dlq = (dead(bad), dead(failing, "policy_error"))
    view = json.dumps({"type": "key_queue", "queue": "users_a:b", "pending": 0})
    return History(
        submitted=submitted,
        decided=decisions,
        dead_letters=dlq,
        visualization=(VisualizationRecordSeen("users_a:b", 0, view),),
        stored=frozenset(s.position for s in submitted),
    )


@pytest.mark.parametrize("guarantee", BOTH)
def test_clean_history_reports_nothing(guarantee: ProcessingGuarantee) -> None:
    report = check(clean_history(), guarantee)
    assert report.ok
    assert all(n == 0 for n in report.counts.values()), report.counts
    assert set(report.counts) == set(Violation)
    assert (report.submitted, report.valid, report.decided) == (8, 7, 7)
    assert (report.decisions_total, report.dead_letters_total) == (7, 2)


def with_(history: History, **changes: object) -> History:
    return dataclasses.replace(history, **changes)  # type: ignore[arg-type]


def test_lost_record_is_counted() -> None:
    h = clean_history()
    missing = h.submitted[2].position
    report = check(with_(h, stored=h.stored - {missing}), "at_least_once")  # type: ignore[operator]
    assert report.count(Violation.LOST) == 1
    assert report.examples[Violation.LOST] == ("s2",)
    assert not report.ok


def test_lost_is_not_reported_when_topics_were_not_read_back() -> None:
    report = check(with_(clean_history(), stored=None), "exactly_once")
    assert report.count(Violation.LOST) == 0


def test_undecided_record_is_unresolved() -> None:
    h = clean_history()
    report = check(with_(h, decided=h.decided[1:]), "at_least_once")
    assert report.count(Violation.UNRESOLVED) == 1
    assert report.examples[Violation.UNRESOLVED] == ("s0",)


def test_poison_record_without_dead_letter_is_unresolved() -> None:
    h = clean_history()
    report = check(with_(h, dead_letters=h.dead_letters[1:]), "at_least_once")
    assert report.count(Violation.UNRESOLVED) == 1
    assert report.examples[Violation.UNRESOLVED] == (position_id(Position(POSTS, 2, 7)),)


def test_duplicates_fail_exactly_once_but_not_at_least_once() -> None:
    h = clean_history()
    again = decided(h.submitted[1])
    history = with_(h, decided=(*h.decided, again, decided(h.submitted[1])))
    at_least = check(history, "at_least_once")
    exactly = check(history, "exactly_once")
    assert at_least.count(Violation.DUPLICATE_DECISIONS) == 2
    assert exactly.count(Violation.DUPLICATE_DECISIONS) == 2
    assert at_least.ok
    assert exactly.failures == {Violation.DUPLICATE_DECISIONS: 2}


def test_duplicate_dead_letters_are_counted() -> None:
    h = clean_history()
    history = with_(h, dead_letters=(*h.dead_letters, dead(h.submitted[6])))
    assert check(history, "at_least_once").ok
    report = check(history, "exactly_once")
    assert report.failures == {Violation.DUPLICATE_DEAD_LETTERS: 1}


def test_order_violation_per_key() -> None:
    h = clean_history()
    d = list(h.decided)
    d[1], d[3] = d[3], d[1]  # s3 decided before s1 and s2
    d = [dataclasses.replace(x, offset=i) for i, x in enumerate(d)]
    report = check(with_(h, decided=tuple(d)), "exactly_once")
    assert report.count(Violation.ORDER) == 2  # s1 and s2 both come after s3
    assert report.examples[Violation.ORDER] == ("t1:s2", "t1:s1")


def test_at_least_once_redelivery_in_order_is_not_an_order_violation() -> None:
    h = clean_history()
    posts = h.submitted[:5]
    replay = tuple(decided(s) for s in posts[2:])  # s2..s4 again after a crash
    report = check(with_(h, decided=(*h.decided, *replay)), "at_least_once")
    assert report.count(Violation.ORDER) == 0
    assert report.count(Violation.DUPLICATE_DECISIONS) == 3
    assert report.ok


def test_order_uses_seq_not_offsets_when_every_record_has_one() -> None:
    a, b = post(0, seq=1), post(1, seq=0)  # published out of seq order
    history = History(submitted=(a, b), decided=(decided(a), decided(b)), dead_letters=())
    assert check(history, "at_least_once").count(Violation.ORDER) == 1


def test_keys_are_independent() -> None:
    a, b = post(0, key="t1"), post(1, key="t2", seq=0)
    history = History(submitted=(a, b), decided=(decided(b), decided(a)), dead_letters=())
    assert check(history, "exactly_once").ok


def test_decision_for_a_record_never_submitted() -> None:
    h = clean_history()
    ghost = decided(post(99))
    report = check(with_(h, decided=(*h.decided, ghost)), "at_least_once")
    assert report.failures == {Violation.PHANTOM_DECISIONS: 1}
    assert report.examples[Violation.PHANTOM_DECISIONS] == ("s99",)


def test_dead_letter_for_a_record_never_submitted() -> None:
    h = clean_history()
    report = check(with_(h, dead_letters=(*h.dead_letters, dead(poison(50)))), "at_least_once")
    assert report.failures == {Violation.PHANTOM_DEAD_LETTERS: 1}


def test_private_body_leaking_into_visualization_is_found() -> None:
    h = clean_history()
    body = "a private body that is long enough to index"
    leaky = json.dumps({"type": "key_queue", "queue": "users_a:b", "note": f"x{body}y"})
    view = VisualizationRecordSeen("users_a:b", 3, leaky)
    report = check(with_(h, visualization=(*h.visualization, view)), "at_least_once")
    assert report.failures == {Violation.PRIVATE_BODY_LEAKS: 1}
    assert report.leaks[0].where == "visualization"
    assert report.leaks[0].offset == 3
    assert report.leaks[0].submission_id == "m0"


def test_private_body_with_json_escapes_is_found() -> None:
    body = 'she said "meet me" at the usual place'
    message = pm(0, body)
    view = VisualizationRecordSeen("users_a:b", 0, json.dumps({"oops": body}))
    history = History((message,), (decided(message),), (), visualization=(view,))
    assert check(history, "at_least_once").count(Violation.PRIVATE_BODY_LEAKS) == 1


def test_private_body_in_a_decision_reason_is_found() -> None:
    h = clean_history()
    message = h.submitted[5]
    body = message.private_body
    assert body is not None
    report = check(
        with_(h, decided=(*h.decided[:5], decided(message, "rejected", body), h.decided[6])),
        "at_least_once",
    )
    assert report.failures == {Violation.PRIVATE_BODY_LEAKS: 1}
    assert report.leaks[0].where == "decision"


def test_short_bodies_are_not_matched_by_chance() -> None:
    message = pm(0, "ok")
    view = VisualizationRecordSeen("users_a:b", 0, '{"verdicts": {"ok": 1}}')
    history = History((message,), (decided(message),), (), visualization=(view,))
    assert len("ok") < MIN_LEAK_CHARS
    assert check(history, "exactly_once").ok


def test_failed_decision_without_dead_letter() -> None:
    h = clean_history()
    report = check(with_(h, dead_letters=h.dead_letters[:1]), "at_least_once")
    assert report.failures == {Violation.FAILED_WITHOUT_DEAD_LETTER: 1}
    assert report.examples[Violation.FAILED_WITHOUT_DEAD_LETTER] == ("s5",)


def test_policy_dead_letter_without_failed_decision() -> None:
    h = clean_history()
    failing = h.submitted[7]
    approved = decided(failing)  # decided normally, yet dead-lettered as a policy error
    report = check(with_(h, decided=(*h.decided[:6], approved)), "at_least_once")
    assert report.failures == {Violation.POLICY_DEAD_LETTER_WITHOUT_FAILED: 1}


def test_dead_letter_scores() -> None:
    h = clean_history()
    expected = [h.submitted[6].position, h.submitted[7].position]
    perfect = dead_letter_scores(h, expected)
    assert (perfect.precision, perfect.recall) == (1.0, 1.0)
    partial = dead_letter_scores(h, [h.submitted[6].position, h.submitted[0].position])
    assert (partial.true_positives, partial.false_positives, partial.false_negatives) == (1, 1, 1)
    assert partial.precision == 0.5
    assert partial.recall == 0.5


def test_reports_render_every_class() -> None:
    h = clean_history()
    report = check(with_(h, decided=h.decided[1:]), "exactly_once")
    markdown = render_markdown(report, title="unit")
    assert "| unresolved | 1 | FAIL | s0 |" in markdown
    assert all(v.value in markdown for v in Violation)
    table = render_table(report, title="unit")
    assert table.row_count == len(Violation)
