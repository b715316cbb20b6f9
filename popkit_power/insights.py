"""When two insights say the same thing: the normalized form of an insight (`insight_key`), the similarity of two
(`similarity`), and the index that finds which kept insight a new one repeats, fast (`InsightIndex`).

The hook holds back from an agent an insight that repeats one it heard (the two functions); the projector marks
near-duplicates with the index. Its rule: a new insight is a duplicate of the oldest kept, non-duplicate insight with
the same normalized key or a word-set Jaccard similarity at or above the threshold (`first_match_by_scan` states it
plainly). Comparing with every kept insight cost ~600 us per insight, 88% of a rebuild (tools/BENCHMARKS.md); the
index gives the same answer (tests/test_insight_index.py checks them against each other). It is derived from the
state's list and lives in memory only, never in the state or a snapshot, so the fold stays a function of its inputs.

This module is on the hook's hot path: it imports only `zlib`.
"""

from __future__ import annotations

import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .shapes.state import Insight


def insight_key(text: str) -> tuple[str, frozenset[str]]:
    """The normalized form of an insight (lower case, words only) and its word set, for duplicate detection."""
    words = "".join(char.lower() if char.isalnum() else " " for char in text).split()
    return " ".join(words), frozenset(words)


def similarity(left: frozenset[str], right: frozenset[str]) -> float:
    """Jaccard similarity of two word sets (1.0 for two empty ones)."""
    if not left and not right:
        return 1.0
    return len(left & right) / len(left | right)




class InsightIndex:
    """What `_insight` compares a new insight with, derived from `state["insights"]` and kept in memory only.

    The plain rule (kept as the reference in `_first_match_by_scan`) compares a new insight with every kept one that
    is not itself a duplicate: up to `max_insights_kept` (500) Jaccard similarities, each of a word set rebuilt from
    the kept key, which was ~600 us per insight and 87% of a rebuild. The index gives the same answer from a few
    candidates: an inverted index of each kept insight's prefix words (AllPairs prefix filter: two sets with Jaccard
    >= t share a word among the first |X| - ceil(t|X|) + 1 words of each, in any fixed global word order; t is
    lowered by 1e-9 to size the prefixes, so rounding never hides a match), plus the kept keys, since equal keys
    match at any t. Candidates are checked in list order with the same `similarity`, so the answer is identical.
    """

    __slots__ = ("by_key", "count", "entries", "first", "insights", "postings", "threshold")

    def __init__(self, insights: list[Insight], threshold: float) -> None:
        self.insights = insights  # the state's own list: identity says this index belongs to it
        self.threshold = threshold
        self.entries: dict[int, tuple[Any, frozenset[str], str, list[str]]] = {}  # ordinal -> (id, words, key, prefix)
        self.postings: dict[str, set[int]] = {}
        self.by_key: dict[str, list[int]] = {}
        self.first = 0  # the ordinal of insights[0]
        self.count = 0
        for kept in insights:
            words = frozenset(kept["key"].split())
            self.appended(kept, words, self.prefix(words))

    def prefix(self, words: frozenset[str]) -> list[str]:
        threshold = self.threshold
        if threshold <= 0:
            return list(words)  # everything matches; first_match handles it without the index
        size = len(words)
        # ceil(t * |X|) is the fewest shared words a match needs; t is lowered by far more than a rounding error
        # so that a similarity that only reaches t after rounding is still found.
        overlap = -int(-(threshold - 1e-9) * size // 1)
        length = size - overlap + 1
        if length >= size:
            return list(words)
        return sorted(words, key=_word_order)[:max(length, 0)]

    def appended(self, entry: Insight, words: frozenset[str], prefix: list[str]) -> None:
        ordinal = self.first + self.count
        self.count += 1
        if entry.get("dup_of") is not None:
            return
        key = entry["key"]
        self.entries[ordinal] = (entry.get("id"), words, key, prefix)
        self.by_key.setdefault(key, []).append(ordinal)
        for word in prefix:
            self.postings.setdefault(word, set()).add(ordinal)

    def dropped_first(self) -> None:
        ordinal = self.first
        self.first += 1
        self.count -= 1
        removed = self.entries.pop(ordinal, None)
        if removed is None:
            return
        _id, _words, key, prefix = removed
        same_key = self.by_key[key]
        same_key.remove(ordinal)
        if not same_key:
            del self.by_key[key]
        for word in prefix:
            posting = self.postings[word]
            posting.discard(ordinal)
            if not posting:
                del self.postings[word]

    def first_match(self, key: str, words: frozenset[str], prefix: list[str]) -> Any:
        """The id of the oldest kept, non-duplicate insight with the same key or a similarity >= the threshold."""
        threshold = self.threshold
        if threshold <= 0:
            candidates: Any = self.entries  # every similarity is >= 0
        else:
            candidates = set(self.by_key.get(key, ()))
            postings = self.postings
            for word in prefix:
                posting = postings.get(word)
                if posting:
                    candidates |= posting
        entries = self.entries
        size = len(words)
        for ordinal in sorted(candidates):
            kept_id, kept_words, kept_key, _prefix = entries[ordinal]
            if kept_key == key:
                return kept_id
            kept_size = len(kept_words)
            # similarity = |A & B| / |A | B| <= min(|A|, |B|) / max(|A|, |B|) (also after rounding, which is
            # monotonic): skip what cannot reach t
            if (size / kept_size if kept_size > size else kept_size / size if size else 1.0) < threshold:
                continue
            if similarity(words, kept_words) >= threshold:
                return kept_id
        return None


def _word_order(word: str) -> tuple[int, str]:
    order = _WORD_ORDER.get(word)
    if order is None:
        if len(_WORD_ORDER) > 100_000:
            _WORD_ORDER.clear()
        order = _WORD_ORDER[word] = (zlib.crc32(word.encode("utf-8", "surrogatepass")), word)
    return order


_WORD_ORDER: dict[str, tuple[int, str]] = {}


_INDEXES: dict[int, InsightIndex] = {}


def insight_index(insights: list[Insight], threshold: float) -> InsightIndex:
    index = _INDEXES.get(id(insights))
    if index is None or index.insights is not insights or index.count != len(insights) or index.threshold != threshold:
        if len(_INDEXES) >= 8:  # a few states at a time (coordinator, tests); rebuilding one costs ~1 ms
            _INDEXES.clear()
        index = _INDEXES[id(insights)] = InsightIndex(insights, threshold)
    return index


def first_match_by_scan(insights: list[Insight], key: str, words: frozenset[str], threshold: float) -> Any:
    """The reference rule the index must agree with (tests compare the two)."""
    for kept in insights:
        if kept["dup_of"] is None and (kept["key"] == key or similarity(words, frozenset(kept["key"].split()))
                                       >= threshold):
            return kept["id"]
    return None
