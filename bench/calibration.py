"""Calibration of the statistics engines by simulation: false-positive rates and power.

    python -m bench calibration [--runs 4000] [--seed 20240613] [--json]

1. A/A at a fixed horizon: the false-positive rate of every engine (frequentist relative and
   absolute tests on conversions, Welch t on a skewed per-user mean, CUPED, Beta-Binomial and
   Gaussian Bayesian) and the exact size of Fisher's test at 40 users per arm.  Target: within
   [0.03, 0.07]; exact tests only promise at most alpha.
2. Peeking: 14 equally spaced looks at a 5% base rate, up to the sample size planned for a +10%
   lift at 80% power.  A/A: the naive fixed test read at every look (the problem), group-sequential
   (Lan-DeMets O'Brien-Fleming) and the mSPRT tuned to the plan.  Target: sequential <= 0.05 + 2 SE.
3. Power at +10% with the same looks, next to the fixed test read once at the plan.  Targets:
   group-sequential >= 85% of the fixed test's power, mSPRT >= 60%.  The same at the issue's
   1,000 users per arm per day (a plan with 47% power) is shown for reference.

Every rate comes with its Monte-Carlo standard error; power ratios with the paired delta-method SE.
The looks are simulated as binomial increments and tested with numpy on whole arrays, through the
library's own array functions (delta-method moments, Welch degrees of freedom, mSPRT likelihood
ratios, Lan-DeMets boundaries); a few runs are re-checked against the scalar engines each time.
Bayesian rows use at most 1,000 runs (the quadrature costs ~30 ms a run).  Exits 1 when a target
is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from analysis.bayesian import beta_binomial_test, gaussian_test
from analysis.decision import bayesian_call
from analysis.frequentist import (
    FrequentistResult,
    FrequentistSettings,
    cuped_ttest,
    delta_relative,
    log_relative,
    proportions_test,
    satterthwaite,
    tail_probability,
    welch_ttest,
)
from analysis.group_sequential import (
    boundary_crossings,
    crossing_probabilities,
    group_sequential_readout,
    lan_demets_boundaries,
)
from analysis.msprt import msprt_p_values, msprt_power, msprt_test, power_optimal_ratio
from analysis.power import sample_size_proportions
from analysis.sequential import planned_drift
from analysis.stats import CupedStats, SampleStats
from bench.harness import table

SEED = 20240613
ALPHA, POWER = 0.05, 0.80
BASE, LIFT, LOOKS = 0.05, 0.10, 14
ISSUE_USERS_PER_DAY = 1_000  # the issue's measurement: 1,000 users per arm per day over 14 days
BAYES_RUNS = 1_000
MEAN_USERS, EXACT_USERS, EXACT_RATE = 2_000, 40, 0.10
FPR_TARGET = (0.03, 0.07)
GS_POWER_TARGET, MSPRT_POWER_TARGET = 0.85, 0.60


@dataclass(frozen=True)
class Row:
    section: str
    engine: str
    counted: str  # what counts as a positive
    rate: float
    se: float
    target: str
    met: bool | None  # None: no target (the naive test is shown as the problem it is)
    theory: float | None = None  # the same quantity for a normal z, by the exact recursion


def _se(rate: float, runs: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 0.0) / runs)


def _fpr_row(section: str, engine: str, counted: str, hits: np.ndarray) -> Row:
    rate = float(np.mean(hits))
    ok = FPR_TARGET[0] <= rate <= FPR_TARGET[1]
    return Row(section, engine, counted, rate, _se(rate, hits.size), f"in [{FPR_TARGET[0]}, {FPR_TARGET[1]}]", ok)


def _sequential_row(section: str, engine: str, hits: np.ndarray, theory: float) -> Row:
    rate = float(np.mean(hits))
    se = _se(rate, hits.size)
    return Row(section, engine, "rejects at any of 14 looks", rate, se, "<= 0.05 + 2 SE", rate <= ALPHA + 2 * se,
               theory)


def _ratio_row(
    section: str, engine: str, hits: np.ndarray, fixed: np.ndarray, target: float | None, theory: float
) -> Row:
    """Power relative to the fixed test on the same runs, with the paired delta-method SE."""
    a, b = float(np.mean(hits)), float(np.mean(fixed))
    ratio = a / b
    cov = float(np.mean(hits & fixed)) - a * b
    var = (a * (1 - a) / b**2 + a**2 * b * (1 - b) / b**4 - 2 * a * cov / b**3) / hits.size
    return Row(section, engine, f"power {a:.3f} / fixed {b:.3f}", ratio, math.sqrt(max(var, 0.0)),
               f">= {target:.0%} of fixed" if target else "-", ratio >= target if target else None, theory)


@dataclass(frozen=True)
class Theory:
    """Rejection probabilities by the exact recursion for a normal z with the drift a true rate gives:
    exact for the sequential tests (their log-ratio z is normal to the third decimal), approximate for
    the fixed test (its delta-method z has sd 0.91 at the plan, so it does better than theory says)."""

    fixed: float
    naive: float
    group: float
    msprt: float

    @classmethod
    def at(cls, planned: int, treatment_rate: float, ratio: float) -> Theory:
        p_c, p_t = BASE, treatment_rate
        vm_c, vm_t = p_c * (1 - p_c) / planned, p_t * (1 - p_t) / planned
        lift, var = delta_relative(p_c, vm_c, p_t, vm_t)  # the fixed test's scale
        log_ratio, log_var = log_relative(p_c, vm_c, p_t, vm_t)  # the sequential tests'
        drift, log_drift = float(lift / np.sqrt(var)), float(log_ratio / np.sqrt(log_var))
        t = np.arange(1, LOOKS + 1) / LOOKS
        z = float(stats.norm.ppf(1 - ALPHA / 2))
        fixed = float(stats.norm.cdf(drift - z) + stats.norm.cdf(-drift - z))
        naive = float(np.sum(boundary_crossings(t, np.full(LOOKS, z), True, drift)))
        group = float(np.sum(crossing_probabilities(lan_demets_boundaries(t, ALPHA), log_drift)))
        return cls(fixed, naive, group, msprt_power(ratio, log_drift, LOOKS, ALPHA))


# ------------------------------------------------------------------------------ A/A, fixed horizon


def _binomial_aa(rng: np.random.Generator, runs: int, n: int, bayes_runs: int) -> list[Row]:
    xs = rng.binomial(n, BASE, size=(runs, 2))
    rows = []
    for difference in ("relative", "absolute"):
        fset = FrequentistSettings(ALPHA, difference=difference)  # type: ignore[arg-type]
        hits = np.array([proportions_test(SampleStats.binomial(n, c), SampleStats.binomial(n, t), fset).significant
                         for c, t in xs.tolist()])
        rows.append(_fpr_row("A/A fixed horizon", f"frequentist, {difference} (Welch t)", "p < 0.05", hits))
    ships = []
    for c, t in xs[:bayes_runs].tolist():
        b = beta_binomial_test(SampleStats.binomial(n, c), SampleStats.binomial(n, t), intervals=False)
        ships.append(b.chance_to_win is not None and b.chance_to_win >= 0.95
                     and bayesian_call(b.chance_to_win, b.expected_loss, b.expected_loss_control, c / n))
    rows.append(_fpr_row("A/A fixed horizon", "bayesian, beta-binomial", "ships: ctw >= 95% and loss <= 0.25%",
                         np.array(ships)))
    return rows


def _sums(values: np.ndarray) -> np.ndarray:
    return np.stack([values.sum(axis=-1), (values * values).sum(axis=-1)], axis=-1)


def _mean_metric_sums(rng: np.random.Generator, runs: int, chunk: int = 250) -> tuple[np.ndarray, np.ndarray]:
    """Per run and arm: (sum, sum of squares) of skewed revenue (10% buy, lognormal amounts), and
    CUPED's (post sum, post squares, pre sum, pre squares, cross sum) with corr(pre, post) = 0.68.
    Drawn in chunks: the raw per-user arrays of every run at once would take a gigabyte."""
    revenue, cuped = [], []
    for start in range(0, runs, chunk):
        shape = (min(chunk, runs - start), 2, MEAN_USERS)
        y = (rng.random(shape) < 0.10) * rng.lognormal(3.0, 1.0, shape)
        revenue.append(_sums(y))
        pre = rng.normal(10.0, 2.0, shape)
        post = 0.7 * pre + rng.normal(3.0, 1.5, shape)
        cuped.append(np.concatenate([_sums(post), _sums(pre), (pre * post).sum(axis=-1)[..., None]], axis=-1))
    return np.concatenate(revenue), np.concatenate(cuped)


def _mean_aa(rng: np.random.Generator, runs: int, bayes_runs: int) -> list[Row]:
    revenue, cuped_sums = _mean_metric_sums(rng, runs)
    n = MEAN_USERS
    arms = [[SampleStats(n, *revenue[i, j]) for j in (0, 1)] for i in range(runs)]
    welch = np.array([welch_ttest(c, t).significant for c, t in arms])
    ctw, ships = [], []
    for c, t in arms[:bayes_runs]:
        b = gaussian_test(c.estimate(), t.estimate(), ci_level=2 * 0.95 - 1)
        ctw.append(b.chance_to_win is not None and b.chance_to_win >= 0.95)
        ships.append(ctw[-1] and bayesian_call(b.chance_to_win, b.expected_loss, b.expected_loss_control, c.mean))
    cuped = np.array([
        cuped_ttest(*(CupedStats(SampleStats(n, *cuped_sums[i, j, :2]), *cuped_sums[i, j, 2:]) for j in (0, 1)))
        .significant
        for i in range(runs)
    ])
    rate = float(np.mean(ships))
    return [
        _fpr_row("A/A fixed horizon", "frequentist, skewed revenue (Welch t)", "p < 0.05", welch),
        _fpr_row("A/A fixed horizon", "frequentist, CUPED (cuped-t)", "p < 0.05", cuped),
        _fpr_row("A/A fixed horizon", "bayesian, gaussian (revenue)", "chance to win >= 95%", np.array(ctw)),
        Row("A/A fixed horizon", "bayesian, gaussian (revenue)", "ships: ctw >= 95% and loss <= 0.25%", rate,
            _se(rate, len(ships)), "(the loss limit only lowers it)", None),
    ]


def _exact_size() -> Row:
    """Fisher's test at 40 users per arm and a 10% rate: its exact size, summed over every table."""
    n = EXACT_USERS
    pmf = stats.binom.pmf(np.arange(n + 1), n, EXACT_RATE)
    size = 0.0
    for c in range(n + 1):
        for t in range(n + 1):
            r = proportions_test(SampleStats.binomial(n, c), SampleStats.binomial(n, t))
            if r.significant:
                size += float(pmf[c] * pmf[t])
    return Row("A/A fixed horizon", f"frequentist, exact (Fisher, {n}/arm at {EXACT_RATE:.0%})",
               "p < 0.05 (exact size)", size, 0.0, "<= 0.05 (exact)", size <= ALPHA)


