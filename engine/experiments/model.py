"""The experiment configuration, its validation and its life cycle.

    draft ──start──▶ running ──pause──▶ paused ──start──▶ running
      │                 └──────stop──────┴──────stop──────▶ stopped (final)

A *phase* is a stretch of a running experiment under one allocation: the variants (names, models,
parameters, weights), the coverage and the layer.  Changing any of these once the experiment has
started opens a new phase; statistics are kept per phase and a readout reads one phase, so data
collected under different allocations is never pooled.  A new phase also re-randomises users (its
own salt), which spreads any carry-over from the previous phase evenly across the arms.

An *interleaving* experiment compares two rankers (control = A, treatment = B): every enrolled user
sees both lists merged by team draft and clicks credit the ranker of the item (see
``engine.experiments.interleaving``); its weights play no part.

A bandit's periodic re-weighting is *not* a new phase: it opens a new weight *epoch* instead.  The
unit of a bandit is a user within an epoch, so a user re-assigned by new weights starts a new unit
in the arm they are now served, and the SRM check compares counts against the weights each epoch
actually used.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails

from analysis.decision_rules import Scope
from engine.experiments.metric_definitions import MetricDefinition, custom_counters, metric_problems
from engine.experiments.metrics import METRICS
from engine.models.model_spec import ModelSpec
from engine.serving.serving_params import ServingParams

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
WEIGHT_TOLERANCE = 1e-6

Status = Literal["draft", "running", "paused", "stopped"]
Kind = Literal["ab", "bandit", "interleaving"]
DecisionEngine = Literal["frequentist", "sequential", "bayesian"]

# Fields whose change, once started, is a new allocation and therefore a new phase.
ALLOCATION_FIELDS = ("variants", "coverage_pct", "layer", "salt", "metrics")
# Fields the life cycle and the store own; an update never sets them directly.
MANAGED_FIELDS = frozenset(
    {"key", "status", "phase", "phases", "layer_range", "version", "created_at", "updated_at",
     "start_time", "stop_time"}
)
# Once stopped, only the description may change.
DESCRIPTIVE_FIELDS = frozenset({"name", "hypothesis"})


class ExperimentError(ValueError):
    """An invalid experiment or an action its state does not allow; the message says which, and
    ``field`` names the experiment field it is about when there is one (a form shows it there)."""

    def __init__(self, message: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(ExperimentError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConflictError(ExperimentError):
    """The experiment changed since the caller read it (optimistic concurrency on ``version``)."""


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique within the experiment; the first is the control")
    model: str = Field(
        description="What this arm serves: a model spec (als, als@production, als@candidate, als@7, als@<version>)"
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Serving parameters applied to this arm's lists: {', '.join(ServingParams.allowed())}",
    )
    weight: float = Field(gt=0, le=1, description="Share of the experiment's traffic")
    recorded_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters saved before params were serving parameters: kept as they were, never applied",
    )

    @model_validator(mode="before")
    @classmethod
    def _stored_before_serving_params(cls, data: Any, info: ValidationInfo) -> Any:
        """A config stored when ``params`` were only recorded may hold any keys: on reading it back
        (``parse_experiment(..., stored=True)``) those keys move to ``recorded_params``, so the
        experiment stays readable and nothing stored is lost.  Input is checked strictly."""
        if not (info.context or {}).get("stored") or not isinstance(data, dict):
            return data
        params = data.get("params")
        if not isinstance(params, dict):
            return data
        allowed = set(ServingParams.allowed())
        legacy = {k: v for k, v in params.items() if k not in allowed}
        if not legacy:
            return data
        return {**data, "params": {k: v for k, v in params.items() if k in allowed},
                "recorded_params": {**dict(data.get("recorded_params") or {}), **legacy}}

    @model_serializer(mode="wrap")
    def _without_empty_recorded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # shown only when there are some: a variant reads (and compares, in the console's editor) as
        # it did before the field existed
        data: dict[str, Any] = handler(self)
        if not data.get("recorded_params"):
            data.pop("recorded_params", None)
        return data

    @field_validator("model")
    @classmethod
    def _model_spec(cls, value: str) -> str:
        # the form only: whether the spec names a version of the served dataset is the life cycle's
        # check (``ExperimentLifecycle``), which has the registry
        return str(ModelSpec.parse(value))

    @field_validator("params")
    @classmethod
    def _serving_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        return ServingParams.parse(value).non_default()

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.parse(self.model)

    @property
    def serving(self) -> ServingParams:
        return ServingParams.parse(self.params)


class BanditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_weight: float = Field(default=0.05, gt=0, lt=0.5, description="Floor of every arm's weight")
    interval_seconds: float = Field(default=300.0, gt=0, description="How often the weights are re-computed")
    epoch: int = Field(default=0, ge=0, description="Incremented at every re-weighting")
    updated_at: float | None = None
    prob_best: list[float] | None = None


class SequentialPlanSpec(BaseModel):
    """How the sequential engine reads the experiment; its planned size and MDE are the experiment's
    ``planned_sample_size`` (or the size the MDE requires) and ``mde``."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["msprt", "group"] = Field(
        default="msprt", description="msprt: always valid, tuned to the plan; group: Lan-DeMets spending over the looks"
    )
    looks: int | None = Field(default=None, ge=1, le=1000, description="Planned, equally spaced looks")

    @model_validator(mode="after")
    def _group_needs_looks(self) -> SequentialPlanSpec:
        if self.method == "group" and self.looks is None:
            raise ValueError("a group-sequential plan needs its number of looks")
        return self


