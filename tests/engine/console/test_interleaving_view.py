"""The Readout page's interleaving section as pure functions of a readout's ``interleaving`` block."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from analysis.interleaving import PreferenceCounts, ShiftInterval, preference_test
from engine.console import interleaving_view as view
from engine.experiments.interleaving import shift_interval_fields


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


def test_an_older_phase_decided_by_the_sign_test_says_so() -> None:
    text = view.caption(block(12, 8))
    assert "merging als (A) and ease (B)" in text and "50% means no preference" in text
    needed = view.significant_wins(20, 0.05)
    assert f"from {needed} choosing one ranker" in text and "sequential engine" in text
    assert "only the signs" in text
    sequential = view.caption(block(12, 8, sequential=True))
    assert "at any time" in sequential and "always-valid sign test" in sequential
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


def ranked_block(differences: list[int] | np.ndarray, sequential: bool = False) -> dict[str, Any]:
    """A block as the readout builds it for a phase that kept the users' credit differences: the
    signed-rank test decides, and its inverted interval rides along."""
    result = preference_test(PreferenceCounts.of(np.asarray(differences)))
    counts = result.counts
    return block(counts.wins, counts.losses, counts.ties, sequential=sequential, p_value=result.p_value,
                 verdict=result.verdict, **({} if sequential else {"decided_by": result.method}),
                 pseudomedian=result.pseudomedian, pseudomedian_message=result.pseudomedian_message,
                 **shift_interval_fields(result.pseudomedian_ci))


def test_the_caption_names_the_signed_rank_test_and_the_shown_interval_agrees_with_the_verdict() -> None:
    rng = np.random.default_rng(7)
    seen = {"preferred": 0, "no preference": 0, "no interval": 0}
    for _ in range(300):
        n = int(rng.integers(2, 80))
        d = np.where(rng.random(n) < rng.uniform(0.3, 0.95), 1, -1) * rng.geometric(rng.uniform(0.4, 0.9), n)
        b = ranked_block(np.where(rng.random(n) < 0.4, 0, d))
        if b["wins"] + b["losses"] < 2:
            continue
        text, notice = view.caption(b), view.verdict_notice(b).text
        assert "Wilcoxon signed-rank test" in text and "sign test calls a preference" not in text
        assert "describe the users; they do not decide" in text
        preferred = b["verdict"] in ("B preferred", "A preferred")
        interval = view.verdict_interval(b)
        if interval is None:  # the test rejects every shift on the verdict's side: said, never a wrong interval
            assert preferred and "interval: none" in notice and "no interval" in text
            seen["no interval"] += 1
            continue
        assert (0.0 not in interval) == preferred
        assert view.interval_text(interval) in notice and view.interval_text(interval) in text
        assert ("leaves out 0" in notice) == preferred and ("holds 0" in notice) == (not preferred)
        seen["preferred" if preferred else "no preference"] += 1
    assert seen["preferred"] > 50 and seen["no preference"] > 50


def test_the_verdicts_interval_is_shown_with_its_open_ends() -> None:
    assert view.interval_text(ShiftInterval(0.0, 1.5, low_closed=False)) == "(0, +1.5]"
    assert view.interval_text(ShiftInterval(-np.inf, 1.0, low_closed=False, high_closed=False)) == "(−∞, +1)"
    b = ranked_block([1] * 30 + [-1] * 10 + [3] * 5 + [0] * 20)
    assert b["verdict"] == "B preferred" and b["pseudomedian_ci_closed"] is not None
    cards = {c.label: c for c in view.cards(b)}
    assert cards["Pseudo-median"].value == f"{b['pseudomedian']:+g} clicks" != "+0 clicks"
    assert "signed-rank test's interval" in str(cards["Pseudo-median"].help)
    assert "a description" in str(cards["Preference share"].help)
    # the sequential engine decides by its sign test: no signed-rank interval next to its verdict
    sequential = ranked_block([1] * 30 + [-1] * 10, sequential=True)
    assert "Pseudo-median" not in {c.label for c in view.cards(sequential)}
    assert "signed-rank" not in view.verdict_notice(sequential).text + view.caption(sequential)