# ------------------------------------------------------------------------------ peeking


@dataclass(frozen=True)
class Looks:
    """Cumulative conversions at each look, and the relative lift's moments the engines test: the
    fixed test's delta-method lift, and the sequential tests' log ratio (``RelativeMoments``)."""

    users: np.ndarray  # per arm, at each look
    xc: np.ndarray
    xt: np.ndarray
    lift: np.ndarray
    var: np.ndarray
    df: np.ndarray
    log_ratio: np.ndarray
    log_var: np.ndarray

    @classmethod
    def simulate(cls, rng: np.random.Generator, runs: int, planned: int, treatment_rate: float) -> Looks:
        users = np.round(np.arange(1, LOOKS + 1) / LOOKS * planned).astype(np.int64)
        inc = np.diff(np.concatenate([[0], users]))
        xc = np.cumsum(rng.binomial(inc, BASE, size=(runs, LOOKS)), axis=1)
        xt = np.cumsum(rng.binomial(inc, treatment_rate, size=(runs, LOOKS)), axis=1)
        pc, pt = xc / users, xt / users
        vm_c, vm_t = pc * (1 - pc) / users, pt * (1 - pt) / users
        lift, var = delta_relative(pc, vm_c, pt, vm_t)
        log_ratio, log_var = log_relative(pc, vm_c, pt, vm_t)
        return cls(users, xc, xt, lift, var, satterthwaite(vm_c, users, vm_t, users), log_ratio, log_var)

    def arms(self, run: int, look: int) -> tuple[SampleStats, SampleStats]:
        n = int(self.users[look])
        return SampleStats.binomial(n, int(self.xc[run, look])), SampleStats.binomial(n, int(self.xt[run, look]))


