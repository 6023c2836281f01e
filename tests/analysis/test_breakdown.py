"""Breakdowns: the correction across cells with too-small cells left out, and the Simpson's-paradox
hint on the published kidney-stone data and on crafted cases."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.breakdown import CellEstimate, CellTest, cell_mix_shift, correct_cells, simpson_hint
from analysis.frequentist import FrequentistSettings, proportions_test
from analysis.stats import SampleStats


def _cell(name: str, n_c: int, x_c: int, n_t: int, x_t: int,
          settings: FrequentistSettings | None = None) -> CellTest:
    return CellTest(name, n_c, n_t,
                    proportions_test(SampleStats.binomial(n_c, x_c), SampleStats.binomial(n_t, x_t),
                                     settings or FrequentistSettings()))


ABSOLUTE = FrequentistSettings(difference="absolute")
CELLS = [
    _cell("mobile", 5000, 500, 5000, 570),
    _cell("desktop", 3000, 300, 3000, 330),
    _cell("tablet", 40, 4, 45, 9),  # too small at the default 100 per arm
    _cell("tv", 800, 80, 800, 110),
]


@pytest.mark.parametrize(("correction", "method"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_cells_are_corrected_as_one_family_without_the_small_ones(correction: str, method: str) -> None:
    out = correct_cells(CELLS, correction)  # type: ignore[arg-type]
    assert [o.name for o in out] == ["mobile", "desktop", "tablet", "tv"]
    tablet = out[2]
    assert tablet.too_small and tablet.result is None and not tablet.significant
    assert tablet.message is not None and "40 users" in tablet.message
    tested = [o for o in out if not o.too_small]
    raw = [c.result.p_value for c in CELLS if c.name != "tablet"]
    expected = multipletests(raw, method=method)[1]
    assert [o.result.p_value_adjusted for o in tested if o.result] == pytest.approx(list(expected), rel=1e-12)


def test_the_minimum_decides_which_cells_are_tested() -> None:
    assert not any(o.too_small for o in correct_cells(CELLS, "holm", min_users_per_arm=10))
    assert all(o.too_small for o in correct_cells(CELLS, "holm", min_users_per_arm=10_000))
    with pytest.raises(ValueError, match="unique"):
        correct_cells([CELLS[0], CELLS[0]])


def test_correction_across_cells_keeps_the_family_wise_error_rate() -> None:
    """20 null cells: uncorrected, some cell is "significant" in ~64% of breakdowns; Holm, ~5%.

    On the absolute difference: at Holm's first step (alpha/20 = 0.0025) the delta-method relative
    lift's z is visibly not normal at 1,000 users and 10% (it rejects ~0.5% instead of 0.25%), which
    is a property of the per-cell test, not of the correction."""
    rng = np.random.default_rng(9)
    reps, any_raw, any_holm = 400, 0, 0
    for _ in range(reps):
        x = rng.binomial(1000, 0.1, (20, 2))
        cells = [_cell(f"c{i}", 1000, int(x[i, 0]), 1000, int(x[i, 1]), ABSOLUTE) for i in range(20)]
        any_raw += any(c.result.significant for c in cells)
        any_holm += any(o.significant for o in correct_cells(cells, "holm"))
    assert any_raw / reps > 0.5
    assert any_holm / reps <= 0.08


def _stones(control_first: bool = True) -> tuple[CellEstimate, list[CellEstimate]]:
    """Charig et al. (1986) via Julious & Mullee (1994): open surgery (A) vs percutaneous
    nephrolithotomy (B).  Small stones A 81/87, B 234/270; large A 192/263, B 55/80; total A 273/350 (78%),
    B 289/350 (83%).  A is better in both cells, B in the total."""
    cells = [CellEstimate("small stones", 87, 270, 81 / 87, 234 / 270, significant=None),
             CellEstimate("large stones", 263, 80, 192 / 263, 55 / 80, significant=None)]
    return CellEstimate("total", 350, 350, 273 / 350, 289 / 350), cells


@pytest.mark.parametrize("require", ["all", "majority"])
def test_the_kidney_stone_data_is_flagged(require: str) -> None:
    total, cells = _stones()
    hint = simpson_hint(total, cells, require=require)  # type: ignore[arg-type]
    assert hint.flagged and hint.total_direction == 1
    assert set(hint.disagreeing) == {"small stones", "large stones"} and hint.disagreeing_share == 1.0
    # A's users are 87/350 small stones, B's 270/350: a 52-point difference in mix is the cause
    assert hint.mix_shift == pytest.approx(270 / 350 - 87 / 350)
    assert "Simpson" in hint.text and "small stones" in hint.text


def test_a_consistent_breakdown_is_not_flagged() -> None:
    total = CellEstimate("total", 1000, 1000, 0.10, 0.12)
    cells = [CellEstimate("a", 500, 500, 0.08, 0.10), CellEstimate("b", 500, 500, 0.12, 0.14)]
    hint = simpson_hint(total, cells)
    assert not hint.flagged and hint.disagreeing == () and hint.text == ""
    assert cell_mix_shift(cells) == 0.0


def test_majority_is_weighted_by_users_and_all_needs_every_cell() -> None:
    total = CellEstimate("total", 1000, 1000, 0.10, 0.12)
    cells = [CellEstimate("big", 700, 700, 0.13, 0.12),  # disagrees, 70% of the users
             CellEstimate("small", 300, 300, 0.05, 0.12)]  # agrees
    assert simpson_hint(total, cells, "majority").flagged
    assert not simpson_hint(total, cells, "all").flagged
    flipped = [CellEstimate("big", 300, 300, 0.13, 0.12), CellEstimate("small", 700, 700, 0.05, 0.12)]
    assert not simpson_hint(total, flipped, "majority").flagged


def test_only_significant_or_large_cells_are_compared() -> None:
    total = CellEstimate("total", 10_000, 10_000, 0.10, 0.12)
    tiny = [CellEstimate(f"c{i}", 100, 100, 0.12, 0.10) for i in range(5)]  # 5% of users each, all disagree
    rest = CellEstimate("rest", 9_500, 9_500, 0.10, 0.12, significant=False)
    hint = simpson_hint(total, [*tiny, rest])
    assert hint.considered == ("rest",) and not hint.flagged
    significant = [CellEstimate("c0", 100, 100, 0.12, 0.10, significant=True), rest]
    assert simpson_hint(total, significant).considered == ("c0", "rest")
    assert simpson_hint(total, [CellEstimate("c0", 100, 100, 0.12, 0.10, significant=True)]).flagged


def test_a_total_without_direction_or_cells_is_never_flagged() -> None:
    _, cells = _stones()
    assert not simpson_hint(CellEstimate("total", 350, 350, 0.8, 0.8), cells).flagged
    assert not simpson_hint(CellEstimate("total", 350, 350, 0.7, 0.8), []).flagged
    with pytest.raises(ValueError):
        simpson_hint(CellEstimate("total", 1, 1, 0.0, 1.0), cells, require="most")  # type: ignore[arg-type]
