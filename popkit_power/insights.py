"""When two insights say the same thing: the normalized form of an insight and the similarity of two of them.

The projector marks near-duplicates (with `insight_index.py` to find candidates fast) and the hook holds them back
from an agent that heard the first one; both use these two functions, so they agree.
This module is on the hook's hot path: it imports nothing.
"""

from __future__ import annotations


def insight_key(text: str) -> tuple[str, frozenset[str]]:
    """The normalized form of an insight (lower case, words only) and its word set, for duplicate detection."""
    words = "".join(char.lower() if char.isalnum() else " " for char in text).split()
    return " ".join(words), frozenset(words)


def similarity(left: frozenset[str], right: frozenset[str]) -> float:
    """Jaccard similarity of two word sets (1.0 for two empty ones)."""
    if not left and not right:
        return 1.0
    return len(left & right) / len(left | right)
