"""Reading an experiment out: its stored statistics turned into a readout or a daily series.

The I/O half of the readout; the statistics and the decision are ``engine.experiments.results``
(pure functions) and ``analysis``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.experiments.arm_stats import parse_stats
from engine.experiments.model import ExperimentError
from engine.experiments.results import ExperimentReadout, build_readout, phase_variants, time_series
from engine.experiments.store import ExperimentStore


class ReadoutReader:
    def __init__(self, store: ExperimentStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def readout(
        self,
        key: str,
        phase: int | None = None,
        metrics: Sequence[str] | None = None,
        engine: str | None = None,
    ) -> ExperimentReadout:
        """Goal, guardrails (and any extra ``metrics``) of one phase, from stored statistics only."""
        exp = self.store.load(key)
        if exp.phase == 0:
            raise ExperimentError(f"experiment {key!r} has not started: there is nothing to read out")
        phase = phase or exp.phase
        names = [v.name for v in phase_variants(exp, phase)]
        arms = parse_stats(self.store.read_stats(key, phase), names)
        epochs = self.store.epoch_weights(key) if exp.kind == "bandit" else None
        return build_readout(exp, arms, phase, epochs, metrics, engine, now=self.clock())

    def time_series(self, key: str, metric: str | None = None, phase: int | None = None) -> list[dict[str, Any]]:
        """Cumulative lift per UTC day of one phase (``metric`` defaults to the goal)."""
        exp = self.store.load(key)
        if exp.phase == 0:
            return []
        phase = phase or exp.phase
        names = [v.name for v in phase_variants(exp, phase)]
        days = [(day, parse_stats(raw, names)) for day, raw in self.store.read_daily(key, phase)]
        return time_series(exp, days, phase, metric)
