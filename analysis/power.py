"""Sample size, minimum detectable effect and duration for fixed-horizon A/B tests.

Per-variant sample size for two proportions (unpooled normal approximation):

    n = (z_{1-α/2} + z_{1-β})² · (p1(1 - p1) + p2(1 - p2)) / (p2 - p1)²

and for means with a common standard deviation ``σ``: ``n = 2 (z_{1-α/2} + z_{1-β})² σ² / δ²``.
Both equal statsmodels' ``NormalIndPower`` with the matching standardised effect (which adds the
negligible probability of rejecting in the wrong tail).

``alpha`` is per comparison: divide it by the number of treatments to plan for a
Bonferroni/Holm-corrected family.

The readout decides on the *relative* lift ``(m_t - m_c)/m_c`` by default, tested with its
delta-method variance.  Sized for the absolute difference, that test has about 78% power at
+10% on a 5% rate instead of 80%; ``sample_size_relative*`` size for the test the readout runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special


def _z_sum(alpha: float, power: float, two_sided: bool) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    z_alpha = special.ndtri(1.0 - (alpha / 2.0 if two_sided else alpha))
    total = float(z_alpha + special.ndtri(power))
    if not math.isfinite(total):
        raise ValueError(f"alpha {alpha:g} and power {power:g} are beyond a normal quantile's range")
    return total


def _check_rate(p: float, name: str) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {p}")


def _check_positive(value: float, name: str) -> None:
    """Finite and > 0: NaN and inf fail here with a message instead of surfacing as NaN or a ZeroDivisionError."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")


def _check_effect(mde: float) -> None:
    if not math.isfinite(mde) or mde == 0:
        raise ValueError(f"mde must be a non-zero finite number, got {mde}")


def treatment_rate(baseline: float, mde: float, relative: bool = True) -> float:
    return baseline * (1.0 + mde) if relative else baseline + mde


def sample_size_proportions(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    relative: bool = True,
    two_sided: bool = True,
) -> int:
    """Users per variant to detect ``baseline → baseline·(1 + mde)`` (or ``+ mde`` when absolute)."""
    _check_effect(mde)
    p1 = baseline
    p2 = treatment_rate(baseline, mde, relative)
    _check_rate(p1, "baseline")
    _check_rate(p2, "baseline with the mde")
    if p2 == p1:
        raise ValueError("mde must be non-zero")
    d = p2 - p1
    return _finite_ceil(_z_sum(alpha, power, two_sided) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / d / d, mde)


def sample_size_means(
    std: float, mde: float, alpha: float = 0.05, power: float = 0.8, two_sided: bool = True
) -> int:
    """Users per variant to detect an absolute difference ``mde`` in means with per-user sd ``std``."""
    _check_positive(std, "std")
    _check_effect(mde)
    ratio = std / mde
    return _finite_ceil(2.0 * _z_sum(alpha, power, two_sided) ** 2 * ratio * ratio, mde)


def _relative_size(
    m_c: float, m_t: float, v_c: float, v_t: float, slopes: tuple[float, float], alpha: float, power: float,
    two_sided: bool,
) -> int:
    """Users per arm for the delta-method relative test, whose statistic is not unit-normal.

    The readout's statistic is ``z = √n (m_t - m_c) / √(v_t + r² v_c)`` with ``r = m_t/m_c`` and the
    per-user variances ``v`` taken at the estimated means: when the treatment's mean comes out high,
    ``r`` grows and so does the denominator, which shrinks ``z``'s spread (to about 0.91 at 5% → 5.5%).
    Linearising ``z`` around the true means gives its mean ``√n D/√S`` and a spread ``s`` independent of
    ``n``, so ``n = (z_α + z_β·s)² S / D²``.  ``slopes`` are ``dv/dm`` of each arm (``1 - 2m`` for a
    rate, 0 for a mean with a fixed sd).  A simulation of the readout's test confirms the power.
    """
    difference = m_t - m_c
    r = m_t / m_c
    spread = v_t + r * r * v_c
    root = math.sqrt(spread)
    # ∂(D/√S)/∂m for each arm, with S's own dependence on the means
    ds_dc = -2.0 * r * r * v_c / m_c + r * r * slopes[0]
    ds_dt = slopes[1] + 2.0 * r * v_c / m_c
    g_c = (-root - difference * ds_dc / (2.0 * root)) / spread
    g_t = (root - difference * ds_dt / (2.0 * root)) / spread
    s = math.sqrt(g_c * g_c * v_c + g_t * g_t * v_t)
    z_alpha = float(special.ndtri(1.0 - (alpha / 2.0 if two_sided else alpha)))
    _z_sum(alpha, power, two_sided)  # the same checks of alpha and power as the other sizes
    total = z_alpha + float(special.ndtri(power)) * s
    return _finite_ceil(total * total * spread / difference / difference, r - 1.0)


def sample_size_relative(
    control_mean: float,
    std: float,
    lift: float,
    alpha: float = 0.05,
    power: float = 0.8,
    two_sided: bool = True,
) -> int:
    """Users per variant for the readout's relative test (delta method) of a mean metric whose per-user
    standard deviation ``std`` is the same in both arms: ``control_mean → control_mean·(1 + lift)``."""
    _check_effect(lift)
    if not math.isfinite(control_mean) or control_mean == 0:
        raise ValueError(f"a relative lift needs a non-zero control mean, got {control_mean}")
    _check_positive(std, "std")
    var = std * std
    return _relative_size(control_mean, control_mean * (1.0 + lift), var, var, (0.0, 0.0), alpha, power, two_sided)


