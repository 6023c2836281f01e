"""Reading an experiment out: its stored statistics turned into a readout or a daily series.

The I/O half of the readout; the statistics and the decision are ``engine.experiments.results``
(pure functions) and ``analysis``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.experiments.arm_stats import parse_stats
from engine.experiments.breakdowns import breakdowns
from engine.experiments.custom_results import UnitTable
from engine.experiments.interleaving import InterleavingRecorder, with_interleaving
from engine.experiments.model import ExperimentError
from engine.experiments.results import ExperimentReadout, build_readout, phase_variants, time_series
from engine.experiments.served import served_block
from engine.experiments.store import ExperimentStore
from engine.models.model_spec import SpecResolver


class ReadoutReader:
    def __init__(
        self, store: ExperimentStore, clock: Callable[[], float] = time.time, resolve: SpecResolver | None = None,
        interleaving: InterleavingRecorder | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.resolve = resolve
        self.interleaving = interleaving

    def readout(
        self,
        key: str,
        phase: int | None = None,
        metrics: Sequence[str] | None = None,
        engine: str | None = None,
        by: Sequence[str] = (),
    ) -> ExperimentReadout:
        """Goal, guardrails (and any extra ``metrics``) of one phase, from stored statistics only, and
        what each arm served (``served``: see ``engine.experiments.served``); with ``by``, the goal's
        breakdown by each of those dimensions (``engine.experiments.breakdowns``)."""
        exp = self.store.load(key)
        if exp.phase == 0:
            raise ExperimentError(f"experiment {key!r} has not started: there is nothing to read out")
        phase = phase or exp.phase
        variants = phase_variants(exp, phase)
        arms = parse_stats(self.store.read_stats(key, phase), [v.name for v in variants])
        epochs = self.store.epoch_weights(key) if exp.kind == "bandit" else None
        needs_units = bool(by) or any(m.cap for m in exp.metrics)
        units = UnitTable(*self.store.read_units(key, phase)) if needs_units else None
        readout = build_readout(exp, arms, phase, epochs, metrics, engine, now=self.clock(), units=units)
        served = served_block(variants, self.store.read_served(key, phase), self.resolve)
        cells = () if units is None else breakdowns(units, [v.name for v in variants], by, readout.goal.metric,
                                                    exp.metrics, exp.alpha, exp.correction)
        readout = dataclasses.replace(readout, served=tuple(served), breakdowns=cells)
        if exp.interleaving and self.interleaving is not None:
            readout = with_interleaving(readout, exp, self.interleaving.read(key, phase))
        return readout

    def time_series(self, key: str, metric: str | None = None, phase: int | None = None) -> list[dict[str, Any]]:
        """Cumulative lift per UTC day of one phase (``metric`` defaults to the goal)."""
        exp = self.store.load(key)
        if exp.phase == 0:
            return []
        phase = phase or exp.phase
        names = [v.name for v in phase_variants(exp, phase)]
        days = [(day, parse_stats(raw, names)) for day, raw in self.store.read_daily(key, phase)]
        return time_series(exp, days, phase, metric)