class Phase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: int = Field(ge=1)
    started_at: float
    ended_at: float | None = None
    variants: list[Variant]  # as allocated when the phase opened (a bandit re-weights within it)
    coverage_pct: float
    reason: str = ""


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    key: str = Field(pattern=KEY_PATTERN, description="Stable identifier; part of every Redis key")
    name: str = Field(min_length=1, max_length=200)
    hypothesis: str = Field(default="", max_length=4000)
    kind: Kind = "ab"
    status: Status = "draft"
    variants: list[Variant]
    coverage_pct: float = Field(default=100.0, gt=0, le=100, description="Share of eligible users enrolled, %")
    layer: str | None = Field(
        default=None, pattern=KEY_PATTERN, description="Experiments of one layer never share a user"
    )
    goal_metric: str = "ctr"
    guardrail_metrics: list[str] = Field(default_factory=list)
    guardrail_margin: float = Field(
        default=0.02, ge=0, lt=1, description="Tolerated relative deterioration of the guardrail_metrics")
    metrics: list[MetricDefinition] = Field(
        default_factory=list, description="User-defined metrics (engine.experiments.metric_definitions)")
    correction: Literal["holm", "bh"] = Field(default="holm", description="Multiple-testing correction")
    correction_scope: Scope = Field(default="goals", description="Tests the correction covers")
    engine: DecisionEngine = Field(default="frequentist", description="Engine whose verdict decides")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, ge=0.5, lt=1)
    mde: float = Field(default=0.05, gt=0, description="Minimum detectable effect, relative to the control")
    planned_sample_size: int | None = Field(default=None, ge=1, description="Users per variant")
    sequential: SequentialPlanSpec | None = Field(default=None, description="Plan of the sequential engine")
    forced: dict[str, str] = Field(default_factory=dict, description="QA user id -> variant they always get")
    bandit: BanditSettings | None = None
    salt: str = Field(default="", max_length=128, description="Hash salt; the key when empty")
    demo: bool = Field(default=False, description="The demo experiment `recops up` created on a first start")

    # managed by the life cycle
    layer_range: tuple[float, float] | None = None
    phase: int = 0
    phases: list[Phase] = Field(default_factory=list)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    start_time: float | None = None
    stop_time: float | None = None
    version: int = 0

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Equal weights when none are given, and bandit settings for a bandit."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        variants = data.get("variants")
        if (
            isinstance(variants, list)
            and variants
            and all(isinstance(v, dict) and v.get("weight") is None for v in variants)
        ):
            data["variants"] = [{**v, "weight": 1.0 / len(variants)} for v in variants]
        if data.get("kind") == "bandit" and data.get("bandit") is None:
            data["bandit"] = {}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        problems: list[ExperimentError] = []
        names = [v.name for v in self.variants]
        if len(names) < 2:
            problems.append(ExperimentError(f"an experiment needs at least 2 variants, got {len(names)}", "variants"))
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(ExperimentError(f"variant names must be unique; repeated: {repeated}", "variants"))
        total = math.fsum(v.weight for v in self.variants)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            shares = ", ".join(f"{v.name}={v.weight:g}" for v in self.variants)
            problems.append(ExperimentError(f"variant weights must sum to 1, got {total:g} ({shares})", "variants"))
        for field, metrics in (("goal_metric", [self.goal_metric]), ("guardrail_metrics", self.guardrail_metrics)):
            problems.extend(ExperimentError(f"unknown metric {m!r}; known: {sorted(METRICS)}", field)
                            for m in metrics if m not in METRICS)
        problems.extend(ExperimentError(p, "metrics")
                        for p in metric_problems(self.metrics, self.goal_metric, self.guardrail_metrics))
        if self.goal_metric in self.guardrail_metrics:
            problems.append(ExperimentError(f"the goal metric {self.goal_metric!r} cannot also be a guardrail",
                                            "guardrail_metrics"))
        for user, variant in self.forced.items():
            if variant not in names:
                # filed under the variants: renaming one is what breaks a forced user's reference
                problems.append(ExperimentError(f"forced user {user!r}: no variant {variant!r} (variants: {names})",
                                                "variants"))
        problems.extend(self._bandit_problems(len(names)))
        problems.extend(self._interleaving_problems(len(names)))
        if problems:
            # one error line per problem, each carrying its field (``error_field``); no location, as
            # they are about the experiment as a whole, so messages read as before
            raise ValidationError.from_exception_data(type(self).__name__, [
                InitErrorDetails(type="value_error", loc=(), input=self.key, ctx={"error": p}) for p in problems])
        return self

    def _bandit_problems(self, k: int) -> list[ExperimentError]:
        if self.kind != "bandit":
            stray = self.bandit is not None
            return [ExperimentError("bandit settings are only for kind 'bandit'", "kind")] if stray else []
        problems = []
        goal = METRICS.get(self.goal_metric)
        if goal is not None and goal.kind == "mean":
            problems.append(ExperimentError(
                f"a bandit needs a rate as its goal (ratio or binomial metric), not the mean {self.goal_metric!r}",
                "kind"))
        if self.bandit is not None and k and self.bandit.min_weight * k > 1:
            # filed under the variants: fewer of them is the fix a form can make
            problems.append(ExperimentError(
                f"bandit min_weight {self.bandit.min_weight:g} is more than 1/{k} of the traffic", "variants"))
        return problems

    def _interleaving_problems(self, k: int) -> list[ExperimentError]:
        """Interleaving merges exactly two rankers' lists for every enrolled user (weights play no part),
        and is read by the sign test or its sequential form (``analysis.interleaving``)."""
        if self.kind != "interleaving":
            return []
        problems = []
        if k != 2:
            problems.append(ExperimentError(
                f"an interleaving experiment compares exactly 2 rankers (control = A, treatment = B), got {k} variants",
                "variants"))
        if self.engine == "bayesian":
            problems.append(ExperimentError(
                "an interleaving experiment is read by the sign test (engine 'frequentist') or its always-valid "
                "form (engine 'sequential'), not 'bayesian'", "engine"))
        return problems

    @property
    def interleaving(self) -> bool:
        return self.kind == "interleaving"

    # ------------------------------------------------------------------ derived
    @property
    def control(self) -> Variant:
        return self.variants[0]

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    @property
    def effective_salt(self) -> str:
        return self.salt or self.key

    @property
    def epoch(self) -> int:
        return self.bandit.epoch if self.bandit is not None else 0

    @property
    def metric_names(self) -> list[str]:
        return [self.goal_metric, *self.guardrail_metrics, *(m.name for m in self.metrics)]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ExperimentError(f"experiment {self.key!r} has no variant {name!r}")

    def allocation(self) -> tuple[Any, ...]:
        """What a phase fixes; two configs with equal allocations can share a phase."""
        return (
            tuple((v.name, v.model, repr(sorted(v.params.items())), v.weight) for v in self.variants),
            self.coverage_pct,
            self.layer,
            self.effective_salt,
            # the per-user counters custom metrics keep: a change restarts them, so it opens a phase
            custom_counters(self.metrics),
        )


