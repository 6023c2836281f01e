"""The readout's companions: ``health``, ``quality`` and ``timeseries`` of one phase, read from Redis.

The I/O half; the checks are ``engine.experiments.health``, the list metrics
``engine.experiments.quality`` and the periods ``engine.experiments.timeseries`` (pure functions).

    >>> ReadoutDiagnostics(store).report("pop-vs-als")
    {"health": [...], "quality": {"arms": [...], "overlap": ...}, "timeseries": [...], "timeseries_unit": "hour"}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.experiments.arm_stats import ArmStats, parse_stats
from engine.experiments.health import OTHER_EXPERIMENT_SAMPLE, HealthInputs, health_checks
from engine.experiments.model import Experiment, ExperimentError
from engine.experiments.quality import Catalog, Counterfactual, parse_entry, quality_block
from engine.experiments.results import expected_shares, phase_variants
from engine.experiments.store import ExperimentStore
from engine.experiments.timeseries import granularity, periods, timeseries_rows

Increments = list[tuple[str, float, dict[str, ArmStats]]]


class ReadoutDiagnostics:
    def __init__(
        self,
        store: ExperimentStore,
        clock: Callable[[], float] = time.time,
        catalog: Callable[[], Catalog | None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.catalog = catalog

    def report(
        self,
        key: str,
        phase: int | None = None,
        engine: str | None = None,
        counterfactual: Counterfactual | None = None,
    ) -> dict[str, Any]:
        exp = self.store.load(key)
        if exp.phase == 0:
            raise ExperimentError(f"experiment {key!r} has not started: there is nothing to read out")
        phase = phase or exp.phase
        variants = phase_variants(exp, phase)
        names = [v.name for v in variants]
        started = exp.phases[phase - 1].started_at
        now = self.clock()
        until = exp.phases[phase - 1].ended_at or now
        unit = granularity(started, until)
        increments = self._increments(key, phase, names, started, until, unit)
        epochs = self.store.epoch_weights(key) if exp.kind == "bandit" else None
        totals = parse_stats(self.store.read_stats(key, phase), names)
        shares, _ = expected_shares(variants, totals, epochs)
        counters, records = self.store.read_health(key, phase)
        overlapping = self._overlapping(exp, phase, until)
        # the sample costs a 1,000-field read: only when another experiment ran at the same time
        sample = self.store.sample_users(key, phase, OTHER_EXPERIMENT_SAMPLE) if overlapping else []
        inputs = HealthInputs(
            arms=names,
            shares=shares,
            users=[totals[n].n for n in names],
            period_users=[(label, [arms[n].n for n in names]) for label, _, arms in increments],
            bandit=exp.kind == "bandit",
            running=exp.status == "running" and phase == exp.phase,
            now=now,
            started_at=started,
            counters=counters,
            assignment_records=records,
            sampled_users=len(sample),
            other_experiments={f"{k} phase {p}": self.store.exposed_among(k, p, sample) for k, p in overlapping},
        )
        return {
            "health": [c.to_dict() for c in health_checks(inputs)],
            "quality": self._quality(key, phase, names, counterfactual),
            "timeseries": timeseries_rows(exp, increments, phase, epochs, engine),
            "timeseries_unit": unit,
        }

    def _overlapping(self, exp: Experiment, phase: int, until: float) -> list[tuple[str, int]]:
        """(key, phase) of every other experiment's phase that overlapped this phase in time."""
        started = exp.phases[phase - 1].started_at
        return [(other.key, p.number) for other in self.store.load_all() if other.key != exp.key
                for p in other.phases if p.started_at < until and (p.ended_at is None or p.ended_at > started)]

    def _increments(self, key: str, phase: int, names: list[str], started: float, until: float,
                    unit: str) -> Increments:
        """Every period's increments from the phase's start, a period without data as empty stats."""
        spans = periods(started, until, "hour" if unit == "hour" else "day")
        labels = [label for label, _ in spans]
        if unit == "hour":
            raws = self.store.read_hourly(key, phase, labels)
        else:
            daily = dict(self.store.read_daily(key, phase))
            raws = [daily.get(label, {}) for label in labels]
        return [(label, end, parse_stats(raw, names)) for (label, end), raw in zip(spans, raws, strict=True)]

    def _quality(self, key: str, phase: int, names: list[str], counterfactual: Counterfactual | None) -> dict[str, Any]:
        raw, entries = self.store.read_quality(key, phase, names)
        counts = {n: {stat: float(v) for f, v in raw.items() if f.startswith(f"{n}|")
                      for stat in [f.partition("|")[2]]} for n in names}
        samples = {n: [parse_entry(e) for e in arm] for n, arm in zip(names, entries, strict=True)}
        # the catalogue may cost a dataset load: only when there are lists to measure
        catalog = self.catalog() if self.catalog is not None and any(samples.values()) else None
        return quality_block(counts, samples, catalog, counterfactual)
