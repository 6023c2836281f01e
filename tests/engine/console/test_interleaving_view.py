"""The Readout page's interleaving section as pure functions of a readout's ``interleaving`` block."""

from __future__ import annotations

from typing import Any

import pytest
from scipy import stats

from engine.console import interleaving_view as view


def block(wins: int, losses: int, ties: int = 0, sequential: bool = False, **extra: Any) -> dict[str, Any]:
    decided = wins + losses
    test = stats.binomtest(wins, decided) if decided else None
    ci = test.proportion_ci(0.95, method="exact") if test else None
    p = test.pvalue if test else None
    verdict = "no data" if not decided else (
        ("B preferred" if wins > losses else "A preferred") if p is not None and p < 0.05 else "no preference detected")
    return {"control": "als", "treatment": "ease", "users": decided + ties, "wins": wins, "losses": losses,
            "ties": ties, "preference_share": wins / decided if decided else None, "alpha": 0.05,
            "ci": [ci.low, ci.high] if ci else None, "p_value": p, "verdict": verdict,
            "decided_by": "beta-mixture SPRT" if sequential else "exact sign test",
            "sequential": {"p_value": p, "ci": [0.3, 0.9], "method": "beta-mixture SPRT"} if sequential else None,
            "impressions": 10, "clicks_credited": decided, "clicks_ignored": 0, "clicks_repeated": 0,
            "positions": [{"position": 0, "shown_a": 6, "shown_b": 4, "clicks_a": 3, "clicks_b": 1},
                          {"position": 1, "shown_a": 4, "shown_b": 6, "clicks_a": 0, "clicks_b": 2}], **extra}


@pytest.mark.parametrize("decided", [5, 6, 20, 100, 1001])
def test_significant_wins_is_the_first_count_the_sign_test_rejects(decided: int) -> None:
    needed = view.significant_wins(decided, 0.05)
    if decided <= 5:  # 5 of 5 has p = 0.0625: no split of 5 users is significant
        assert needed is None
        return
    assert needed is not None
    assert stats.binomtest(needed, decided).pvalue < 0.05 <= stats.binomtest(needed - 1, decided).pvalue


def test_caption_says_what_is_shown_and_what_would_change_the_verdict() -> None:
    text = view.caption(block(12, 8))
    assert "merging als (A) and ease (B)" in text and "50% means no preference" in text
    needed = view.significant_wins(20, 0.05)
    assert f"from {needed} choosing one ranker" in text and "sequential engine" in text
    assert "at any time" in view.caption(block(12, 8, sequential=True))
    assert "needs clicks" in view.caption(block(0, 0, ties=4))
    assert "no split would be significant" in view.caption(block(3, 1))


def test_verdict_notice_cards_and_figures() -> None:
    assert view.verdict_notice(block(40, 10)).level == "success"
    assert view.verdict_notice(block(10, 40)).level == "warning"
    assert view.verdict_notice(block(12, 8)).text.startswith("No preference")
    cards = {c.label: c.value for c in view.cards(block(40, 10, ties=5))}
    assert cards["Users"] == "55" and cards["Prefer ease (B)"] == "40" and cards["Preference share"] == "80.0%"
    frame = view.position_frame(block(1, 1))
    assert list(frame["position"]) == [1, 2] and list(frame["click rate A"]) == [0.5, 0.0]
    assert view.share_figure(block(0, 0)) is None and view.share_figure(block(12, 8)) is not None
    share = view.share_figure(block(12, 8, sequential=True))
    assert share is not None and len(share.data) == 2
    assert view.position_figure(block(1, 1, positions=[])) is None
    bars = view.position_figure(block(1, 1))
    assert bars is not None and [list(t.y) for t in bars.data] == [[3, 0], [1, 2]]