def _fixed_p(looks: Looks) -> np.ndarray:
    """The default fixed-horizon test (relative Welch t) at every look."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return tail_probability(looks.lift / np.sqrt(looks.var), "two-sided", looks.df)


def _gs_reject(looks: Looks, planned: int) -> np.ndarray:
    bounds = np.array(lan_demets_boundaries(looks.users / planned, ALPHA).boundaries)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.any(np.abs(looks.log_ratio / np.sqrt(looks.log_var)) >= bounds, axis=1)


def _msprt_p(looks: Looks, planned: int, ratio: float) -> np.ndarray:
    """Always-valid p after every look; τ² from the plan as :func:`analysis.msprt.msprt_test` sets it."""
    tau2 = ratio * looks.log_var * looks.users / planned
    return msprt_p_values(looks.log_ratio, looks.log_var, tau2)


def _check_against_engines(looks: Looks, planned: int, ratio: float) -> None:
    """The array arithmetic above is the engines' own: re-check a few runs through the scalar API."""
    fixed, always = _fixed_p(looks), _msprt_p(looks, planned, ratio)
    gs_info = looks.users / planned
    for run, look in ((0, 0), (1, LOOKS // 2), (2, LOOKS - 1)):
        c, t = looks.arms(run, look)
        r: FrequentistResult = proportions_test(c, t)
        assert math.isclose(r.p_value or 0.0, float(fixed[run, look]), rel_tol=1e-9, abs_tol=1e-12), "fixed"
        m = msprt_test(c.estimate(binomial=True), t.estimate(binomial=True), ALPHA,
                       horizon_per_arm=planned, mixing_ratio=ratio)
        once = float(msprt_p_values(looks.log_ratio[run, look: look + 1], looks.log_var[run, look: look + 1],
                                    ratio * looks.log_var[run, look] * looks.users[look] / planned)[0])
        assert math.isclose(m.p_value or 0.0, once, rel_tol=1e-9, abs_tol=1e-12), "msprt"
        assert always[run, look] <= once + 1e-15
    c, t = looks.arms(0, LOOKS - 1)
    gs = group_sequential_readout(c.estimate(binomial=True), t.estimate(binomial=True), tuple(gs_info), ALPHA)
    assert gs.significant == bool(abs(looks.log_ratio[0, -1] / math.sqrt(looks.log_var[0, -1])) >= gs.boundary), "gs"
    assert math.isclose(gs.z_rel or 0.0, looks.log_ratio[0, -1] / math.sqrt(looks.log_var[0, -1]), rel_tol=1e-9)


def _peeking(rng: np.random.Generator, runs: int, planned: int, label: str, targets: bool) -> list[Row]:
    """A/A (with ``targets``) and +10% runs over 14 looks; the mSPRT tuned as ``--sequential msprt
    --planned-users N --looks 14 --mde 0.10`` tunes it."""
    p_t = BASE * (1 + LIFT)
    log_var = (p_t * (1 - p_t) / p_t**2 + BASE * (1 - BASE) / BASE**2) / planned
    ratio = power_optimal_ratio(planned_drift(math.log1p(LIFT), log_var, planned, planned, ALPHA, POWER), LOOKS, ALPHA)
    msprt_name = f"mSPRT (tau^2/v = {ratio:.1f})"
    rows: list[Row] = []
    if targets:
        null, theory = Looks.simulate(rng, runs, planned, BASE), Theory.at(planned, BASE, ratio)
        _check_against_engines(null, planned, ratio)
        naive = np.any(_fixed_p(null) < ALPHA, axis=1)
        section = f"A/A, {LOOKS} peeks {label}"
        rows += [
            Row(section, "naive fixed test at every look", "rejects at any of 14 looks", float(np.mean(naive)),
                _se(float(np.mean(naive)), runs), "(inflated: the problem)", None, theory.naive),
            _sequential_row(section, "group-sequential (OBF)", _gs_reject(null, planned), theory.group),
            _sequential_row(section, msprt_name, _msprt_p(null, planned, ratio)[:, -1] < ALPHA, theory.msprt),
        ]
    lifted, theory = Looks.simulate(rng, runs, planned, BASE * (1 + LIFT)), Theory.at(planned, BASE * (1 + LIFT), ratio)
    fixed = _fixed_p(lifted)[:, -1] < ALPHA
    section = f"power at +{LIFT:.0%}, {LOOKS} looks {label}"
    rate = float(np.mean(fixed))
    return [
        *rows,
        Row(section, "fixed test, read once at the plan", "p < 0.05 at the last look", rate, _se(rate, runs), "-",
            None, theory.fixed),
        _ratio_row(section, "group-sequential (OBF) vs fixed", _gs_reject(lifted, planned), fixed,
                   GS_POWER_TARGET if targets else None, theory.group / theory.fixed),
        _ratio_row(section, f"{msprt_name} vs fixed", _msprt_p(lifted, planned, ratio)[:, -1] < ALPHA, fixed,
                   MSPRT_POWER_TARGET if targets else None, theory.msprt / theory.fixed),
    ]


# ------------------------------------------------------------------------------ command


def calibrate(runs: int, seed: int = SEED, bayes_runs: int = BAYES_RUNS) -> list[Row]:
    """Every row of the table; ``bayes_runs`` caps the Bayesian rows (~30 ms a run)."""
    rng = np.random.default_rng(seed)
    planned = sample_size_proportions(BASE, LIFT, ALPHA, POWER)
    bayes_runs = min(runs, bayes_runs)
    steps: list[Callable[[], list[Row]]] = [
        lambda: _binomial_aa(rng, runs, planned, bayes_runs),
        lambda: _mean_aa(rng, runs, bayes_runs),
        lambda: [_exact_size()],
        lambda: _peeking(rng, runs, planned, f"up to {planned:,}/arm (planned)", targets=True),
        lambda: _peeking(rng, runs, LOOKS * ISSUE_USERS_PER_DAY, f"of {ISSUE_USERS_PER_DAY:,}/arm/day", targets=False),
    ]
    return [row for step in steps for row in step()]


def render(rows: Sequence[Row]) -> str:
    return table(
        ["section", "engine", "counted", "rate", "MC SE", "theory", "target", "met"],
        [[r.section, r.engine, r.counted, f"{r.rate:.4f}", f"{r.se:.4f}",
          "-" if r.theory is None else f"{r.theory:.4f}", r.target,
          "-" if r.met is None else ("yes" if r.met else "NO")]
         for r in rows],
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench calibration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4000, help="simulated experiments per scenario")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.runs < 50:
        parser.error("--runs must be at least 50")
    started = time.perf_counter()
    rows = calibrate(args.runs, args.seed)
    seconds = time.perf_counter() - started
    missed = [r for r in rows if r.met is False]
    if args.json:
        print(json.dumps({"runs": args.runs, "seed": args.seed, "seconds": round(seconds, 1),
                          "rows": [asdict(r) for r in rows], "targets_met": not missed}, indent=2))
    else:
        print(render(rows))
        verdict = "all met" if not missed else "MISSED: " + ", ".join(r.engine for r in missed)
        print(f"\n{args.runs} runs per scenario (Bayesian rows {min(args.runs, BAYES_RUNS)}), seed {args.seed}, "
              f"{seconds:.0f} s; targets {verdict}")
    return 0 if not missed else 1
