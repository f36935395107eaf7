"""Text normalisation helpers for the moderation rules (pure, no I/O).

Matching is done on a *normalised* copy of the text, never on what is stored or sent:

1. :func:`strip_invisible` removes default-ignorable code points (zero-width space/joiners,
   word joiner, BOM, soft hyphen, bidi controls, variation selectors, tag characters, ...),
   so ``"s\\u200bpam"`` reads as ``"spam"``.
2. :func:`nfkc_casefold` applies Unicode NFKC and case folding, so full-width ``"ＳＰＡＭ"``,
   ligatures (``"ﬁ"``) and other compatibility characters compare equal to their plain forms.
3. :func:`words` splits into Unicode ``\\w+`` runs, the unit of whole-word matching.

Known limits: scripts written without spaces (Chinese, Japanese, Thai) have no word boundaries
for ``\\w+`` to find, so a term there only matches a whole run of such characters; combining
accents are kept (``"spám"`` is not ``"spam"``); leetspeak and spaced-out letters are not undone.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "INVISIBLE_RE",
    "capital_ratio",
    "case_counts",
    "count_links",
    "is_blank",
    "nfkc",
    "nfkc_casefold",
    "normalise_for_match",
    "strip_invisible",
    "without_links",
    "words",
]

# Unicode Default_Ignorable_Code_Point (DerivedCoreProperties), which includes the zero-width
# characters U+200B..U+200D, U+2060 and U+FEFF, plus the soft hyphen, bidi controls, Hangul
# fillers, variation selectors and tag characters: all render as nothing and are used to
# split words past a filter.
INVISIBLE_RE = re.compile(
    "["
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u061c"  # arabic letter mark
    "\u115f\u1160"  # hangul choseong/jungseong fillers
    "\u17b4\u17b5"  # khmer inherent vowels
    "\u180b-\u180f"  # mongolian free variation selectors, vowel separator
    "\u200b-\u200f"  # zero width space, ZWNJ, ZWJ, LRM, RLM
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u206f"  # word joiner, invisible operators, bidi isolates, deprecated formats
    "\u3164"  # hangul filler
    "\ufe00-\ufe0f"  # variation selectors
    "\ufeff"  # zero width no-break space (BOM)
    "\uffa0"  # halfwidth hangul filler
    "\U0001bca0-\U0001bca3"  # shorthand format controls
    "\U0001d173-\U0001d17a"  # musical symbol format controls
    "\U000e0000-\U000e0fff"  # tags, variation selectors supplement
    "]+"
)

_WORD_RE = re.compile(r"\w+")

# A link is an http(s) URL or a bare "www." host, not preceded by a word character or a dot
# (so "awww.x" is not a link). The URL alternative consumes a following "www." so
# "https://www.example.com" counts once. Applied to NFKC-casefolded text, so full-width or
# upper-case spellings count too.
_LINK_RE = re.compile(r"(?<![\w.])(?:https?://\S*|www\.\S*)", re.IGNORECASE)


def strip_invisible(text: str) -> str:
    """Remove default-ignorable (invisible) code points."""
    if text.isascii():  # every default-ignorable code point is outside ASCII
        return text
    return INVISIBLE_RE.sub("", text)


def nfkc(text: str) -> str:
    """Unicode NFKC normalisation (compatibility characters to their plain forms)."""
    if text.isascii():  # ASCII is already in NFKC
        return text
    return unicodedata.normalize("NFKC", text)


def nfkc_casefold(text: str) -> str:
    """NFKC, case fold, NFKC again (folding can produce sequences that need recomposing)."""
    if text.isascii():  # for ASCII, NFKC is the identity and case folding is lower()
        return text.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def normalise_for_match(text: str) -> str:
    """The form all term matching, link counting and repeat detection compare: invisible
    characters stripped, then NFKC + case fold, then invisible characters stripped again
    (NFKC of some compatibility characters can yield them)."""
    return strip_invisible(nfkc_casefold(strip_invisible(text)))


def words(text: str) -> list[str]:
    """Whole words (Unicode ``\\w+`` runs) of already-normalised text, in order."""
    return _WORD_RE.findall(text)


def is_blank(text: str) -> bool:
    """True when the text is empty once invisible characters and whitespace are removed."""
    return not strip_invisible(text).strip()


def count_links(text: str) -> int:
    """Number of ``http://``, ``https://`` and ``www.`` links in the text (any case/width)."""
    normalised = normalise_for_match(text)
    if "://" not in normalised and "www." not in normalised:  # cheap check before the regex
        return 0
    return len(_LINK_RE.findall(normalised))


def without_links(text: str) -> str:
    """The text (invisible characters stripped, NFKC) with its links removed, so that URLs do
    not count as prose, e.g. for the capitals ratio."""
    visible = nfkc(strip_invisible(text))
    if "://" not in visible and "www." not in visible.lower():
        return visible
    return _LINK_RE.sub(" ", visible)


# For ASCII text the cased letters are exactly A-Z and a-z: bytes.translate deletes every
# other byte in C, an order of magnitude faster than str.isupper per character.
_NOT_UPPER = bytes(b for b in range(256) if not 0x41 <= b <= 0x5A)
_NOT_LOWER = bytes(b for b in range(256) if not 0x61 <= b <= 0x7A)


def case_counts(text: str) -> tuple[int, int]:
    """``(upper, lower)`` counts of cased letters after NFKC, so full-width capitals count.

    Letters without case (CJK, Arabic, ...) and title-case digraphs are in neither count."""
    visible = nfkc(strip_invisible(text))
    if visible.isascii():
        raw = visible.encode("ascii")
        return len(raw.translate(None, _NOT_UPPER)), len(raw.translate(None, _NOT_LOWER))
    return sum(map(str.isupper, visible)), sum(map(str.islower, visible))


def capital_ratio(text: str) -> float:
    """Share of capitals among cased letters, 0.0 when there are none."""
    upper, lower = case_counts(text)
    total = upper + lower
    return upper / total if total else 0.0
