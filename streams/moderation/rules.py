"""``RuleBasedPolicy``: the default moderation policy, configured by a frozen ``RulesConfig``.

Rules, in the order their reasons are listed:

=====================  ==================================================  ===================
rule                   fires when                                          verdict
=====================  ==================================================  ===================
oversize               body > ``max_body_chars`` or title >                rejected (checked
                       ``max_title_chars`` characters                      first; nothing else
                                                                           is evaluated)
empty                  the body (topics: the title) is blank once          rejected
                       whitespace and invisible characters are removed
banned term            a ``banned_terms`` entry occurs as whole words      rejected
review term            a ``needs_review_terms`` entry occurs as whole      needs_review
                       words
links                  more than ``max_links`` http(s)/www links           needs_review;
                                                                           rejected above 2x
shouting               at least ``shouting_min_letters`` cased letters     needs_review
                       (links not counted) and capitals >
                       ``shouting_ratio`` of them
repeated text          the same normalised text from the same author more  rejected
                       than ``flood_max_repeats`` times within
                       ``flood_window_seconds``
=====================  ==================================================  ===================

Title and body are checked together (a topic's title is text like any other). Term matching
runs on NFKC-casefolded text with invisible characters removed (see :mod:`.text`), so
full-width letters and zero-width splitters do not evade it, and on whole words, so the term
``ass`` does not match ``class``. The strongest verdict wins (rejected > needs_review >
approved) and every rule that fired contributes its reason.

Reasons name the rule, the configured term and counts, and never quote the submission, for any
kind (private-message bodies must not leave the data plane).

Time: the flood window is measured on the submission's own ``submitted_at`` (event time), so
decisions do not depend on worker lag, and a redelivered submission is judged as it was the
first time. A ``submitted_at`` later than the worker's ``now`` (a skewed clock upstream) is
clamped to ``now``.

Cost: linear in the text; a maximum-size (64 KiB) item takes a few tens of milliseconds, a
typical post well under one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streams.moderation.flood import FloodTracker
from streams.moderation.policy import ModerationInput, PolicyResult, PolicyVerdict, strongest
from streams.moderation.text import (
    case_counts,
    count_links,
    is_blank,
    normalise_for_match,
    without_links,
    words,
)

__all__ = ["RuleBasedPolicy", "RulesConfig"]

# A term must start and end with a word character after normalisation; separators between its
# words (spaces, hyphens, dots) all match any separator in the text ("buy-now" ~ "buy now").
_TERM_RE = re.compile(r"^\w(?:.*\w)?$", re.DOTALL)

_Finding = tuple[PolicyVerdict, str]


class RulesConfig(BaseModel):
    """Settings of :class:`RuleBasedPolicy`. Unknown keys are an error, so a typo in the
    operator's options stops start-up instead of silently using a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    banned_terms: tuple[str, ...] = ()
    needs_review_terms: tuple[str, ...] = ()
    max_links: int = Field(default=3, ge=0)
    shouting_ratio: float = Field(default=0.7, gt=0.0, lt=1.0)
    shouting_min_letters: int = Field(default=20, ge=1)
    flood_window_seconds: float = Field(default=60.0, ge=0.0)  # 0 turns the flood rule off
    flood_max_repeats: int = Field(default=3, ge=1)
    flood_max_authors: int = Field(default=100_000, ge=1)
    # remembered submissions per author; None: max(8, 2 x flood_max_repeats)
    flood_history_per_author: int | None = Field(default=None, ge=1)
    max_body_chars: int = Field(default=65_536, ge=1)
    max_title_chars: int = Field(default=300, ge=1)

    @field_validator("banned_terms", "needs_review_terms")
    @classmethod
    def _terms_are_words(cls, terms: tuple[str, ...]) -> tuple[str, ...]:
        cleaned: list[str] = []
        for term in terms:
            stripped = term.strip()
            if not _TERM_RE.match(normalise_for_match(stripped)):
                raise ValueError(
                    f"term {term!r} must start and end with a letter or digit "
                    "(terms match whole words)"
                )
            cleaned.append(stripped)
        return tuple(cleaned)

    @model_validator(mode="after")
    def _history_holds_a_flood(self) -> Self:
        history = self.flood_history_per_author
        if history is not None and history < self.flood_max_repeats:
            raise ValueError(
                "flood_history_per_author must be at least flood_max_repeats "
                f"({self.flood_history_per_author} < {self.flood_max_repeats})"
            )
        return self

    @property
    def flood_history(self) -> int:
        """Submissions remembered per author: enough to see ``flood_max_repeats`` earlier ones
        even with other texts interleaved."""
        if self.flood_history_per_author is not None:
            return self.flood_history_per_author
        return max(8, 2 * self.flood_max_repeats)


class _TermIndex:
    """Whole-word matcher for a list of (possibly multi-word) terms."""

    def __init__(self, terms: tuple[str, ...]) -> None:
        self._order = {term: i for i, term in reversed(list(enumerate(terms)))}
        self._by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for term in terms:
            tokens = tuple(words(normalise_for_match(term)))
            self._by_first.setdefault(tokens[0], []).append((tokens, term))

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def find(self, tokens: list[str]) -> list[str]:
        """Configured terms found in ``tokens``, each once, in configuration order."""
        found: set[str] = set()
        for first in set(tokens).intersection(self._by_first):
            positions: list[int] | None = None
            for term_tokens, term in self._by_first[first]:
                if len(term_tokens) == 1:
                    found.add(term)
                    continue
                if positions is None:
                    positions = [i for i, token in enumerate(tokens) if token == first]
                n = len(term_tokens)
                if any(tuple(tokens[i : i + n]) == term_tokens for i in positions):
                    found.add(term)
        return sorted(found, key=self._order.__getitem__)


