"""Thompson-sampling re-weighting of running bandits: each re-weighting is a new epoch.

The weights come from the current phase's goal statistics (``analysis.bandit``); the epoch's
weights are logged before the config names the epoch, so no process can serve weights the log
lacks.  ``run_due`` is called periodically by every serving process; a short Redis lease lets
one process of many do each re-weighting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from analysis.bandit import thompson_weights
from engine.experiments.arm_stats import bandit_trials, parse_stats
from engine.experiments.lifecycle import ExperimentLifecycle
from engine.experiments.metrics import METRICS
from engine.experiments.model import ConflictError, Experiment, ExperimentError

log = logging.getLogger(__name__)


class BanditReweighter:
    def __init__(self, lifecycle: ExperimentLifecycle) -> None:
        self.lifecycle = lifecycle
        self.store = lifecycle.store

    def recompute(self, key: str) -> Experiment:
        """Thompson-sampling weights from the current phase's goal statistics: a new epoch."""
        exp = self.store.load(key)
        if exp.kind != "bandit" or exp.bandit is None:
            raise ExperimentError(f"experiment {key!r} is not a bandit")
        if exp.status != "running":
            raise ExperimentError(f"bandit {key!r} is {exp.status}; weights are re-computed only while running")
        spec = METRICS[exp.goal_metric]
        arms = parse_stats(self.store.read_stats(key, exp.phase), [v.name for v in exp.variants])
        trials = [bandit_trials(spec, arms[v.name]) for v in exp.variants]
        result = thompson_weights(
            [s for s, _ in trials], [n for _, n in trials], min_weight=exp.bandit.min_weight
        )
        now = self.lifecycle.clock()
        epoch = exp.bandit.epoch + 1
        # logged before the config names the epoch, so no process can serve weights the log lacks
        self.store.record_epoch(key, epoch, list(result.weights), now)

        def change(cur: Experiment) -> Experiment:
            if cur.phase != exp.phase or cur.status != "running" or cur.bandit is None or cur.bandit.epoch + 1 != epoch:
                raise ConflictError(f"bandit {key!r} changed while its weights were computed; retry")
            variants = [v.model_copy(update={"weight": w}) for v, w in zip(cur.variants, result.weights, strict=True)]
            bandit = cur.bandit.model_copy(
                update={"epoch": epoch, "updated_at": now, "prob_best": list(result.prob_best)}
            )
            return cur.model_copy(update={"variants": variants, "bandit": bandit})

        return self.lifecycle.write(key, change)

    def run_due(self, configs: Iterable[Experiment]) -> list[str]:
        """Re-weight every running bandit of ``configs`` whose interval has passed (one process wins each lease)."""
        now = self.lifecycle.clock()
        done = []
        for exp in configs:
            if exp.kind != "bandit" or exp.status != "running" or exp.bandit is None:
                continue
            last = exp.bandit.updated_at or exp.start_time or now
            if now - last < exp.bandit.interval_seconds:
                continue
            if not self.store.try_lock(f"bandit:{exp.key}", exp.bandit.interval_seconds / 2):
                continue
            try:
                self.recompute(exp.key)
                done.append(exp.key)
            except ExperimentError as exc:
                log.info("bandit %s not re-weighted: %s", exp.key, exc)
        return done
