"""Sensitivity of A/B and interleaving, measured by rehearsals on the demo world's ground truth.

    python -m bench sensitivity [--quick] [--json] [--pool 2000] [--rehearsals 400] [--seed 16]
                                [--visits 1 | --visit-days 14]

For two pairs of rankers — one clearly better (ALS over popularity), one subtly better (ALS without
the default MMR's λ 0.7, at λ 0.75) — and each design, the users needed to pick the truly better
ranker (significant at 5%, in the truth's direction) with 80% power:

1. Each ranker's list is computed once for each user of a pool drawn from the world (the real
   service, no cache), read through the world's click law; each pair gets 16 team-draft merges
   per pool user.  Rehearsals draw their users from the pool with replacement.
2. A normal approximation from the pool's moments (A/B) or from one large pilot rehearsal
   (interleaving: the mean and variance of the users' credit differences) places a grid of user
   counts around the answer; at each, ``--rehearsals`` rehearsals measure the power.
3. The power curve of a two-sided test with drift ∝ √N is ``Φ(c√N − z_{α/2})`` (the far tail is
   negligible at 80%), so ``probit(power) + z_{α/2} = c√N`` is fitted through the grid by weighted
   least squares (weights: the inverse binomial variance of each probit, times a kernel around the
   target), and ``N80 = ((z_{α/2} + z_{0.8}) / c)²``; a run at that N joins the grid and the curve
   is refitted.  A verification run at the final N80 reports the power measured there.
4. Uncertainty: a parametric bootstrap of every grid point's hits (binomial at its measured power),
   refitted: medians and 95% intervals of N80 and of the ratio A/B ÷ interleaving.

Also measured: each design's false-positive rate, at the subtle pair's interleaving N80 and at its
A/B N80, under two nulls: A/A (ALS on both sides — for interleaving every click falls in the common
prefix, credited to neither, so it cannot be significant: the checks that matter are the next two),
*A/A exploring* (the same ALS on both sides with Plackett-Luce exploration at temperature 0.3, each
side's list drawn independently, so the lists differ while neither side is better), and
the *balanced null*: the subtle pair with every pool user present twice, once in each orientation,
so the two sides are exactly equally good while their lists differ as much as the real pair's (the
test's calibration where it has clicks to count).  And how often interleaving and A/B agree in
direction among paired rehearsals (same grid step or verification run) where both are significant.
Goals (issue 16): interleaving needs ≤ 1/10 of A/B's users; its false-positive rate within
[0.03, 0.07] (exploring A/A and balanced null; at most 0.07 on A/A); agreement ≥ 95%.  Exits 1 when a goal is missed
— a measurement, not a tuning target.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import special

from bench.harness import bench_engine, table
from engine.data.demo import DemoWorld
from engine.models.model_spec import ModelSpec
from engine.runtime import Engine
from engine.serving.ranker_spec import RankerSpec
from engine.serving.serving_params import Exploration, ServingParams
from engine.simulator.rehearsal import Ranker, interleave, list_clicks, served_lists, world_visit_law
from engine.simulator.rehearsal_designs import (
    DESIGNS,
    DRAFTS,
    Decisions,
    Design,
    ListClicks,
    RehearsalBench,
    VisitLaw,
)

SEED = 16
ALPHA, POWER = 0.05, 0.80
Z_ALPHA = float(special.ndtri(1 - ALPHA / 2))
Z_POWER = float(special.ndtri(POWER))
PAIRS = {  # name: (control, treatment)
    "clear": ("popularity", "als"),
    "subtle": ("als", "als:mmr_lambda=0.75"),
}
AA_SPEC = "als"
AA_EXPLORATION = Exploration(method="plackett_luce", temperature=0.3)  # the exploring A/A's draw, on both sides
NULL_PAIR = "subtle"  # the balanced null: this pair, each user in both orientations
GRID = (0.5, 0.7, 0.85, 1.0, 1.2, 1.45, 2.0)  # multiples of the approximation's N
PILOT_USERS = 200_000
BOOTSTRAP = 2_000
RATIO_GOAL, FPR_GOAL, AGREEMENT_GOAL = 0.1, (0.03, 0.07), 0.95


@dataclass(frozen=True)
class Options:
    pool: int = 2_000
    rehearsals: int = 400
    aa_rehearsals: int = 2_000
    drafts: int = DRAFTS
    seed: int = SEED
    visits: int = 1
    visit_days: float | None = None  # instead of ``visits``: the world's visit law over this many days

    @classmethod
    def quick(cls, seed: int = SEED, visits: int = 1) -> Options:
        return cls(pool=400, rehearsals=120, aa_rehearsals=600, drafts=8, seed=seed, visits=visits)

    def visit_law(self, world: DemoWorld, users: list[str]) -> int | VisitLaw:
        """Every user ``visits`` times, or the world's law: Poisson visits at each user's rate."""
        return world_visit_law(world, users, self.visit_days) if self.visit_days else self.visits


@dataclass(frozen=True)
class PowerCurve:
    """Power measured on a grid of user counts, and the fitted N at 80%."""

    users: list[int]
    power: list[float]
    rehearsals: int
    n80: float
    n80_ci: tuple[float, float]
    verified_users: int
    verified_power: float
    boot: np.ndarray  # bootstrap N80s (not serialised)

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("boot")
        return out


def fit_n80(users: np.ndarray, power: np.ndarray, rehearsals: int) -> float:
    """``N80`` from ``probit(power) + z = c√N`` fitted by weighted least squares through the origin.

    Weights: the inverse binomial variance of each probit, times a kernel around probit(0.8), so the
    points near the target decide (the far tail and the tests' discreteness bend the curve elsewhere).
    """
    clipped = np.clip(power, 0.5 / rehearsals, 1 - 0.5 / rehearsals)
    probit = special.ndtri(clipped)
    y = probit + Z_ALPHA
    x = np.sqrt(users)
    density = np.exp(-0.5 * probit**2) / math.sqrt(2 * math.pi)
    weight = density**2 / (clipped * (1 - clipped)) * np.exp(-0.5 * (probit - Z_POWER) ** 2)
    usable = (power > 0.02) & (power < 0.98)  # the flat ends say little about c
    if usable.sum() < 2:
        usable = np.ones_like(usable)
    c = float(np.sum((weight * x * y)[usable]) / np.sum((weight * x * x)[usable]))
    return ((Z_ALPHA + Z_POWER) / c) ** 2 if c > 0 else math.inf


def measure_curve(
    run: Callable[[int, int], Decisions], truth_direction: int, guess: float, options: Options,
    rng: np.random.Generator,
) -> tuple[PowerCurve, list[Decisions]]:
    """Power on the grid around ``guess``, the fitted N80 with its bootstrap, and a run at N80."""
    users = np.unique(np.maximum(2, np.rint(np.asarray(GRID) * guess)).astype(int))
    runs = [run(int(n), options.rehearsals) for n in users]
    paired = list(runs)  # the grid's runs, in the grid's order, for pairing with the other design's
    # one refinement: a run at the first fit's N joins the grid where the curve matters most
    first = fit_n80(users, _power(runs, truth_direction), options.rehearsals)
    if math.isfinite(first) and round(first) not in users:
        users = np.append(users, max(2, round(first)))
        runs.append(run(int(users[-1]), options.rehearsals))
    order = np.argsort(users)
    users, runs = users[order], [runs[k] for k in order]
    power = _power(runs, truth_direction)
    n80 = fit_n80(users, power, options.rehearsals)
    boot_power = rng.binomial(options.rehearsals, power, size=(BOOTSTRAP, power.size)) / options.rehearsals
    boot = np.array([fit_n80(users, p, options.rehearsals) for p in boot_power])
    verified_users = int(max(2, round(n80))) if math.isfinite(n80) else int(users[-1])
    verified = run(verified_users, options.rehearsals)
    curve = PowerCurve(
        users=users.tolist(), power=power.tolist(), rehearsals=options.rehearsals, n80=n80,
        n80_ci=(float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))),
        verified_users=verified_users, verified_power=float(np.mean(verified.direction == truth_direction)),
        boot=boot,
    )
    return curve, [*paired, verified]


def truth_z(bench: RehearsalBench) -> float:
    """The pool's mean per-user difference of expected clicks over its standard error: is it real?"""
    diff = bench.treatment.expected_clicks - bench.control.expected_clicks
    se = float(diff.std(ddof=1)) / math.sqrt(diff.size)
    return float(diff.mean()) / se if se > 0 else math.inf


def _power(runs: list[Decisions], truth_direction: int) -> np.ndarray:
    """Per run: the share of rehearsals significant in the truth's direction."""
    return np.array([np.mean(d.direction == truth_direction) for d in runs])


def ab_guess(bench: RehearsalBench) -> float:
    """Total users for 80% power by the normal approximation, from the pool's per-user moments and
    the users' visits (a sum of ``v`` views: mean ``E[v]·m``, second moment ``E[v]·w + E[v²]·m²``)."""
    weight, visits, visits_sq = bench.visit_moments()
    moments = []
    for lists in (bench.control, bench.treatment):
        p = lists.probability
        m, w = p.sum(1), (p * (1 - p)).sum(1)
        mean = float(weight @ (visits * m))
        moments.append((mean, float(weight @ (visits * w + visits_sq * m**2)) - mean**2))
    (m_c, v_c), (m_t, v_t) = moments
    per_arm = (Z_ALPHA + Z_POWER) ** 2 * (v_c + v_t) / max((m_t - m_c) ** 2, 1e-12)
    return 2 * per_arm


def interleaving_guess(bench: RehearsalBench, rng: np.random.Generator) -> tuple[float, float, float]:
    """Users for 80% power by the mean credit difference's normal approximation, from one large pilot
    rehearsal (only where the grid starts: the rehearsals decide by the readout's rule);
    also the pilot's preference share and share of users with a preference."""
    a, b = bench.interleaving_credits(*bench.draw_users((PILOT_USERS,), rng), rng)
    d = (b - a).astype(float)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    needed = (Z_ALPHA + Z_POWER) ** 2 * float(d.var()) / max(float(d.mean()) ** 2, 1e-12)
    return needed, wins / max(wins + losses, 1), (wins + losses) / PILOT_USERS


def _pool_lists(
    engine: Engine, world: DemoWorld, specs: list[str], users: list[str], width: int
) -> dict[str, tuple[list[list[str]], ListClicks]]:
    """Each ranker's list for every pool user, once, from the service; and the click law's view of them."""
    out = {}
    for text in specs:
        lists = served_lists(engine, Ranker.resolve(engine, RankerSpec.parse(text)), users)
        out[text] = (lists, ListClicks(list_clicks(world, users, lists, width)))
    return out


def balanced_null(
    world: DemoWorld, users: list[str], lists: dict[str, tuple[list[list[str]], ListClicks]], pair: tuple[str, str],
    width: int, options: Options, rng: np.random.Generator,
) -> RehearsalBench:
    """The pair with every user twice, once as (control, treatment) and once swapped: the pool's two
    sides are exactly equally good (team draft treats A and B alike), their lists as different as the pair's."""
    return _both_orientations(world, users, lists[pair[0]], lists[pair[1]], width, options, rng)


def exploring_aa(
    engine: Engine, world: DemoWorld, users: list[str], width: int, options: Options, rng: np.random.Generator
) -> RehearsalBench:
    """The same ranker on both sides, as the issue's A/A asks, made one whose lists differ: ALS with
    Plackett-Luce exploration, each side's list drawn independently for every user (the service draws
    a new list per call), so clicks below the common prefix exist and the test has something to count.
    A pool's two draws are not equally good by chance, so each user is present in both orientations,
    as in :func:`balanced_null`."""
    spec = RankerSpec(ModelSpec.parse(AA_SPEC), ServingParams(exploration=AA_EXPLORATION))
    ranker = Ranker.resolve(engine, spec)
    draws = []
    for _ in range(2):
        lists = served_lists(engine, ranker, users)
        draws.append((lists, ListClicks(list_clicks(world, users, lists, width))))
    return _both_orientations(world, users, draws[0], draws[1], width, options, rng)


def _both_orientations(
    world: DemoWorld, users: list[str], side_c: tuple[list[list[str]], ListClicks],
    side_t: tuple[list[list[str]], ListClicks], width: int, options: Options, rng: np.random.Generator,
) -> RehearsalBench:
    (lists_c, clicks_c), (lists_t, clicks_t) = side_c, side_t
    side_a, side_b = lists_c + lists_t, lists_t + lists_c
    merged = interleave(world, users + users, side_a, side_b, width, options.drafts, rng)
    both = np.concatenate([clicks_c.probability, clicks_t.probability])
    swapped = np.concatenate([clicks_t.probability, clicks_c.probability])
    return RehearsalBench(ListClicks(both), ListClicks(swapped), merged, options.visit_law(world, users + users),
                          ALPHA)


def overlap(lists_a: list[list[str]], lists_b: list[list[str]]) -> float:
    """Mean share of a list's items that the other ranker's list also has."""
    return float(np.mean([len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(lists_a, lists_b, strict=True)]))


def _agreement(ab: list[Decisions], il: list[Decisions]) -> tuple[int, int]:
    """Paired rehearsals (same grid step, or both verification runs) where both designs are
    significant, and those agreeing."""
    both = agree = 0
    # grids of equal steps; a tiny guess can merge two steps, and then the extra runs go unpaired
    for a, b in zip([*ab[:-1][: len(il) - 1], ab[-1]], [*il[:-1][: len(ab) - 1], il[-1]], strict=True):
        sig = a.significant & b.significant
        both += int(sig.sum())
        agree += int((sig & (a.direction == b.direction)).sum())
    return both, agree


def _fmt_ci(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:,.0f}, {ci[1]:,.0f}]"