def _location(error: ErrorDetails) -> str:
    return ".".join(str(part) for part in error["loc"]) or "experiment"


def error_field(error: ErrorDetails) -> str | None:
    """The experiment field a line of a ``ValidationError`` is about: the first part of its location,
    else the field of the ``ExperimentError`` a model-wide check raised; None when neither says."""
    if error["loc"]:
        return str(error["loc"][0])
    cause = error.get("ctx", {}).get("error")
    return cause.field if isinstance(cause, ExperimentError) else None


def parse_experiment(data: Any, stored: bool = False) -> Experiment:
    """``Experiment`` from untrusted input; every problem in one ``ExperimentError`` message, whose
    ``field`` is set when all the problems are about one field.  ``stored``: a config read back from
    the store, possibly written by an earlier version (see ``Variant.recorded_params``)."""
    if isinstance(data, Experiment):
        data = data.model_dump()
    try:
        return Experiment.model_validate(data, context={"stored": stored})
    except ValidationError as exc:
        parts, fields = [], set()
        for error in exc.errors(include_url=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            parts.append(message if not error["loc"] else f"{_location(error)}: {message}")
            fields.add(error_field(error))
        field = fields.pop() if len(fields) == 1 else None
        raise ExperimentError("invalid experiment: " + "; ".join(parts), field) from None
