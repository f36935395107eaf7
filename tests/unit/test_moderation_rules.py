"""RuleBasedPolicy, its text helpers and its bounded flood memory."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from streams.moderation import (
    FloodTracker,
    ModerationInput,
    PolicyResult,
    PolicyVerdict,
    RuleBasedPolicy,
    RulesConfig,
)
from streams.moderation.text import (
    capital_ratio,
    case_counts,
    count_links,
    is_blank,
    nfkc_casefold,
    normalise_for_match,
    strip_invisible,
    words,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
APPROVED, REVIEW, REJECTED = (
    PolicyVerdict.APPROVED,
    PolicyVerdict.NEEDS_REVIEW,
    PolicyVerdict.REJECTED,
)
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


def item(
    body: str = "hello there",
    *,
    sid: str = "s1",
    kind: str = "post",
    author: str = "u1",
    title: str | None = None,
    at: datetime = T0,
) -> ModerationInput:
    return ModerationInput.model_validate(
        {
            "submission_id": sid,
            "kind": kind,
            "author_id": author,
            "title": title,
            "body": body,
            "submitted_at": at,
        }
    )


def policy(**options: object) -> RuleBasedPolicy:
    return RuleBasedPolicy({"banned_terms": ("spam", "ass", "buy now"), **options})


def judge(p: RuleBasedPolicy, it: ModerationInput, now: datetime | None = None) -> PolicyResult:
    return p.evaluate(it, now or it.submitted_at)


# --- text helpers ---------------------------------------------------------------------------------


def test_text_helpers() -> None:
    assert strip_invisible("s\u200bp\u200ca\u200dm\u2060\ufeff\u00ad") == "spam"
    assert nfkc_casefold("ＳＰＡＭ") == "spam"
    assert nfkc_casefold("Straße") == "strasse"
    assert nfkc_casefold("ﬁsh") == "fish"
    assert normalise_for_match("Ｓ\u200bＰＡＭ") == "spam"
    assert words("hello, wörld! a_b 42") == ["hello", "wörld", "a_b", "42"]
    assert is_blank(" \t\n\u3000\u200b\ufeff")
    assert not is_blank(" x ")
    assert case_counts("ABc 12 日本") == (2, 1)
    assert case_counts("ＡＢ") == (2, 0)
    assert capital_ratio("") == 0.0
    assert capital_ratio("ABcd") == 0.5


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ("no links here", 0),
        ("see http://a.example", 1),
        ("see https://www.a.example/x?y=1", 1),
        ("www.a.example and WWW.B.EXAMPLE", 2),
        ("ｈｔｔｐｓ://a.example ｗｗｗ．b.example", 2),
        ("HTTP://A http://b https://c www.d", 4),
        ("awww.example x.www.example", 0),
        ("(http://a.example)", 1),
    ],
)
def test_count_links(text: str, links: int) -> None:
    assert count_links(text) == links


# --- banned and review terms ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "this is spam",
        "SPAM!",
        "Spam, spam and eggs",
        "ＳＰＡＭ",  # full-width
        "ｓｐａｍ here",
        *(f"s{zw}pam" for zw in ZERO_WIDTH),
        "s\u200b\u200cp\u2060a\ufeffm",
        "s\u00adpam",  # soft hyphen
        "(spam)",
        "you ass.",
        "buy now!",
        "BUY-NOW",
        "buy\n\tnow",
    ],
)
def test_banned_terms_are_caught(body: str) -> None:
    result = judge(policy(), item(body))
    assert result.verdict is REJECTED
    assert any(r.startswith("banned term: ") for r in result.reasons)


@pytest.mark.parametrize(
    "body",
    ["first class", "assessment", "passage", "spammer", "antispam", "spam_bot", "buy nowhere"],
)
def test_banned_terms_match_whole_words_only(body: str) -> None:
    assert judge(policy(), item(body)) == PolicyResult(verdict=APPROVED)


def test_compatibility_characters_in_terms_and_text() -> None:
    p = RuleBasedPolicy(banned_terms=("fish",))
    assert judge(p, item("a ﬁsh")).reasons == ("banned term: fish",)  # ligature fi
    p = RuleBasedPolicy(banned_terms=("ＳＰＡＭ",))  # configured full-width, reported as written
    assert judge(p, item("spam")).reasons == ("banned term: ＳＰＡＭ",)


def test_each_term_reported_once_in_config_order() -> None:
    result = judge(policy(), item("buy now: spam spam ass spam"))
    assert result.reasons == ("banned term: spam", "banned term: ass", "banned term: buy now")


def test_review_terms() -> None:
    p = policy(needs_review_terms=("crypto", "free money"))
    result = judge(p, item("Get FREE money with Crypto"))
    assert result.verdict is REVIEW
    assert result.reasons == ("review term: crypto", "review term: free money")


def test_topic_title_is_checked() -> None:
    result = judge(policy(), item("a fine body", kind="topic", title="SPAM inside"))
    assert result.reasons == ("banned term: spam",)


# --- links ----------------------------------------------------------------------------------------


def links(n: int) -> str:
    return " ".join(f"https://site{i}.example/page" for i in range(n))


def test_links_within_limit_are_fine() -> None:
    assert judge(policy(), item(links(3))).verdict is APPROVED


def test_too_many_links_needs_review() -> None:
    result = judge(policy(), item(links(4)))
    assert result == PolicyResult(verdict=REVIEW, reasons=("4 links (max 3)",))
    assert judge(policy(), item(links(6))).verdict is REVIEW


def test_far_too_many_links_is_rejected() -> None:
    assert judge(policy(), item(links(7))) == PolicyResult(
        verdict=REJECTED, reasons=("7 links (max 3)",)
    )


def test_no_links_allowed() -> None:
    assert judge(policy(max_links=0), item("www.a.example")).reasons == ("1 link (max 0)",)


# --- shouting -------------------------------------------------------------------------------------


def test_shouting_needs_review() -> None:
    body = "THIS IS ABSOLUTELY OUTRAGEOUS, FIX IT NOW"
    result = judge(policy(), item(body))
    assert result == PolicyResult(verdict=REVIEW, reasons=("shouting: 100% capitals",))
    mixed = "THIS IS ABSOLUTELY OUTRAGEOUS fix it"
    assert judge(policy(), item(mixed)).reasons == ("shouting: 84% capitals",)  # 26/31
    calm = "THIS IS ABSOLUTELY OUTRAGEOUS fix it now please"  # 26/40
    assert judge(policy(), item(calm)).verdict is APPROVED


def test_links_do_not_count_as_letters_for_shouting() -> None:
    loud = "STOP POSTING THIS NONSENSE " + links(2)
    assert judge(policy(), item(loud)).reasons == ("shouting: 100% capitals",)
    quiet = "ok " + "HTTPS://WWW.EXAMPLE.COM/ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert judge(policy(), item(quiet)).verdict is APPROVED


def test_shouting_needs_enough_letters() -> None:
    assert judge(policy(), item("OK THANKS!!! 123")).verdict is APPROVED  # 8 letters < 20
    assert judge(policy(shouting_min_letters=5), item("OK THANKS!!!")).verdict is REVIEW


def test_shouting_ratio_is_strict() -> None:
    body = "A" * 14 + "a" * 6  # exactly 0.7
    assert judge(policy(), item(body)).verdict is APPROVED
    assert judge(policy(), item("A" * 15 + "a" * 5)).reasons == ("shouting: 75% capitals",)


def test_shouting_counts_full_width_capitals() -> None:
    assert judge(policy(), item("Ｈ" * 20)).reasons == ("shouting: 100% capitals",)


def test_caseless_scripts_do_not_shout() -> None:
    assert judge(policy(), item("日本語のテキスト" * 10)).verdict is APPROVED


# --- empty and oversize ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["", " ", "\n\t", "\u3000", "\u200b\u200d\ufeff", " \u2060 "])
@pytest.mark.parametrize("kind", ["post", "private_message"])
def test_blank_body_is_rejected(body: str, kind: str) -> None:
    result = judge(policy(), item(body, kind=kind))
    assert result == PolicyResult(verdict=REJECTED, reasons=("empty body",))


def test_topic_needs_a_title_but_not_a_body() -> None:
    assert judge(policy(), item("", kind="topic", title="A question")).verdict is APPROVED
    blank = item("body", kind="topic", title=" \u200b ")
    assert judge(policy(), blank).reasons == ("empty title",)
    assert judge(policy(), item("body", kind="topic")).reasons == ("empty title",)


def test_oversize_is_rejected() -> None:
    assert judge(policy(), item("a" * 65_536)).verdict is APPROVED
    result = judge(policy(), item("a" * 65_537))
    assert result == PolicyResult(
        verdict=REJECTED, reasons=("body too long: 65537 chars (max 65536)",)
    )
    title = item("b", kind="topic", title="t" * 301)
    assert judge(policy(), title).reasons == ("title too long: 301 chars (max 300)",)
    assert judge(policy(max_body_chars=10), item("x" * 11)).verdict is REJECTED


# --- strongest verdict wins -----------------------------------------------------------------------


def test_all_reasons_listed_and_strongest_wins() -> None:
    body = "BUY CHEAP SPAM TODAY RIGHT HERE " + links(5)
    result = judge(policy(needs_review_terms=("cheap",)), item(body))
    assert result.verdict is REJECTED
    assert result.reasons == (
        "banned term: spam",
        "review term: cheap",
        "5 links (max 3)",
        "shouting: 100% capitals",
    )
    only_review = judge(policy(), item(links(4) + " AND THIS IS VERY LOUD TEXT"))
    assert only_review.verdict is REVIEW
    assert len(only_review.reasons) == 2


# --- repeated-text flood --------------------------------------------------------------------------


def test_flood_rejects_beyond_max_repeats_within_window() -> None:
    p = policy()
    verdicts = [
        judge(p, item("Same message", sid=f"s{i}", at=T0 + timedelta(seconds=10 * i)))
        for i in range(5)
    ]
    assert [v.verdict for v in verdicts] == [APPROVED, APPROVED, APPROVED, REJECTED, REJECTED]
    assert verdicts[3].reasons == ("repeated text: 4 times in 60s (max 3)",)


def test_flood_window_expires() -> None:
    p = policy()
    for i in range(3):
        assert judge(p, item("again", sid=f"a{i}", at=T0 + timedelta(seconds=i))).verdict is (
            APPROVED
        )
    # 60 s after the first: only two of the three are still inside the window
    late = item("again", sid="a3", at=T0 + timedelta(seconds=60))
    assert judge(p, late).verdict is APPROVED
    burst = item("again", sid="a4", at=T0 + timedelta(seconds=60.5))
    assert judge(p, burst).verdict is REJECTED  # a1, a2, a3, a4 within 60 s
    much_later = item("again", sid="a5", at=T0 + timedelta(hours=1))
    assert judge(p, much_later).verdict is APPROVED


def test_flood_is_per_author_and_per_text() -> None:
    p = policy(flood_max_repeats=1)
    assert judge(p, item("hi", sid="1", author="alice")).verdict is APPROVED
    assert judge(p, item("hi", sid="2", author="bob")).verdict is APPROVED
    assert judge(p, item("hello", sid="3", author="alice")).verdict is APPROVED
    assert judge(p, item("hi", sid="4", author="alice")).verdict is REJECTED


def test_flood_compares_normalised_text() -> None:
    p = policy(flood_max_repeats=1)
    assert judge(p, item("Hello  World", sid="1")).verdict is APPROVED
    result = judge(p, item(" ｈｅｌｌｏ\u200b\nworld ", sid="2"))
    assert result.verdict is REJECTED


def test_flood_counts_across_kinds_but_topics_include_titles() -> None:
    p = policy(flood_max_repeats=1)
    assert judge(p, item("promo text", sid="1", kind="post")).verdict is APPROVED
    assert judge(p, item("promo text", sid="2", kind="private_message")).verdict is REJECTED
    topic = item("promo text", sid="3", kind="topic", title="Title")
    assert judge(p, topic).verdict is APPROVED


def test_redelivery_is_not_a_repeat() -> None:
    p = policy(flood_max_repeats=1)
    first = item("once", sid="same")
    assert judge(p, first).verdict is APPROVED
    assert judge(p, first).verdict is APPROVED
    assert judge(p, first, T0 + timedelta(seconds=30)).verdict is APPROVED


def test_flood_uses_submission_time_clamped_to_now() -> None:
    p = policy(flood_max_repeats=1)
    # processed long after submission: the window is about submitted_at, not processing time
    assert judge(p, item("x", sid="1", at=T0), T0 + timedelta(hours=2)).verdict is APPROVED
    second = item("x", sid="2", at=T0 + timedelta(seconds=5))
    assert judge(p, second, T0 + timedelta(hours=3)).verdict is REJECTED
    # a submission stamped in the future counts as submitted now
    q = policy(flood_max_repeats=1)
    future = item("y", sid="1", at=T0 + timedelta(days=1))
    assert judge(q, future, T0).verdict is APPROVED
    assert judge(q, item("y", sid="2", at=T0), T0).verdict is REJECTED


def test_out_of_order_neighbours_still_count() -> None:
    p = policy(flood_max_repeats=1)
    assert judge(p, item("z", sid="1", at=T0 + timedelta(seconds=30))).verdict is APPROVED
    assert judge(p, item("z", sid="2", at=T0)).verdict is REJECTED


def test_flood_can_be_disabled() -> None:
    p = policy(flood_window_seconds=0, flood_max_repeats=1)
    for i in range(5):
        assert judge(p, item("dup", sid=str(i))).verdict is APPROVED
    assert len(p.flood) == 0


def test_empty_text_is_not_remembered() -> None:
    p = policy()
    judge(p, item(" ", sid="1"))
    assert len(p.flood) == 0


def test_flood_memory_is_bounded_by_authors() -> None:
    p = policy(flood_max_authors=3, flood_max_repeats=1)
    for i in range(10):
        judge(p, item("hi", sid=f"s{i}", author=f"user{i}"))
        assert len(p.flood) <= 3
    assert len(p.flood) == 3
    assert "user0" not in p.flood
    assert "user9" in p.flood
    # user0 was evicted, so its repeat is not recognised (best effort by design)
    assert judge(p, item("hi", sid="again", author="user0")).verdict is APPROVED


def test_flood_eviction_is_least_recently_seen() -> None:
    tracker = FloodTracker(max_authors=2, max_entries_per_author=4)
    tracker.observe("a", "t", "1", 0.0, 60.0)
    tracker.observe("b", "t", "2", 1.0, 60.0)
    tracker.observe("a", "t", "3", 2.0, 60.0)  # touches a
    tracker.observe("c", "t", "4", 3.0, 60.0)  # evicts b
    assert "a" in tracker
    assert "b" not in tracker
    assert "c" in tracker


def test_flood_memory_is_bounded_per_author() -> None:
    tracker = FloodTracker(max_authors=10, max_entries_per_author=4)
    for i in range(100):
        tracker.observe("a", f"text {i}", f"s{i}", float(i) / 100, 60.0)
        assert tracker.entries_for("a") <= 4
    assert tracker.entries_for("a") == 4
    assert tracker.entries_for("nobody") == 0


def test_flood_prunes_expired_entries() -> None:
    tracker = FloodTracker()
    for i in range(3):
        tracker.observe("a", f"t{i}", f"s{i}", float(i), 10.0)
    tracker.observe("a", "t", "late", 100.0, 10.0)
    assert tracker.entries_for("a") == 1
    tracker.clear()
    assert len(tracker) == 0


def test_shared_tracker_is_used() -> None:
    tracker = FloodTracker()
    p1 = RuleBasedPolicy(RulesConfig(flood_max_repeats=1), flood=tracker)
    p2 = RuleBasedPolicy(RulesConfig(flood_max_repeats=1), flood=tracker)
    assert p1.flood is tracker
    assert judge(p1, item("hey", sid="1")).verdict is APPROVED
    assert judge(p2, item("hey", sid="2")).verdict is REJECTED


def test_tracker_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="max_authors"):
        FloodTracker(max_authors=0)
    with pytest.raises(ValueError, match="max_entries_per_author"):
        FloodTracker(max_entries_per_author=0)


# --- private messages: reasons never quote the body -----------------------------------------------

SECRET_WORDS = ("hunter2", "ADDRESS", "birthday", "example", "REPEATING")


def test_private_message_reasons_carry_no_body_text() -> None:
    p = policy(needs_review_terms=("crypto",), flood_max_repeats=1)
    body = "HUNTER2 MY ADDRESS IS SECRET SPAM CRYPTO BIRTHDAY REPEATING " + " ".join(
        f"https://example{i}.example/hunter2" for i in range(8)
    )
    results = [
        judge(p, item(body, sid=f"pm{i}", kind="private_message", author="sender"))
        for i in range(2)
    ]
    reasons = results[1].reasons
    assert results[1].verdict is REJECTED
    assert reasons == (
        "banned term: spam",
        "review term: crypto",
        "8 links (max 3)",
        "shouting: 100% capitals",
        "repeated text: 2 times in 60s (max 1)",
    )
    joined = " ".join(reasons).casefold()
    for secret in (*SECRET_WORDS, "secret", "https"):
        assert secret.casefold() not in joined


# --- configuration --------------------------------------------------------------------------------


def test_config_defaults() -> None:
    cfg = RulesConfig()
    assert cfg.max_links == 3
    assert cfg.shouting_ratio == 0.7
    assert cfg.shouting_min_letters == 20
    assert cfg.flood_window_seconds == 60
    assert cfg.flood_max_repeats == 3
    assert cfg.flood_max_authors == 100_000
    assert cfg.max_body_chars == 65_536
    assert cfg.banned_terms == ()
    assert cfg.flood_history == 8
    assert RulesConfig(flood_max_repeats=10).flood_history == 20
    assert RulesConfig(flood_history_per_author=3).flood_history == 3
    assert cfg.needs_review_terms == ()


def test_config_is_frozen_and_strict() -> None:
    cfg = RulesConfig(banned_terms=(" spam ",))
    assert cfg.banned_terms == ("spam",)
    with pytest.raises(ValidationError):
        cfg.max_links = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="max_linkz"):
        RulesConfig.model_validate({"max_linkz": 5})
    with pytest.raises(ValidationError, match="whole words"):
        RulesConfig(banned_terms=("c++",))
    with pytest.raises(ValidationError, match="whole words"):
        RulesConfig(needs_review_terms=("  ",))
    with pytest.raises(ValidationError, match="flood_history_per_author"):
        RulesConfig(flood_max_repeats=20, flood_history_per_author=5)
    with pytest.raises(ValidationError):
        RulesConfig(shouting_ratio=1.5)


def test_policy_constructor_forms() -> None:
    cfg = RulesConfig(max_links=1)
    assert RuleBasedPolicy(cfg).config is cfg
    assert RuleBasedPolicy({"max_links": 1}).config == cfg
    assert RuleBasedPolicy(max_links=1).config == cfg
    assert RuleBasedPolicy().config == RulesConfig()
    with pytest.raises(TypeError, match="not both"):
        RuleBasedPolicy(cfg, max_links=2)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        policy().evaluate(item(), datetime(2024, 1, 1))


async def test_moderate_is_the_async_entry_point() -> None:
    p = policy()
    result = await p.moderate(item("spam"), T0)
    assert result.reasons == ("banned term: spam",)
    await p.aclose()
    assert len(p.flood) == 0


# --- properties -----------------------------------------------------------------------------------

REASON_RE = re.compile(
    r"^(?:banned term: (?:spam|ass|buy now)"
    r"|review term: crypto"
    r"|\d+ links? \(max 3\)"
    r"|shouting: \d+% capitals"
    r"|repeated text: \d+ times in 60s \(max 3\)"
    r"|empty (?:body|title)"
    r"|(?:body|title) too long: \d+ chars \(max \d+\))$"
)

SHARED_POLICY = RuleBasedPolicy(
    banned_terms=("spam", "ass", "buy now"), needs_review_terms=("crypto",)
)

evasive_text = st.lists(
    st.one_of(
        st.text(st.characters(codec="utf-8"), max_size=20),
        st.sampled_from([*ZERO_WIDTH, "ＳＰＡＭ", "spam", "www.", "https://", "AAAA", " ", "ass"]),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    body=evasive_text,
    title=st.one_of(st.none(), evasive_text),
    kind=st.sampled_from(["topic", "post", "private_message"]),
    author=st.sampled_from(["a", "b"]),
    offset=st.integers(min_value=-(10**6), max_value=10**6),
)
def test_moderate_never_raises_and_reasons_are_well_formed(
    body: str, title: str | None, kind: str, author: str, offset: int
) -> None:
    p = SHARED_POLICY
    it = item(
        body,
        sid=f"h{offset}",
        kind=kind,
        author=author,
        title=title if kind == "topic" else None,
        at=T0 + timedelta(seconds=offset),
    )
    result = p.evaluate(it, T0)
    assert (result.verdict is APPROVED) == (not result.reasons)
    for reason in result.reasons:
        assert REASON_RE.match(reason), reason
    assert len(p.flood) <= p.config.flood_max_authors


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(ZERO_WIDTH), min_size=3, max_size=3),
    wide=st.lists(st.booleans(), min_size=4, max_size=4),
    upper=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_zero_width_and_width_evasion_property(
    pieces: list[str], wide: list[bool], upper: list[bool]
) -> None:
    letters = []
    for ch, w, u in zip("spam", wide, upper, strict=True):
        c = ch.upper() if u else ch
        letters.append(chr(ord(c) + 0xFEE0) if w else c)
    evasive = letters[0] + pieces[0] + letters[1] + pieces[1] + letters[2] + pieces[2] + letters[3]
    result = RuleBasedPolicy(banned_terms=("spam",)).evaluate(item(f"hi {evasive}!"), T0)
    assert result.reasons == ("banned term: spam",)
