"""The insight index gives exactly the answer of the plain rule it replaces (first_match_by_scan)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from popkit_power.insights import first_match_by_scan, insight_key
from popkit_power.projector import Rules, apply, new_state

WORDS = ["cache", "key", "tenant", "id", "lacks", "the", "auth", "token", "expires", "parser", "is", "slow"]
texts = st.lists(st.sampled_from(WORDS), min_size=0, max_size=7).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(texts, min_size=1, max_size=40), st.floats(min_value=0.0, max_value=1.0), st.integers(1, 12))
def test_index_agrees_with_the_plain_scan(insights: list[str], threshold: float, kept: int) -> None:
    """Each insight is marked a duplicate of exactly what a scan of the kept insights, in order, would pick."""
    rules = Rules(insight_similarity_threshold=threshold, max_insights_kept=kept)
    state = new_state()
    for seq, text in enumerate(insights, start=1):
        key, words = insight_key(text)
        expected = first_match_by_scan(state["insights"], key, words, threshold)
        apply(state, {"seq": seq, "id": f"i{seq}", "type": "insight.shared", "from": "a", "data": {"text": text}},
              rules)
        assert state["insights"][-1]["dup_of"] == expected
        assert len(state["insights"]) <= kept