def sample_size_relative_proportions(
    baseline: float, lift: float, alpha: float = 0.05, power: float = 0.8, two_sided: bool = True
) -> int:
    """Users per variant for the readout's relative test of a rate: ``baseline → baseline·(1 + lift)``."""
    _check_effect(lift)
    p1, p2 = baseline, treatment_rate(baseline, lift)
    _check_rate(p1, "baseline")
    _check_rate(p2, "baseline with the mde")
    return _relative_size(p1, p2, p1 * (1 - p1), p2 * (1 - p2), (1 - 2 * p1, 1 - 2 * p2), alpha, power, two_sided)


def _finite_ceil(n: float, mde: float) -> int:
    # products, not **, above: a float ** overflows with an exception, and a tiny mde squared underflows to 0
    if not math.isfinite(n):
        raise ValueError(f"mde {mde:g} is too small: the sample size is not a finite number")
    return math.ceil(n)


def power_proportions(
    n_per_arm: float, baseline: float, treatment: float, alpha: float = 0.05, two_sided: bool = True
) -> float:
    """Power of the (unpooled) two-proportion z test with ``n_per_arm`` users in each arm."""
    _check_positive(n_per_arm, "n_per_arm")
    _check_rate(baseline, "baseline")
    _check_rate(treatment, "treatment")
    se = math.sqrt((baseline * (1 - baseline) + treatment * (1 - treatment)) / n_per_arm)
    return _power(_drift(abs(treatment - baseline), se), alpha, two_sided)


def power_means(
    n_per_arm: float, std: float, mde: float, alpha: float = 0.05, two_sided: bool = True
) -> float:
    _check_positive(n_per_arm, "n_per_arm")
    _check_positive(std, "std")
    _check_effect(mde)
    return _power(_drift(abs(mde), std * math.sqrt(2.0 / n_per_arm)), alpha, two_sided)


def _drift(effect: float, se: float) -> float:
    """Expected z of ``effect``; a standard error that underflowed to 0 (astronomic samples) means certainty."""
    if se == 0:
        return math.inf if effect > 0 else 0.0
    return effect / se


def _power(drift: float, alpha: float, two_sided: bool) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if math.isinf(drift):
        return 1.0  # certain detection, even against an alpha so small its critical value is inf
    z_alpha = float(special.ndtri(1.0 - (alpha / 2.0 if two_sided else alpha)))
    upper = float(special.ndtr(drift - z_alpha))
    return upper + (float(special.ndtr(-drift - z_alpha)) if two_sided else 0.0)


def mde_means(
    n_per_arm: float, std: float, alpha: float = 0.05, power: float = 0.8, two_sided: bool = True
) -> float:
    """Smallest absolute difference in means detectable with ``power``."""
    _check_positive(n_per_arm, "n_per_arm")
    _check_positive(std, "std")
    return _z_sum(alpha, power, two_sided) * (std * math.sqrt(2.0) / math.sqrt(n_per_arm))


def mde_proportions(
    n_per_arm: float,
    baseline: float,
    alpha: float = 0.05,
    power: float = 0.8,
    relative: bool = True,
    two_sided: bool = True,
) -> float | None:
    """Smallest upward lift detectable with ``power`` (relative by default); ``None`` if even 100% is not."""
    _check_rate(baseline, "baseline")
    _check_positive(n_per_arm, "n_per_arm")
    z = _z_sum(alpha, power, two_sided)

    def gap(delta: float) -> float:
        p2 = baseline + delta
        return z * math.sqrt((baseline * (1 - baseline) + p2 * (1 - p2)) / n_per_arm) - delta

    top = 1.0 - baseline
    if gap(top) > 0:
        return None
    delta = float(optimize.brentq(gap, 1e-15, top, xtol=1e-14))
    return delta / baseline if relative else delta


def daily_rate(users: float, days_elapsed: float) -> float:
    """Observed traffic: users entering the experiment per day."""
    _check_positive(days_elapsed, "days_elapsed")
    if not (math.isfinite(users) and users >= 0):
        raise ValueError(f"users must be a finite number >= 0, got {users}")
    return users / days_elapsed


def expected_duration_days(
    n_per_arm: int,
    users_per_day: float,
    weights: Sequence[float] | None = None,
    arms: int = 2,
    current_users: Sequence[int] | None = None,
) -> float:
    """Days until every arm reaches ``n_per_arm`` at ``users_per_day`` split by ``weights``.

    The arm with the smallest share is the bottleneck.  With ``current_users`` it is the time
    *remaining*; 0 when every arm is already there.  ``inf`` when there is no traffic.
    """
    w = None if weights is None else np.asarray(weights, dtype=float)
    if arms < 1 or (w is not None and not (np.all(np.isfinite(w)) and np.all(w >= 0) and 0 < w.max() < 1e300)):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {list(map(float, w or []))}")
    if not math.isfinite(n_per_arm) or math.isnan(users_per_day):
        raise ValueError(f"n_per_arm and users_per_day must be numbers, got {n_per_arm} and {users_per_day}")
    share = np.full(arms, 1.0 / arms) if w is None else w / np.sum(w)
    have = np.zeros(share.size) if current_users is None else np.asarray(current_users, float)
    if have.size != share.size:
        raise ValueError(f"{have.size} current counts for {share.size} arms")
    missing = np.maximum(n_per_arm - have, 0.0)
    if not missing.any():
        return 0.0
    if users_per_day <= 0 or np.any(share[missing > 0] <= 0):
        return math.inf
    with np.errstate(divide="ignore", over="ignore"):  # a trickle of traffic: the duration is inf
        return float(np.max(missing / (users_per_day * share)))