def build_benches(
    options: Options, rng: np.random.Generator, log: Callable[[str], None]
) -> tuple[dict[str, RehearsalBench], dict[str, float]]:
    """The rehearsal benches of the pairs, A/A, the balanced null and the exploring A/A for a pool of
    the world's users, and each pair's list overlap."""
    started = time.perf_counter()
    with bench_engine(n_items=5_000) as engine:
        world = engine.world
        assert world is not None
        users = [world.user_ids[i] for i in rng.choice(world.n_users, options.pool, replace=False)]
        width = engine.settings.default_n
        specs = list(dict.fromkeys([*[s for pair in PAIRS.values() for s in pair], AA_SPEC]))
        lists = _pool_lists(engine, world, specs, users, width)
        log(f"lists of {len(specs)} rankers for {options.pool:,} users in {time.perf_counter() - started:.0f} s")
        visits = options.visit_law(world, users)
        benches, overlaps = {}, {}
        for name, (control, treatment) in {**PAIRS, "A/A": (AA_SPEC, AA_SPEC)}.items():
            merged = interleave(world, users, lists[control][0], lists[treatment][0], width, options.drafts, rng)
            benches[name] = RehearsalBench(lists[control][1], lists[treatment][1], merged, visits, ALPHA)
            overlaps[name] = overlap(lists[control][0], lists[treatment][0])
        benches["balanced null"] = balanced_null(world, users, lists, PAIRS[NULL_PAIR], width, options, rng)
        benches["A/A exploring"] = exploring_aa(engine, world, users, width, options, rng)
    return benches, overlaps


