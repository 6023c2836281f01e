"""Which test should decide interleaving: candidate rules on the same rehearsals of the demo world.

    python -m bench interleaving-rules [--quick] [--json] [--pool 2000] [--rehearsals 4000] [--seed 17]
                                       [--visits 1 | --visit-days 14]

The sensitivity bench's pairs and nulls (:func:`bench.sensitivity.build_benches`), and for each pair:

1. The law of a user's credit difference d (a 400,000-user pilot): the share with d = 0, quantiles of
   |d|, the share of Σd² held by the top 5% of users (heavy tails), and the normal approximation's
   users for 80% power of each rule (null variance).
2. Power of each rule on the *same* rehearsals at six user counts around the readout rule's N80,
   so the rules differ only by how they decide; N at 80% fitted as the sensitivity bench fits it
   (:func:`bench.sensitivity.fit_n80`), with a parametric bootstrap of the ratio to the readout's.
3. False positives of each rule on the balanced null and the exploring A/A at the readout rule's
   N80 of the pair.

The rules: the readout's Wilcoxon signed-rank test (``analysis.interleaving``), the t-test of the mean
d, the exact sign test, the sign-flip (permutation) test of the sum of d (exact under the null
team draft creates: each user's d symmetric about 0), and an *oracle*: the sign-flip test whose
weights are the pilot's true log-odds that a user with |d| = k prefers B over A — the most powerful
test of the signs given the |d| against the pair's true alternative (Neyman-Pearson), which no real
test can know: a bound on what any rule over users can gain.  A measurement, not a tuning
target: every rule is applied to every pair alike.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np

from analysis.interleaving import mean_difference_test, sign_test_p_value, signed_counts, signed_rank_test
from bench.harness import table
from bench.sensitivity import (
    ALPHA,
    BOOTSTRAP,
    PAIRS,
    Z_ALPHA,
    Z_POWER,
    Options,
    build_benches,
    fit_n80,
    rehearsal_parser,
)
from engine.simulator.rehearsal_designs import RehearsalBench

SEED = 17  # another pool than the sensitivity bench's
PILOT_USERS = 400_000
GRID = (0.6, 0.75, 0.9, 1.0, 1.15, 1.35)
FLIPS = 2_000  # Monte-Carlo sign flips per rehearsal for the permutation rules
READOUT = "signed ranks (readout)"
RULES = (READOUT, "t-test", "sign test", "sign flip of Σd", "oracle")
NULLS = ("balanced null", "A/A exploring")
Rule = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # d (rehearsals × users) -> p, direction


def _flip_p(weights: np.ndarray, observed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two-sided Monte-Carlo p of ``Σ sign·weight`` against random sign flips, per rehearsal (rows)."""
    flips = rng.choice(np.array([-1.0, 1.0]), size=(FLIPS, weights.shape[-1]))
    beyond = np.abs(weights @ flips.T) >= np.abs(observed)[:, None] - 1e-9
    return (1.0 + beyond.sum(axis=1)) / (FLIPS + 1.0)


