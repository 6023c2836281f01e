"""Outlier capping: the cap comes from the pooled arms, is recorded, cuts the variance of a
heavy-tailed mean, and leaves the A/A false-positive rate at alpha."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.capping import AppliedCap, CapSettings, cap_arms, capped_stats, percentile_cap, winsorize
from analysis.frequentist import welch_ttest
from analysis.stats import SampleStats


def test_winsorize_caps_only_values_above_the_cap() -> None:
    assert winsorize([1.0, 5.0, -3.0, 10.0], 5.0).tolist() == [1.0, 5.0, -3.0, 5.0]


def test_percentile_cap_is_the_pooled_quantile_whatever_the_arm_labels() -> None:
    rng = np.random.default_rng(1)
    values = rng.lognormal(0, 2, 1000)
    a, b = values[:300], values[300:]
    cap = percentile_cap([a, b], 0.99)
    assert cap == pytest.approx(float(np.quantile(values, 0.99)))
    shuffled = rng.permutation(values)
    assert percentile_cap([shuffled[:700], shuffled[700:]], 0.99) == pytest.approx(cap)


def test_ignore_zeros_takes_the_percentile_of_users_with_the_event() -> None:
    values = np.concatenate([np.zeros(990), np.arange(1.0, 11.0)])
    assert percentile_cap([values], 0.9) == 0.0
    with_event = np.arange(1.0, 11.0)
    assert percentile_cap([values], 0.9, ignore_zeros=True) == pytest.approx(float(np.quantile(with_event, 0.9)))


def test_the_applied_cap_is_recorded() -> None:
    capped, applied = cap_arms([[1, 2, 3, 100], [4, 200]], CapSettings("absolute", 50.0))
    assert [a.tolist() for a in capped] == [[1, 2, 3, 50], [4, 50]]
    assert applied == AppliedCap(CapSettings("absolute", 50.0), 50.0, 2, 6)
    assert applied.capped_share == pytest.approx(2 / 6)
    assert "2 of 6 users" in applied.describe()
    stats, _ = capped_stats([[1, 2, 3, 100]], CapSettings("absolute", 50.0))
    assert stats[0] == SampleStats.from_values([1, 2, 3, 50])


def test_no_data_means_no_cap() -> None:
    capped, applied = cap_arms([[], []], CapSettings("percentile", 0.99))
    assert applied.cap is None and applied.capped_users == 0 and "no cap" in applied.describe()
    assert [a.size for a in capped] == [0, 0]


@pytest.mark.parametrize(("kind", "value"), [("percentile", 0.0), ("percentile", 1.5), ("absolute", float("inf")),
                                             ("winsor", 0.9)])
def test_bad_settings_are_refused(kind: str, value: float) -> None:
    with pytest.raises(ValueError):
        CapSettings(kind, value)  # type: ignore[arg-type]


def _heavy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Revenue-like: most users spend little, a Pareto tail (shape 1.5: infinite variance) spends a lot."""
    return (rng.pareto(1.5, n) + 1.0) * 10.0


def test_capping_cuts_the_variance_of_the_mean_on_heavy_tailed_data() -> None:
    rng = np.random.default_rng(2)
    plain, capped = [], []
    for _ in range(400):
        arm = _heavy(rng, 1000)
        plain.append(arm.mean())
        (arm_capped,), applied = cap_arms([arm], CapSettings("percentile", 0.99))
        assert applied.capped_users == pytest.approx(10, abs=1)
        capped.append(arm_capped.mean())
    assert np.var(capped) < 0.5 * np.var(plain)


def test_aa_false_positive_rate_stays_calibrated_with_a_pooled_cap() -> None:
    rng = np.random.default_rng(3)
    reps = 1500
    rejections = 0
    for _ in range(reps):
        (a, b), _ = capped_stats([_heavy(rng, 500), _heavy(rng, 500)], CapSettings("percentile", 0.99))
        r = welch_ttest(a, b)
        assert r.p_value is not None
        rejections += r.p_value < 0.05
    assert 0.03 <= rejections / reps <= 0.07
