"""Bounded per-author memory of recent texts, for the repeated-text (flood) rule.

Pure and in-process: one tracker per policy instance (so per worker process); a restart or a
submission handled by another worker starts from an empty memory, which makes the flood rule a
best-effort brake, not a guarantee.

Memory is bounded twice: at most ``max_authors`` authors (least recently seen evicted first)
and at most ``max_entries_per_author`` remembered submissions each (oldest dropped first).
Texts and submission ids are kept as 64-bit fingerprints (:func:`fingerprint`), never as
text. An entry costs about 190 bytes and an author about 350 bytes more (measured on CPython
3.11), so the defaults (100,000 authors x 8 entries) peak near 160 MB in the worst case and
about 35 MB when authors have one recent submission each; expired entries are dropped
whenever their author is seen again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

__all__ = ["FloodTracker", "fingerprint"]


def fingerprint(text: str) -> int:
    """A 64-bit fingerprint of ``text``, stable for the life of this process.

    Python's own string hash: SipHash with a key drawn at random per process, so colliding
    texts cannot be crafted from outside, and it costs a fraction of a cryptographic digest
    (measured: about 0.2 against 1.2 microseconds for a 500-character post). Fingerprints never
    leave the process (the tracker is in-memory only), so per-process stability is enough.
    """
    return hash(text)


class _Entry(NamedTuple):
    at: float  # POSIX seconds
    text: int  # fingerprint of the normalised text
    submission: int  # fingerprint of the submission id (redeliveries are not repeats)


class FloodTracker:
    """Counts, per author, recent submissions with the same normalised text."""

    def __init__(self, *, max_authors: int = 100_000, max_entries_per_author: int = 8) -> None:
        if max_authors < 1:
            raise ValueError("max_authors must be at least 1")
        if max_entries_per_author < 1:
            raise ValueError("max_entries_per_author must be at least 1")
        self.max_authors = max_authors
        self.max_entries_per_author = max_entries_per_author
        self._authors: OrderedDict[str, list[_Entry]] = OrderedDict()

    def __len__(self) -> int:
        """Number of authors currently remembered (never more than ``max_authors``)."""
        return len(self._authors)

    def __contains__(self, author_id: object) -> bool:
        return author_id in self._authors

    def entries_for(self, author_id: str) -> int:
        """Number of submissions remembered for an author (for tests and metrics)."""
        return len(self._authors.get(author_id, ()))

    def observe(
        self,
        author_id: str,
        text: str,
        submission_id: str,
        at: float,
        window_seconds: float,
    ) -> int:
        """Record a submission and return how many submissions by ``author_id`` with the same
        (already normalised) ``text`` lie within ``window_seconds`` of ``at``, this one
        included.

        The window is symmetric (``|t - at| < window``) so a submission processed slightly
        out of order still sees its neighbours. Seeing the same ``submission_id`` again (a
        retry or redelivery) does not count it twice."""
        text_fp = fingerprint(text)
        sub_fp = fingerprint(submission_id)
        authors = self._authors
        entries = authors.get(author_id)
        if entries is None:
            authors[author_id] = [_Entry(at, text_fp, sub_fp)]
            while len(authors) > self.max_authors:
                authors.popitem(last=False)
            return 1
        authors.move_to_end(author_id)

        # Plain loops with tuple unpacking: this runs for every record a worker moderates,
        # over at most max_entries_per_author entries. The list is changed in place; it is
        # rebuilt only when an entry expired (rare: the window is long next to the history).
        # Entries compare by time first, so max() finds the latest one in C.
        horizon = max(at, max(entries).at if entries else at) - window_seconds
        already_seen = False
        count = 1
        expired = False
        for when, text_seen, submission_seen in entries:
            if when <= horizon:
                expired = True
            elif submission_seen == sub_fp:
                already_seen = True
            elif text_seen == text_fp and abs(when - at) < window_seconds:
                count += 1
        if expired:
            entries = [entry for entry in entries if entry.at > horizon]
            authors[author_id] = entries
        if not already_seen:
            entries.append(_Entry(at, text_fp, sub_fp))
            if len(entries) > self.max_entries_per_author:
                del entries[0]
        return count

    def clear(self) -> None:
        self._authors.clear()
