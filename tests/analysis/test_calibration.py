"""A coarse, fast (< 20 s) run of ``python -m bench calibration``: the engines' error rates and power
by simulation, within about four Monte-Carlo standard errors of their targets."""

from __future__ import annotations

import pytest

from bench.calibration import Row, calibrate

RUNS = 800


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return calibrate(RUNS, seed=7, bayes_runs=120)


def _find(rows: list[Row], section: str, engine: str) -> Row:
    """The row of the planned scenario (the 1,000/arm/day one is for reference only)."""
    return next(r for r in rows if r.section.startswith(section) and "1,000/arm/day" not in r.section
                and r.engine.startswith(engine))


def test_every_fixed_horizon_engine_keeps_its_false_positive_rate(rows: list[Row]) -> None:
    fixed = [r for r in rows if r.section == "A/A fixed horizon" and r.target.startswith("in [")]
    assert len(fixed) == 6
    for r in fixed:
        assert 0.05 - 4 * r.se - 0.005 <= r.rate <= 0.05 + 4 * r.se + 0.005, r
    exact = _find(rows, "A/A fixed horizon", "frequentist, exact")
    assert exact.rate == pytest.approx(0.0405, abs=1e-4)  # Fisher's exact size, summed over every table


def test_peeking_inflates_only_the_naive_test(rows: list[Row]) -> None:
    naive = _find(rows, "A/A", "naive")
    assert naive.rate > 0.15 and naive.theory == pytest.approx(0.2196, abs=5e-4)  # Armitage et al.: ~0.22
    for name in ("group-sequential", "mSPRT"):
        r = _find(rows, "A/A", name)
        assert r.rate <= 0.05 + 3 * r.se and abs(r.rate - (r.theory or 0.0)) <= 4 * r.se + 0.003, r


def test_sequential_power_next_to_the_fixed_test(rows: list[Row]) -> None:
    fixed = _find(rows, "power at +10%", "fixed test")
    assert fixed.rate == pytest.approx(0.78, abs=4 * fixed.se)
    group = _find(rows, "power at +10%", "group-sequential")
    msprt = _find(rows, "power at +10%", "mSPRT")
    assert group.rate >= 0.85 and msprt.rate >= 0.60 - 3 * msprt.se
    assert abs(msprt.rate - (msprt.theory or 0.0)) <= 4 * msprt.se + 0.02  # theory: 0.639 of the normal-z fixed test
