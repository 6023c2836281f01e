"""Who sees which variant: a pure function of the running configs and the user id.

Order of precedence for one user:

1. a QA user forced into a variant gets it (and is never counted in the statistics);
2. a user in the global holdout gets no experiment at all;
3. otherwise the first running experiment (by start time) the user is eligible for assigns a
   variant.  One request serves one model, so a user is in at most one experiment at a time; the
   eligibility hashes of different experiments are independent, so the users an earlier experiment
   takes are a random subset and bias no later one.

What an arm serves: its variant's model spec resolved to a version (``als@candidate`` → the newest
candidate's id) when the table is built — a table is rebuilt when the configs *or* the registry
change — and its serving parameters.  Serving thus gets a (model, version, parameters) triple
without any I/O.  A spec that names nothing any more (the candidate was promoted since the
experiment was saved) serves its model's production version, and says so in the log.

Eligibility: inside a *layer* the layer's own hash must fall in the experiment's slice of [0, 1)
(slices of one layer never overlap: mutual exclusion); without a layer the experiment's coverage
hash must fall below its coverage.  Coverage and variant use different hashes, so raising the
coverage adds users without moving anyone already in.  The variant hash is salted per phase.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from engine.experiments.hashing import bucket
from engine.experiments.model import Experiment, Variant
from engine.models.model_spec import ModelSpecError, SpecResolver
from engine.serving.serving_params import DEFAULT_SERVING, ServingParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankerArm:
    """One ranker of an interleaving experiment: what serving computes its list with."""

    variant: str
    model: str
    version: str | None
    serving: ServingParams


INTERLEAVED = "interleaved"  # the variant an interleaving experiment's enrolled users are served


@dataclass(frozen=True)
class Assignment:
    """What serving needs (``model``, ``version``, ``serving``) and what exposure records.

    ``model`` is the model's name; ``version`` the version the arm's spec resolved to (None: the
    model's production version, as loaded); ``params`` the arm's parameters as configured and
    ``serving`` the same, typed."""

    experiment: str
    variant: str
    model: str
    user_id: str
    phase: int
    epoch: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    forced: bool = False
    version: str | None = None
    serving: ServingParams = DEFAULT_SERVING
    # an interleaving experiment: the two rankers (control = A, treatment = B) whose lists are merged;
    # ``variant`` is then ``INTERLEAVED`` and model/version/serving are the control's
    rankers: tuple[RankerArm, RankerArm] | None = None

    @property
    def served_arms(self) -> tuple[tuple[str, str, str | None, ServingParams], ...]:
        """``(variant, model, version, serving)`` of each list serving computes for this user: the two
        rankers' (merged afterwards) in an interleaving experiment, else the arm's one."""
        if self.rankers is not None:
            return tuple((r.variant, r.model, r.version, r.serving) for r in self.rankers)
        return ((self.variant, self.model, self.version, self.serving),)

    @property
    def served_label(self) -> str:
        """``model@version`` as exposures count it (``model@`` when the spec resolved to nothing)."""
        return f"{self.model}@{self.version or ''}"


@dataclass(frozen=True)
class Holdout:
    """Share of all users kept out of every experiment, to measure the experiments' joint effect."""

    pct: float = 0.0
    salt: str = "global"

    def contains(self, user_id: str) -> bool:
        return self.pct > 0 and bucket(f"holdout:{self.salt}", user_id) < self.pct / 100.0


def variant_salt(exp: Experiment) -> str:
    return f"{exp.effective_salt}:p{exp.phase}"


def coverage_salt(exp: Experiment) -> str:
    return f"{exp.effective_salt}:coverage"


def layer_salt(layer: str) -> str:
    return f"layer:{layer}"


def pick(cumulative: tuple[float, ...], u: float) -> int:
    """Index of the arm whose cumulative-weight interval holds ``u``; float drift falls to the last arm."""
    return min(bisect.bisect_right(cumulative, u), len(cumulative) - 1)


@dataclass(frozen=True)
class CompiledExperiment:
    """A running experiment reduced to what assignment reads on every request."""

    key: str
    phase: int
    epoch: int
    names: tuple[str, ...]
    models: tuple[str, ...]
    params: tuple[Mapping[str, Any], ...]
    versions: tuple[str | None, ...]
    serving: tuple[ServingParams, ...]
    cumulative: tuple[float, ...]
    variant_salt: str
    coverage: float
    coverage_salt: str
    layer_salt: str | None
    layer_range: tuple[float, float] | None
    forced: Mapping[str, int]
    rankers: tuple[RankerArm, RankerArm] | None = None  # an interleaving experiment's, built once

    @classmethod
    def compile(cls, exp: Experiment, resolve: SpecResolver | None = None) -> CompiledExperiment:
        names = tuple(v.name for v in exp.variants)
        versions = tuple(_version(exp.key, v, resolve) for v in exp.variants)
        return cls(
            key=exp.key,
            phase=exp.phase,
            epoch=exp.epoch,
            names=names,
            models=tuple(v.spec.name for v in exp.variants),
            params=tuple(dict(v.params) for v in exp.variants),
            versions=versions,
            serving=tuple(v.serving for v in exp.variants),
            cumulative=tuple(accumulate(exp.weights)),
            variant_salt=variant_salt(exp),
            coverage=exp.coverage_pct / 100.0,
            coverage_salt=coverage_salt(exp),
            layer_salt=layer_salt(exp.layer) if exp.layer else None,
            layer_range=exp.layer_range,
            forced={user: names.index(variant) for user, variant in exp.forced.items()},
            rankers=_rankers(exp, versions) if exp.interleaving else None,
        )

    def eligible(self, user_id: str) -> bool:
        if self.layer_salt is not None:
            if self.layer_range is None:
                return False
            low, high = self.layer_range
            return low <= bucket(self.layer_salt, user_id) < high
        return self.coverage >= 1.0 or bucket(self.coverage_salt, user_id) < self.coverage

    def variant_index(self, user_id: str) -> int:
        return pick(self.cumulative, bucket(self.variant_salt, user_id))

    def assignment(self, user_id: str, index: int, forced: bool = False) -> Assignment:
        if self.rankers is not None and not forced:
            # every enrolled user sees both rankers merged; a forced QA user sees their variant's list alone
            return replace(self._assignment(user_id, 0, forced), variant=INTERLEAVED, rankers=self.rankers)
        return self._assignment(user_id, index, forced)

    def _assignment(self, user_id: str, index: int, forced: bool) -> Assignment:
        return Assignment(
            experiment=self.key,
            variant=self.names[index],
            model=self.models[index],
            user_id=user_id,
            phase=self.phase,
            epoch=self.epoch,
            params=self.params[index],
            forced=forced,
            version=self.versions[index],
            serving=self.serving[index],
        )


def _rankers(exp: Experiment, versions: tuple[str | None, ...]) -> tuple[RankerArm, RankerArm]:
    a, b = (RankerArm(v.name, v.spec.name, version, v.serving)
            for v, version in zip(exp.variants[:2], versions[:2], strict=True))
    return a, b


def _version(key: str, variant: Variant, resolve: SpecResolver | None) -> str | None:
    """The version ``variant``'s spec names now; None (its model's production) when it names none."""
    if resolve is None:
        return None
    try:
        return resolve(variant.model).version
    except ModelSpecError as exc:
        log.warning("experiment %s, variant %s serves %s's production version: %s",
                    key, variant.name, variant.spec.name, exc)
        return None


class AssignmentTable:
    """An immutable snapshot of the running experiments; swapped whole when configs change."""

    def __init__(
        self,
        experiments: Iterable[Experiment] = (),
        holdout: Holdout | None = None,
        resolve: SpecResolver | None = None,
    ) -> None:
        running = sorted(
            (e for e in experiments if e.status == "running"),
            key=lambda e: (e.start_time or 0.0, e.key),
        )
        self.experiments = tuple(CompiledExperiment.compile(e, resolve) for e in running)
        self.holdout = holdout or Holdout()
        self._forced = {
            user: (exp, index) for exp in reversed(self.experiments) for user, index in exp.forced.items()
        }

    def __bool__(self) -> bool:
        return bool(self.experiments)

    def assign(self, user_id: str) -> Assignment | None:
        if not self.experiments:
            return None
        forced = self._forced.get(user_id)
        if forced is not None:
            exp, index = forced
            return exp.assignment(user_id, index, forced=True)
        if self.holdout.contains(user_id):
            return None
        for exp in self.experiments:
            if exp.eligible(user_id):
                return exp.assignment(user_id, exp.variant_index(user_id))
        return None
