"""The Models page's "Offline check": a candidate's clicks estimated from the exploring logs before anyone
A/B tests it (``engine.experiments.offline_check``), laid out as cards, a table and a caption."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from engine.console.cards import MetricCard
from engine.data.event_log import EventLog
from engine.experiments.off_policy import LOW_SUPPORT, NoLogsError, OffPolicyResult
from engine.experiments.offline_check import NotDemoError, OfflineCheck
from engine.models.model_spec import SPEC_STAGES, ModelSpecError
from engine.models.registry import VersionRecord
from engine.runtime import Engine
from engine.serving.ranker_spec import RankerSpecError

ESTIMATOR_LABELS = {"ipw": "IPS", "snips": "SNIPS", "dr": "Doubly robust"}
HEADLINE = "snips"  # the estimate the cards and caption quote: bounded by the rewards, and tested on the world
MAX_SIMULATED = 200_000  # the console's bound (a minute or two); the CLI takes more


@dataclass(frozen=True)
class CheckOutcome:
    """A result, or the readable reason there is none."""

    result: OffPolicyResult | None = None
    message: str | None = None


def spec_choices(records: Sequence[VersionRecord]) -> list[str]:
    """Specs a candidate can be named by on the served dataset: each model's stages, then every version number."""
    names = sorted({r.model for r in records})
    staged = [f"{name}@{stage}" for name in names for stage in SPEC_STAGES
              if any(r.model == name and r.stage == stage for r in records)]
    numbered = [f"{r.model}@{r.number}" for r in records if r.number]
    return staged + [n for n in numbered if n not in staged]


def target_text(spec: str, params: str) -> str:
    """The policy spec from the chosen model spec and the typed serving parameters (``mmr_lambda=0.5,n=10``)."""
    params = params.strip().strip(",")
    return f"{spec}:{params}" if params else spec


def offline_check(engine: Engine) -> OfflineCheck:
    return OfflineCheck(engine.service, engine.registry, engine.dataset.name,
                        EventLog.for_dataset(engine.settings, engine.dataset.name), engine.world,
                        engine.settings.default_n)


def run_check(check: OfflineCheck, target: str, simulate: int = 0, seed: int | None = None) -> CheckOutcome:
    """Simulate first when asked (demo world only), then estimate; every refusal is a message."""
    if simulate and not 0 < simulate <= MAX_SIMULATED:
        return CheckOutcome(message=f"Simulate between 1 and {MAX_SIMULATED:,} lists here "
                                    "(`recops ope --simulate N` takes more).")
    try:
        if simulate:
            check.simulate(simulate, seed=seed)
        return CheckOutcome(result=check.run(target, seed=seed, n_bootstrap=500))
    except NoLogsError:
        hint = (" Tick “simulate logged impressions first” to rehearse on the demo world." if check.world is not None
                else " Run an experiment arm with `exploration` in its serving parameters to collect some.")
        return CheckOutcome(message="No exploring impressions are logged for this dataset yet, so there is "
                                    "nothing to estimate from." + hint)
    except (ModelSpecError, RankerSpecError, NotDemoError) as exc:
        return CheckOutcome(message=str(exc))


def result_cards(result: OffPolicyResult) -> list[MetricCard]:
    headline = result.estimates.get(HEADLINE) or next(iter(result.estimates.values()))
    lo, hi = headline["ci"]
    cards = [
        MetricCard("Candidate (estimated)", f"{headline['value']:.3f}",
                   f"Expected clicks per list; 95% interval {lo:.3f} – {hi:.3f}"),
        MetricCard("Logging policy (observed)", f"{result.logging_value:.3f}",
                   "Clicks per list the exploring arm actually earned"),
    ]
    if result.truth is not None:
        cards.append(MetricCard("Truth (demo world)", f"{result.truth:.3f}",
                                "The candidate's expected clicks per list by the world's click law"))
    return cards


def result_frame(result: OffPolicyResult) -> pd.DataFrame:
    rows = [{"estimate": ESTIMATOR_LABELS.get(name, name), "clicks per list": est["value"],
             "95% CI low": est["ci"][0], "95% CI high": est["ci"][1]} for name, est in result.estimates.items()]
    rows.append({"estimate": "Logging policy (observed)", "clicks per list": result.logging_value,
                 "95% CI low": None, "95% CI high": None})
    if result.truth is not None:
        rows.append({"estimate": "Truth (demo world)", "clicks per list": result.truth,
                     "95% CI low": None, "95% CI high": None})
    return pd.DataFrame(rows)


def caption(result: OffPolicyResult) -> str:
    headline = result.estimates.get(HEADLINE) or next(iter(result.estimates.values()))
    lo, hi = headline["ci"]
    value, logged = headline["value"], result.logging_value
    if lo > logged:
        verdict = "more clicks than the logging policy earned"
    elif hi < logged:
        verdict = "fewer clicks than the logging policy earned"
    else:
        verdict = "about as many clicks as the logging policy earned (the interval includes it)"
    text = (f"Had `{result.target}` served the {result.requests:,} logged lists' users, it would have earned about "
            f"{value:.3f} clicks per list (95% interval {lo:.3f} – {hi:.3f}): {verdict}, {logged:.3f}.")
    if result.truth is not None:
        text += f" The demo world's truth is {result.truth:.3f}."
    if result.mean_weight < LOW_SUPPORT:
        text += (f" Caution: the exploring logs rarely showed this candidate's items where it would put them "
                 f"(mean weight {result.mean_weight:.2f}, 1 when fully covered), so the estimate leans on few "
                 "lists and may be biased.")
    return text