def rules(log_odds: np.ndarray, rng: np.random.Generator) -> dict[str, Rule]:
    """Each rule as a function of the rehearsals' credit differences; ``log_odds`` the oracle's weights."""
    def ranks(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        test = signed_rank_test(*signed_counts(d))
        return np.nan_to_num(test.p_value, nan=1.0), np.sign(test.z)

    def t_test(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        test = mean_difference_test(d.sum(-1), (d * d).sum(-1), d.shape[-1])
        return np.nan_to_num(test.p_value, nan=1.0), np.sign(test.mean)

    def sign(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wins, losses = (d > 0).sum(-1), (d < 0).sum(-1)
        return sign_test_p_value(wins, wins + losses), np.sign(wins - losses)

    def flip_sum(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _flip_p(np.abs(d).astype(float), d.sum(-1).astype(float), rng), np.sign(d.sum(-1))

    def oracle(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weights = log_odds[np.minimum(np.abs(d), log_odds.size - 1)]
        observed = (np.sign(d) * weights).sum(-1)
        return _flip_p(weights, observed, rng), np.sign(observed)

    return dict(zip(RULES, (ranks, t_test, sign, flip_sum, oracle), strict=True))


def law_of_d(d: np.ndarray) -> dict[str, object]:
    """The pilot's credit differences: zeros, tails, and each rule's normal approximation of N80."""
    a = np.abs(d).astype(float)
    squares = np.sort(a**2)[::-1]
    values = np.unique(a[a > 0])
    # Σ_k P(|d| = k)·(2p_k − 1)²: the per-user information of the best test of the signs given |d|
    information = sum(((d == k).sum() - (d == -k).sum()) ** 2 / (a == k).sum() for k in values) / d.size
    z2 = (Z_ALPHA + Z_POWER) ** 2
    return {
        "zero_share": float(np.mean(d == 0)),
        "abs_quantiles_90_99_max": [float(np.quantile(a, 0.9)), float(np.quantile(a, 0.99)), float(a.max())],
        "top_5pct_share_of_squares": float(squares[: max(1, d.size // 20)].sum() / squares.sum()),
        "approximation": {"t-test": z2 * float(np.mean(a**2)) / float(d.mean()) ** 2,
                          "sign test": z2 * float(np.mean(a > 0)) / float(np.mean(np.sign(d))) ** 2,
                          "oracle": z2 / float(information)},
    }


def oracle_log_odds(d: np.ndarray) -> np.ndarray:
    """Per |d| = k: log(users with d = +k / users with d = −k) — the odds that such a user prefers the
    side ``d`` counts positive — smoothed by a half; index 0 unused."""
    top = int(np.abs(d).max())
    return np.array([0.0] + [math.log(((d == k).sum() + 0.5) / ((d == -k).sum() + 0.5)) for k in range(1, top + 1)])


def draw_d(bench: RehearsalBench, users: int, rehearsals: int, rng: np.random.Generator) -> np.ndarray:
    a, b = bench.interleaving_credits(*bench.draw_users((rehearsals, users), rng), rng)
    return (b - a).astype(np.int64)


def measure(options: Options, rehearsals: int, log: Callable[[str], None]) -> dict[str, object]:
    rng = np.random.default_rng(options.seed)
    started = time.perf_counter()
    benches, _ = build_benches(options, rng, log)
    out: dict[str, object] = {"options": asdict(options), "rehearsals": rehearsals}
    pairs: dict[str, dict[str, object]] = {}
    for name in PAIRS:
        bench = benches[name]
        truth_c, truth_t = bench.truth()
        better = 1 if truth_t > truth_c else -1
        pilot = draw_d(bench, PILOT_USERS, 1, rng)[0]
        law = law_of_d(pilot)
        candidates = rules(oracle_log_odds(pilot), rng)  # the same rules on the nulls below
        guess = float(np.mean(list(law["approximation"].values())))  # type: ignore[attr-defined]
        users = np.unique(np.maximum(4, np.rint(np.asarray(GRID) * guess)).astype(int))
        hits: dict[str, list[np.ndarray]] = {rule: [] for rule in RULES}  # per user count: rehearsals right
        for n in users:
            d = draw_d(bench, int(n), rehearsals, rng)
            for rule, decide in candidates.items():
                p, direction = decide(d)
                hits[rule].append((p < ALPHA) & (direction == better))
        power = {rule: [float(h.mean()) for h in hits[rule]] for rule in RULES}
        n80 = {rule: fit_n80(users, np.asarray(power[rule]), rehearsals) for rule in RULES}
        # paired bootstrap: the same resampled rehearsals for every rule
        draws = [rng.integers(0, rehearsals, size=(BOOTSTRAP // 4, rehearsals)) for _ in users]
        boot = {rule: np.array([fit_n80(users, np.array([h[idx[b]].mean() for h, idx in zip(hits[rule], draws,
                                                                                            strict=True)]), rehearsals)
                                for b in range(BOOTSTRAP // 4)]) for rule in RULES}
        ratio = {rule: (float(np.median(boot[rule] / boot[READOUT])),
                        tuple(float(x) for x in np.percentile(boot[rule] / boot[READOUT], [2.5, 97.5])))
                 for rule in RULES}
        at = max(4, round(n80[READOUT]))
        false_positives = {}
        for null in NULLS:
            d = draw_d(benches[null], at, rehearsals, rng)
            false_positives[null] = {rule: float(np.mean(decide(d)[0] < ALPHA)) for rule, decide in candidates.items()}
        pairs[name] = {"law_of_d": law, "users": users.tolist(), "power": power, "n80": n80,
                       "ratio_to_readout": ratio, "false_positives_at": at, "false_positives": false_positives}
        log(f"{name}: done in {time.perf_counter() - started:.0f} s")
    out["pairs"] = pairs
    out["seconds"] = time.perf_counter() - started
    return out


def report(result: dict[str, object]) -> str:
    pairs: dict[str, dict] = result["pairs"]  # type: ignore[assignment]
    se = math.sqrt(ALPHA * (1 - ALPHA) / int(result["rehearsals"]))  # type: ignore[call-overload]
    lines = [table(["pair", "users with d = 0", "|d| at 90%, 99%, max", "top 5% share of Σd²"], [
        [name, f"{row['law_of_d']['zero_share']:.0%}",
         ", ".join(f"{x:g}" for x in row["law_of_d"]["abs_quantiles_90_99_max"]),
         f"{row['law_of_d']['top_5pct_share_of_squares']:.0%}"] for name, row in pairs.items()]), ""]
    body = []
    for name, row in pairs.items():
        for rule in RULES:
            ratio, (low, high) = row["ratio_to_readout"][rule]
            fp, approximation = row["false_positives"], row["law_of_d"]["approximation"]
            body.append([name if rule == READOUT else "", rule, f"{row['n80'][rule]:.1f}",
                         f"{ratio:.3f} [{low:.3f}, {high:.3f}]",
                         f"{approximation[rule]:.1f}" if rule in approximation else "-",
                         f"{fp['balanced null'][rule]:.3f}, {fp['A/A exploring'][rule]:.3f} "
                         f"@ {row['false_positives_at']}"])
    lines.append(table(["pair", "rule", "users @80%", "÷ readout's", "normal approx.",
                        f"false positives: balanced, exploring A/A (± {se:.3f})"], body))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = rehearsal_parser("python -m bench interleaving-rules", __doc__.splitlines()[0],
                              "400-user pool, 500 rehearsals per point", "rehearsals per point (4,000)", SEED)
    args = parser.parse_args(argv)
    options = Options.quick(args.seed, args.visits) if args.quick else Options(seed=args.seed, visits=args.visits)
    options = replace(options, pool=args.pool or options.pool, visit_days=args.visit_days)
    rehearsals = args.rehearsals or (500 if args.quick else 4_000)
    result = measure(options, rehearsals, log=(lambda _: None) if args.json else print)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0

