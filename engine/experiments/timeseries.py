"""Results over time, for every engine: the readout's ``timeseries`` rows (pure; no I/O).

Each period's increments (``experiment_daily`` per UTC day, ``experiment_hourly`` per UTC hour) are
summed into the statistics as they stood at the end of that period, and the whole readout
(:func:`engine.experiments.results.build_readout`, the experiment's own engine and settings) is run
on them — so a row says what the readout would have said then.  Runs younger than
``HOURLY_UNDER_SECONDS`` are shown per hour (a day or two of days says little), older ones per day.

One row per period, arm and metric::

    {"period": "2026-12-02", "arm": "als", "metric": "ctr", "engine": "sequential",
     "users": 812, "mean": 0.041, "lift": 0.07, "ci": [-0.02, 0.16],   # the engine's interval
     "p_value": 0.21, "significant": false,                            # frequentist, sequential
     "boundary": 2.96, "look": 2,                                       # group-sequential
     "chance_to_win": 0.81,                                             # Bayesian
     "message": null}

The control's rows carry its users and mean and no lift.  A period without new data keeps the
statistics of the one before and says so in ``message``; a metric the analysis cannot read yet
(an arm with no users, a denominator of zero) carries the analysis' message instead of numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from engine.experiments.arm_stats import ArmStats, cumulate
from engine.experiments.metrics import METRICS
from engine.experiments.model import Experiment
from engine.experiments.results import build_readout, json_safe, phase_variants

HOURLY_UNDER_SECONDS = 2 * 86_400
Granularity = Literal["hour", "day"]
NO_DATA = "no new data in this period: the statistics of the period before"
NO_INTERVAL = "no interval yet: an arm has too few users or no variance"


def granularity(started_at: float, until: float) -> Granularity:
    return "hour" if until - started_at < HOURLY_UNDER_SECONDS else "day"


def periods(started_at: float, until: float, unit: Granularity) -> list[tuple[str, float]]:
    """Every UTC period from the one holding ``started_at`` to the one holding ``until``, with its end
    (``2026-12-02T04`` for hours, ``2026-12-02`` for days: the store's labels)."""
    step = 3_600 if unit == "hour" else 86_400
    first = int(started_at // step)
    last = int(max(until, started_at) // step)
    out = []
    for n in range(first, last + 1):
        start = dt.datetime.fromtimestamp(n * step, tz=dt.timezone.utc)
        label = start.strftime("%Y-%m-%dT%H") if unit == "hour" else start.strftime("%Y-%m-%d")
        out.append((label, float((n + 1) * step)))
    return out


def _treatment_fields(result: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "lift": result.lift,
        "ci": result.ci,
        "p_value": result.decisive_p_value,
        "significant": result.significant,
        "chance_to_win": result.chance_to_win,
    }
    if result.group_sequential is not None:
        fields["boundary"] = result.group_sequential.boundary
        fields["look"] = result.group_sequential.look
    return fields


def metric_rows(period: str, metric: Any, engine: str, names: Sequence[str],
                arms: Mapping[str, ArmStats], note: str | None) -> list[dict[str, Any]]:
    """The rows of one metric (a ``MetricResult``) at one period, one per arm."""
    rows = []
    readout = metric.readout
    means = {a.name: a.mean for a in readout.arms} if readout is not None else {}
    treated = {r.variant: r for r in readout.results} if readout is not None else {}
    for name in names:
        row: dict[str, Any] = {
            "period": period, "arm": name, "metric": metric.metric, "engine": engine,
            "users": arms.get(name, ArmStats()).n, "mean": means.get(name), "lift": None, "ci": None,
            "message": note if readout is not None else (metric.error or note),
        }
        if name in treated:
            row.update(_treatment_fields(treated[name]))
            if row["ci"] is None and row["message"] is None:
                row["message"] = "; ".join(treated[name].messages) or NO_INTERVAL
        spec = METRICS.get(metric.metric)
        if spec is not None and spec.kind == "ratio" and row["users"] and not arms[name].get(f"s:{spec.denominator}"):
            row["message"] = f"no {spec.denominator} in this arm yet: {metric.metric} is undefined here"
        rows.append(row)
    return rows


def timeseries_rows(
    exp: Experiment,
    increments: Sequence[tuple[str, float, Mapping[str, ArmStats]]],
    phase: int,
    epoch_weights: Mapping[int, Sequence[float]] | None = None,
    engine: str | None = None,
) -> list[dict[str, Any]]:
    """Rows (see the module docstring) from each period's increments, oldest first: (label, end, arms)."""
    names = [v.name for v in phase_variants(exp, phase)]
    rows: list[dict[str, Any]] = []
    totals = cumulate([arms for _, _, arms in increments])
    for (label, end, added), arms in zip(increments, totals, strict=True):
        note = None if any(a.values for a in added.values()) else NO_DATA
        if not any(a.n for a in arms.values()):
            rows += [{"period": label, "arm": n, "metric": None, "engine": engine or exp.engine, "users": 0,
                      "mean": None, "lift": None, "ci": None, "message": "no users exposed yet"} for n in names]
            continue
        readout = build_readout(exp, arms, phase, epoch_weights, engine=engine, now=end)
        for metric in readout.metrics.values():
            rows += metric_rows(label, metric, readout.engine, names, arms, note)
    return [json_safe(r) for r in rows]