class RuleBasedPolicy:
    """The default policy. Create it from a :class:`RulesConfig` or from the config's fields as
    keyword arguments (what :func:`~streams.moderation.policy.load_policy` does), optionally
    with a :class:`~streams.moderation.flood.FloodTracker` to share or inspect flood state.

    ``evaluate`` is the synchronous core; ``moderate`` is the ``Policy`` entry point."""

    def __init__(
        self,
        config: RulesConfig | Mapping[str, object] | None = None,
        *,
        flood: FloodTracker | None = None,
        **options: object,
    ) -> None:
        if config is not None and options:
            raise TypeError("pass either a RulesConfig or keyword options, not both")
        if isinstance(config, RulesConfig):
            self.config = config
        else:
            self.config = RulesConfig.model_validate(dict(config or options))
        if flood is None:
            flood = FloodTracker(
                max_authors=self.config.flood_max_authors,
                max_entries_per_author=self.config.flood_history,
            )
        self.flood = flood
        self._banned = _TermIndex(self.config.banned_terms)
        self._review = _TermIndex(self.config.needs_review_terms)

    async def moderate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        return self.evaluate(item, now)

    async def aclose(self) -> None:
        self.flood.clear()

    def evaluate(self, item: ModerationInput, now: datetime) -> PolicyResult:
        """Apply every rule to ``item`` and combine the findings (records flood state)."""
        if now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        cfg = self.config
        title = item.title or ""
        # Oversize content is rejected before any other work: it bounds the cost per item.
        if len(item.body) > cfg.max_body_chars:
            return _rejected(f"body too long: {len(item.body)} chars (max {cfg.max_body_chars})")
        if len(title) > cfg.max_title_chars:
            return _rejected(f"title too long: {len(title)} chars (max {cfg.max_title_chars})")

        text = f"{title}\n{item.body}" if title else item.body
        normalised = normalise_for_match(text)
        findings = [
            *self._empty(item),
            *self._terms(normalised),
            *self._links(text),
            *self._shouting(text),
            *self._repeats(item, normalised, now),
        ]
        if not findings:  # the common case: a plain approval, one shared result
            return _APPROVED
        # Built here from known-valid values: skip pydantic's validation on the hot path.
        return PolicyResult.model_construct(
            verdict=strongest(verdict for verdict, _ in findings),
            reasons=tuple(reason for _, reason in findings),
        )

    def _empty(self, item: ModerationInput) -> list[_Finding]:
        if item.kind == "topic":
            return [(PolicyVerdict.REJECTED, "empty title")] if is_blank(item.title or "") else []
        return [(PolicyVerdict.REJECTED, "empty body")] if is_blank(item.body) else []

    def _terms(self, normalised: str) -> list[_Finding]:
        if not (self._banned or self._review):
            return []
        tokens = words(normalised)
        return [
            *((PolicyVerdict.REJECTED, f"banned term: {t}") for t in self._banned.find(tokens)),
            *((PolicyVerdict.NEEDS_REVIEW, f"review term: {t}") for t in self._review.find(tokens)),
        ]

    def _links(self, text: str) -> list[_Finding]:
        limit = self.config.max_links
        links = count_links(text)
        if links <= limit:
            return []
        verdict = PolicyVerdict.REJECTED if links > 2 * limit else PolicyVerdict.NEEDS_REVIEW
        return [(verdict, f"{links} {'link' if links == 1 else 'links'} (max {limit})")]

    def _shouting(self, text: str) -> list[_Finding]:
        upper, lower = case_counts(without_links(text))  # URLs are not prose
        letters = upper + lower
        if (
            letters < self.config.shouting_min_letters
            or upper / letters <= self.config.shouting_ratio
        ):
            return []
        return [(PolicyVerdict.NEEDS_REVIEW, f"shouting: {round(upper * 100 / letters)}% capitals")]

    def _repeats(self, item: ModerationInput, normalised: str, now: datetime) -> list[_Finding]:
        cfg = self.config
        # str.split() splits on exactly the characters `\s` matches (Py_UNICODE_ISSPACE),
        # so this equals re.sub(r"\s+", " ", normalised).strip(), at a fraction of the cost.
        squashed = " ".join(normalised.split())
        if cfg.flood_window_seconds <= 0 or not squashed:
            return []
        at = min(item.submitted_at, now).timestamp()
        count = self.flood.observe(
            item.author_id, squashed, item.submission_id, at, cfg.flood_window_seconds
        )
        if count <= cfg.flood_max_repeats:
            return []
        reason = (
            f"repeated text: {count} times in {cfg.flood_window_seconds:g}s "
            f"(max {cfg.flood_max_repeats})"
        )
        return [(PolicyVerdict.REJECTED, reason)]


_APPROVED = PolicyResult(verdict=PolicyVerdict.APPROVED, reasons=())


def _rejected(reason: str) -> PolicyResult:
    return PolicyResult(verdict=PolicyVerdict.REJECTED, reasons=(reason,))