def measure(options: Options, log: Callable[[str], None]) -> dict[str, object]:
    rng = np.random.default_rng(options.seed)
    started = time.perf_counter()
    benches, overlaps = build_benches(options, rng, log)
    pairs = {**PAIRS, "A/A": (AA_SPEC, AA_SPEC)}
    weight, mean_visits, _ = benches["A/A"].visit_moments()
    visits_per_user = float(weight @ mean_visits)
    log(f"visits per user: {visits_per_user:.2f} on average"
        + (f" (the world's law over {options.visit_days:g} days)" if options.visit_days else ""))
    rows: dict[str, dict[str, object]] = {}
    decisions: dict[tuple[str, Design], list[Decisions]] = {}
    for name in PAIRS:
        bench = benches[name]
        truth_c, truth_t = bench.truth()
        direction = 1 if truth_t > truth_c else -1
        il_guess, share, decided = interleaving_guess(bench, rng)
        guesses = {"ab": ab_guess(bench), "interleaving": il_guess}
        curves = {}
        for design in DESIGNS:
            t0 = time.perf_counter()
            run = functools.partial(bench.run, design, rng=rng)  # (users, rehearsals) -> Decisions
            curve, runs = measure_curve(run, direction, guesses[design], options, rng)
            curves[design], decisions[(name, design)] = curve, runs
            log(f"{name:<7} {design:<12} N80 {curve.n80:>10,.0f}  ({time.perf_counter() - t0:.1f} s)")
        ratio = curves["ab"].boot / curves["interleaving"].boot
        rows[name] = {
            "control": pairs[name][0], "treatment": pairs[name][1],
            "truth": {"control": truth_c, "treatment": truth_t, "lift": truth_t / truth_c - 1,
                      "difference_z": truth_z(bench)},
            "list_overlap": overlaps[name],
            "interleaving_pilot": {"preference_share": share, "decided_share": decided},
            "approximation": guesses,
            "ab": curves["ab"].to_dict(), "interleaving": curves["interleaving"].to_dict(),
            "ratio": {"median": float(np.median(ratio)),
                      "ci": (float(np.percentile(ratio, 2.5)), float(np.percentile(ratio, 97.5))),
                      "point": curves["ab"].n80 / curves["interleaving"].n80},
        }
    aa_rows: dict[str, dict[str, dict[str, float]]] = {}
    subtle = rows["subtle"]
    for null in ("A/A", "A/A exploring", "balanced null"):
        aa_rows[null] = {}
        for design in DESIGNS:
            users_at = round(subtle[design]["n80"])  # type: ignore[index]
            hits = benches[null].run(design, users_at, options.aa_rehearsals, rng).significant
            rate = float(hits.mean())
            aa_rows[null][design] = {"users": users_at, "rehearsals": options.aa_rehearsals,
                                     "false_positive_rate": rate,
                                     "se": math.sqrt(rate * (1 - rate) / options.aa_rehearsals)}
    both, agree = (sum(x) for x in zip(*(_agreement(decisions[(n, "ab")], decisions[(n, "interleaving")])
                                         for n in PAIRS), strict=True))
    ratio_ok = all(r["ratio"]["median"] >= 1 / RATIO_GOAL for r in rows.values())  # type: ignore[index]
    fpr = aa_rows["balanced null"]["interleaving"]["false_positive_rate"]
    exploring_fpr = aa_rows["A/A exploring"]["interleaving"]["false_positive_rate"]
    agreement = agree / both if both else None
    goals = {
        "interleaving_needs_at_most_a_tenth": ratio_ok,
        "interleaving_null_fpr_in_range": (FPR_GOAL[0] <= fpr <= FPR_GOAL[1]
                                           and FPR_GOAL[0] <= exploring_fpr <= FPR_GOAL[1]
                                           and aa_rows["A/A"]["interleaving"]["false_positive_rate"] <= FPR_GOAL[1]),
        "agreement_at_least_95pct": agreement is not None and agreement >= AGREEMENT_GOAL,
    }
    return {
        "options": asdict(options), "seconds": time.perf_counter() - started, "pairs": rows, "aa": aa_rows,
        "visits_per_user": visits_per_user,
        "agreement": {"both_significant": both, "agree": agree, "share": agreement}, "goals": goals,
    }


