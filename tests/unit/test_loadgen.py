"""The load generator is deterministic, Zipf-skewed, sequenced per key, and breaks on request."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest

from schemas.codec import decode_submission, encode
from schemas.errors import ContractError
from schemas.queues import pair_key
from schemas.submissions import PrivateMessageSubmission, SubmissionKind
from streams.loadgen import (
    BadRecord,
    Defect,
    LoadGenerator,
    LoadProfile,
    ZipfChooser,
    parse_mix,
    records_due,
    text_body,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _wire(record: object) -> bytes:
    return record.value if isinstance(record, BadRecord) else encode(record)  # type: ignore[arg-type]


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    profile = LoadProfile(run_id="r1", seed=42, bad_fraction=0.1)
    first = [_wire(r) for r in LoadGenerator(profile).take(400, NOW)]
    again = [_wire(r) for r in LoadGenerator(profile).take(400, NOW)]
    other = [_wire(r) for r in LoadGenerator(LoadProfile(run_id="r1", seed=43)).take(400, NOW)]
    assert first == again
    assert first != other


def test_every_valid_record_carries_its_keys_next_seq() -> None:
    gen = LoadGenerator(LoadProfile(run_id="seq", topics=5, user_pairs=5, bad_fraction=0.2))
    seen: dict[str, list[int]] = defaultdict(list)
    for record in gen.take(2000, NOW):
        if isinstance(record, BadRecord):
            continue
        assert record.seq is not None
        seen[record.key].append(record.seq)
        assert record.key.startswith("seq.")  # the run id keeps runs apart downstream
    assert len(seen) > 5
    for key, seqs in seen.items():
        assert seqs == list(range(len(seqs))), key
    assert gen.sequences == {key: len(seqs) for key, seqs in seen.items()}


def test_zipf_chooser_skews_towards_low_ranks_as_the_law_says() -> None:
    chooser = ZipfChooser(50, 1.1)
    assert sum(chooser.probability(r) for r in range(50)) == pytest.approx(1.0)
    rng = random.Random(5)
    draws = Counter(chooser.choose(rng) for _ in range(40_000))
    assert set(draws) <= set(range(50))
    for rank in (0, 1, 5, 20):
        assert draws[rank] / 40_000 == pytest.approx(chooser.probability(rank), abs=0.01)
    assert draws[0] > draws[1] > draws[5] > draws[20]


def test_zipf_exponent_zero_is_uniform_and_bad_arguments_are_refused() -> None:
    chooser = ZipfChooser(4, 0.0)
    assert [chooser.probability(r) for r in range(4)] == pytest.approx([0.25] * 4)
    with pytest.raises(ValueError, match="n:"):
        ZipfChooser(0, 1.0)
    with pytest.raises(ValueError, match="s:"):
        ZipfChooser(3, -1.0)


def test_hot_keys_get_most_posts() -> None:
    profile = LoadProfile(run_id="hot", mix={SubmissionKind.POST: 1.0}, topics=100, zipf_s=1.2)
    keys = Counter(r.key for r in LoadGenerator(profile).take(5000, NOW))
    top_five = sum(count for _, count in keys.most_common(5))
    assert top_five > 0.4 * 5000  # uniform would give 5%
    assert keys.most_common(1)[0][0] == "hot.t0"


def test_mix_weights_set_the_share_of_each_kind() -> None:
    mix = {SubmissionKind.TOPIC: 1.0, SubmissionKind.POST: 6.0, SubmissionKind.PRIVATE_MESSAGE: 3.0}
    kinds = Counter(r.kind for r in LoadGenerator(LoadProfile(mix=mix)).take(10_000, NOW))
    assert kinds["topic"] / 10_000 == pytest.approx(0.1, abs=0.02)
    assert kinds["post"] / 10_000 == pytest.approx(0.6, abs=0.02)
    assert kinds["private_message"] / 10_000 == pytest.approx(0.3, abs=0.02)
    only_posts = LoadGenerator(LoadProfile(mix={SubmissionKind.POST: 1.0})).take(200, NOW)
    assert {r.kind for r in only_posts} == {"post"}


def test_private_messages_go_both_ways_under_one_sorted_key() -> None:
    profile = LoadProfile(run_id="pm", mix={SubmissionKind.PRIVATE_MESSAGE: 1.0}, user_pairs=1)
    records = LoadGenerator(profile).take(200, NOW)
    assert all(isinstance(r, PrivateMessageSubmission) for r in records)
    senders = {r.sender_id for r in records if isinstance(r, PrivateMessageSubmission)}
    assert senders == {"pm.u0", "pm.u1"}
    assert {r.key for r in records} == {pair_key("pm.u0", "pm.u1")}


def test_valid_records_survive_the_wire_and_bodies_have_the_asked_size() -> None:
    profile = LoadProfile(body_bytes=500, mix={SubmissionKind.POST: 1.0})
    for record in LoadGenerator(profile).take(300, NOW):
        assert not isinstance(record, BadRecord)
        assert decode_submission(encode(record)) == record
        assert 250 <= len(record.body) <= 750
        assert record.submitted_at == NOW


def test_bad_records_come_at_the_asked_fraction_in_every_class_and_fail_on_their_field() -> None:
    records = LoadGenerator(LoadProfile(bad_fraction=0.25, seed=9)).take(4000, NOW)
    bad = [r for r in records if isinstance(r, BadRecord)]
    assert len(bad) / 4000 == pytest.approx(0.25, abs=0.03)
    assert {r.defect for r in bad} == set(Defect)
    for record in bad:
        with pytest.raises(ContractError) as caught:
            decode_submission(record.value)
        assert caught.value.field == record.field, record.defect
    self_messages = [r for r in bad if r.defect is Defect.SELF_MESSAGE]
    assert all(r.kind is SubmissionKind.PRIVATE_MESSAGE for r in self_messages)


def test_no_bad_records_unless_asked() -> None:
    records = LoadGenerator(LoadProfile()).take(2000, NOW)
    assert not any(isinstance(r, BadRecord) for r in records)


def test_text_body_is_deterministic_and_exactly_sized() -> None:
    for size in (1, 2, 7, 500, 4096):
        body = text_body(size, seed=3)
        assert len(body) == size
        assert body == text_body(size, seed=3)
        assert body.strip()


def test_parse_mix_reads_weights_and_names_a_bad_part() -> None:
    assert parse_mix("topic=1, post=6,private_message=3") == {
        SubmissionKind.TOPIC: 1.0,
        SubmissionKind.POST: 6.0,
        SubmissionKind.PRIVATE_MESSAGE: 3.0,
    }
    assert parse_mix("post") == {SubmissionKind.POST: 1.0}
    with pytest.raises(ValueError, match="'reply=2'"):
        parse_mix("post=1,reply=2")
    with pytest.raises(ValueError, match="'post=x'"):
        parse_mix("post=x")
    with pytest.raises(ValueError, match="empty"):
        parse_mix(" , ")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"run_id": "has space"}, "run_id"),
        ({"run_id": ""}, "run_id"),
        ({"mix": {SubmissionKind.POST: 0.0}}, "mix"),
        ({"mix": {SubmissionKind.POST: -1.0}}, "mix"),
        ({"topics": 0}, "topics"),
        ({"body_bytes": 0}, "body_bytes"),
        ({"body_bytes": 70_000}, "body_bytes"),
        ({"bad_fraction": 1.5}, "bad_fraction"),
    ],
)
def test_profile_refuses_bad_settings_naming_them(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        LoadProfile(**changes)  # type: ignore[arg-type]


def test_records_due_paces_a_rate_and_unpaced_is_unlimited() -> None:
    assert records_due(0.0, 100.0) == 1
    assert records_due(1.0, 100.0) == 101
    assert records_due(0.5, 10.0) == 6
    assert records_due(10.0, 0.0) > 10**12