def report(result: dict[str, object]) -> str:
    pairs: dict[str, dict] = result["pairs"]  # type: ignore[assignment]
    body = []
    for name, row in pairs.items():
        for design in DESIGNS:
            c = row[design]
            body.append([name if design == "ab" else "", f"{row['control']} → {row['treatment']}"
                         if design == "ab" else "", f"{row['truth']['lift']:+.1%}" if design == "ab" else "",
                         design, f"{c['n80']:,.0f}", _fmt_ci(c["n80_ci"]),
                         f"{c['verified_power']:.2f} @ {c['verified_users']:,}",
                         f"{row['ratio']['median']:.1f} [{row['ratio']['ci'][0]:.1f}, {row['ratio']['ci'][1]:.1f}]"
                         if design == "interleaving" else ""])
    lines = [table(["pair", "rankers", "true lift", "design", "users @80%", "95% CI", "power measured",
                    "ratio A/B ÷ IL"], body), ""]
    for name, row in pairs.items():
        pilot = row["interleaving_pilot"]
        lines.append(f"{name}: true difference {row['truth']['difference_z']:.0f} standard errors of the pool's users; "
                     f"lists overlap {row['list_overlap']:.0%}; interleaved, {pilot['decided_share']:.0%} of "
                     f"users credit one side more, {pilot['preference_share']:.3f} of them the treatment")
    aa: dict[str, dict[str, dict]] = result["aa"]  # type: ignore[assignment]
    goal = {"A/A": "≤ 0.07", "A/A exploring": "in [0.03, 0.07]", "balanced null": "in [0.03, 0.07]"}
    lines.append("")
    lines.append(table(["null", "design", "users", "rehearsals", "false positives", "SE", "goal"], [
        [null if d == "ab" else "", d, f"{r['users']:,}", r["rehearsals"], f"{r['false_positive_rate']:.3f}",
         f"{r['se']:.3f}", goal[null] if d == "interleaving" else "-"]
        for null, by_design in aa.items() for d, r in by_design.items()]))
    agreement: dict = result["agreement"]  # type: ignore[assignment]
    share = agreement["share"]
    lines.append("")
    lines.append(f"direction agreement when both significant: {agreement['agree']:,} / "
                 f"{agreement['both_significant']:,} = {share:.3f}" if share is not None else
                 "direction agreement: no paired rehearsal where both were significant")
    goals: dict[str, bool] = result["goals"]  # type: ignore[assignment]
    lines.append("goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in goals.items()))
    return "\n".join(lines)


def rehearsal_parser(prog: str, description: str, quick: str, rehearsals: str, seed: int) -> argparse.ArgumentParser:
    """The flags of the benches that rehearse on the demo world (this one and ``interleaving-rules``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--pool", type=int, default=None, help="users whose lists are computed (2,000)")
    parser.add_argument("--rehearsals", type=int, default=None, help=rehearsals)
    parser.add_argument("--visits", type=int, default=1, help="visits per user, each showing a list (1)")
    parser.add_argument("--visit-days", type=float, default=None,
                        help="instead of --visits: the world's visit law (each user's history-based rate) over an "
                             "experiment of this many days; only users who visit enrol")
    return parser


def main(argv: list[str]) -> int:
    parser = rehearsal_parser("python -m bench sensitivity", __doc__.splitlines()[0],
                              "a small run (400 users, 120 rehearsals per point)", "rehearsals per grid point (400)",
                              SEED)
    args = parser.parse_args(argv)
    options = Options.quick(args.seed, args.visits) if args.quick else Options(seed=args.seed, visits=args.visits)
    options = replace(options, pool=args.pool or options.pool, rehearsals=args.rehearsals or options.rehearsals,
                      visit_days=args.visit_days)
    result = measure(options, log=(lambda _: None) if args.json else print)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report(result))
    return 0 if all(result["goals"].values()) else 1  # type: ignore[attr-defined]
