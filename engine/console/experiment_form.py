"""The experiment editor of the Experiments page: the values it starts from, the spec built from what
the operator typed, the problems of that spec by form field, saving it, and the sample-size calculator.

A problem is shown beside the field it is about: pydantic's error location gives the field of a
field's own check, and the ``ExperimentError`` of a check across fields (or of the service, such
as a key that already exists) carries its ``field``; what belongs to no field of the form is shown
under the form (``GENERAL``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from engine.config import Settings, env_name
from engine.console import experiments, model_specs
from engine.console.formatting import compact, format_value
from engine.experiments import METRICS, ConflictError, Experiment, ExperimentError
from engine.experiments.model import error_field
from engine.experiments.planning import SampleSizePlan, plan_sample_size
from engine.models.registry import ModelRegistry, RegistryError
from engine.runtime import Engine
from engine.serving.serving_params import ServingParams

FORM_FIELDS = ("key", "name", "hypothesis", "kind", "variants", "coverage_pct", "layer", "goal_metric",
               "guardrail_metrics", "metrics", "engine", "alpha", "power", "mde", "planned_sample_size", "sequential")
GENERAL = "_form"  # problems that belong to no field of the form
MAX_VARIANTS = 6
KINDS = ("ab", "bandit", "interleaving")
KIND_LABELS = {"ab": "A/B", "bandit": "Bandit", "interleaving": "Interleaving"}
KIND_HELP = {
    "ab": "each user sees one variant, drawn by the weights; lifts per metric decide",
    "bandit": "weights move towards the variant that is winning the goal (Thompson sampling)",
    "interleaving": "exactly 2 rankers (control = A, treatment = B): every user sees both lists merged and "
                    "their clicks say which they prefer; weights play no part. Decides with far fewer users",
}
ENGINES = ("frequentist", "sequential", "bayesian")
SEQUENTIAL_METHODS = ("msprt", "group")
SEQUENTIAL_METHOD_LABELS = {"msprt": "mSPRT (always valid, look any time)",
                            "group": "Group-sequential (Lan-DeMets, planned looks)"}
DEFAULT_LOOKS = 14  # daily looks over two weeks
METRIC_NAMES = tuple(sorted(METRICS))
DEFAULT_BASELINE = {"ctr": 0.05, "conversion_rate": 0.005, "add_to_cart_rate": 0.01, "clicked": 0.3,
                    "converted": 0.05}
KPI_OF_METRIC = {"ctr": "ctr", "conversion_rate": "conversion"}  # goal metric -> the KPI that measures it now


@dataclass(frozen=True)
class ServingParam:
    """A serving parameter a variant may set (applied at serve time); empty in the form = the default."""

    key: str
    label: str
    integer: bool
    minimum: float
    maximum: float | None
    help: str


# the column headers of the form's narrow inputs; the keys, types and limits are ``ServingParams``'
SERVING_LABELS = {"candidate_pool": "Pool", "mmr_lambda": "MMR λ", "category_cap": "Cat. cap"}


def _serving_param(key: str, info: FieldInfo) -> ServingParam:
    """The form's input of one ``ServingParams`` field: its type and bounds as the engine checks them."""
    bounds = {name: float(getattr(m, name)) for m in info.metadata for name in ("ge", "le") if hasattr(m, name)}
    # an arm's setting replaces a process-wide default (RECOPS_…), except the length, which replaces the request's
    default = env_name(key) if key in Settings.model_fields else "what the request asks for"
    return ServingParam(key, SERVING_LABELS.get(key, key), int in get_args(info.annotation), bounds.get("ge", 0.0),
                        bounds.get("le"), f"{key}: {info.description}; default: {default}")


def _numeric(info: FieldInfo) -> bool:
    return bool({int, float} & set(get_args(info.annotation)))


# the numeric settings get the form's narrow inputs; a structured one (``exploration``) is set through the
# experiment's JSON (CLI or API) and kept as it is when the form saves the arm
SERVING_PARAMS = tuple(_serving_param(k, info) for k, info in ServingParams.model_fields.items() if _numeric(info))
SERVING_KEYS = frozenset(p.key for p in SERVING_PARAMS)


# ----------------------------------------------------------------------------- the form's values


@dataclass(frozen=True)
class VariantRow:
    name: str
    model: str  # a model spec: als, als@production, als@candidate, als@7, als@<version id>
    weight: float
    serving: Mapping[str, float | int] = field(default_factory=dict)  # the SERVING_PARAMS set (none: defaults)

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name.strip(), "model": self.model.strip(), "weight": self.weight}
        serving = serving_params(self.serving)
        if serving:
            out["params"] = serving
        return out


def serving_params(values: Mapping[str, Any]) -> dict[str, float | int]:
    """The serving parameters among ``values`` that are set (an empty input means the default)."""
    return {p.key: int(values[p.key]) if p.integer else float(values[p.key])
            for p in SERVING_PARAMS if values.get(p.key) is not None}


@dataclass(frozen=True)
class ExperimentForm:
    """What the editor's widgets hold."""

    key: str = ""
    name: str = ""
    hypothesis: str = ""
    kind: str = "ab"
    variants: tuple[VariantRow, ...] = ()
    coverage_pct: float = 100.0
    layer: str = ""
    goal_metric: str = "ctr"
    guardrail_metrics: tuple[str, ...] = ()
    engine: str = "frequentist"
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.05
    use_plan: bool = True  # record the calculator's sample size as the planned one
    sequential_method: str = "msprt"  # read only when the deciding engine is "sequential"
    sequential_looks: int = DEFAULT_LOOKS  # read only by the group-sequential method
    metrics: tuple[dict[str, Any], ...] = ()  # user-defined metrics (``engine.console.metric_table``)

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    def spec(self, planned: int | None) -> dict[str, Any]:
        """The experiment spec these values describe; ``planned`` is the calculator's sample size."""
        return {
            "key": self.key.strip(), "name": self.name.strip(), "hypothesis": self.hypothesis.strip(),
            "kind": self.kind, "variants": [v.spec() for v in self.variants], "coverage_pct": self.coverage_pct,
            "layer": self.layer.strip() or None, "goal_metric": self.goal_metric,
            "guardrail_metrics": list(self.guardrail_metrics), "engine": self.engine, "alpha": self.alpha,
            "power": self.power, "mde": self.mde, "planned_sample_size": planned if self.use_plan and planned else None,
            "sequential": self.sequential_plan(), "metrics": list(self.metrics),
        }

    def sequential_plan(self) -> dict[str, Any] | None:
        """The sequential engine's plan; None unless that engine decides."""
        if self.engine != "sequential":
            return None
        looks = self.sequential_looks if self.sequential_method == "group" else None
        return {"method": self.sequential_method, "looks": looks}


def metric_label(metric: str) -> str:
    return f"{metric} — {METRICS[metric].description}"


# ----------------------------------------------------------------------------- problems by field


def slot_of(field_name: str | None) -> str:
    """The form field a problem is shown beside; ``GENERAL`` for the rest."""
    return field_name if field_name in FORM_FIELDS else GENERAL


def form_errors(spec: Mapping[str, Any], available_models: Iterable[str]) -> dict[str, list[str]]:
    """Problems of an experiment spec by form field (``GENERAL`` for the rest); empty when valid."""
    errors: dict[str, list[str]] = {}
    try:
        exp = Experiment.model_validate(dict(spec))
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            slot = slot_of(error_field(err))
            where = ".".join(str(p) for p in err["loc"][1:])  # within the field: "0.weight" of the variants
            errors.setdefault(slot, []).append(f"{where}: {message}" if where and slot == "variants" else message)
        return errors
    available = set(available_models)
    # the spec's model must be served here; which version it names is the service's check on save
    missing = [f"variant {v.name!r}: model {v.spec.name!r} ({v.model}) is not trained here" for v in exp.variants
               if v.spec.name not in available]
    if missing:
        errors["variants"] = [*missing, f"available: {sorted(available)}"]
    return errors


# ----------------------------------------------------------------------------- the editor


@dataclass(frozen=True)
class Submission:
    """What saving the form did: saved it, found it invalid (nothing sent), found nothing changed, or
    was refused by the service; ``errors`` by form field."""

    saved: Experiment | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    invalid: bool = False
    unchanged: bool = False


@dataclass(frozen=True)
class Editor:
    """The editor of one experiment (or of a new one when ``exp`` is None)."""

    exp: Experiment | None
    models: Sequence[str]
    default_model: str
    specs: Sequence[str] = ()  # the model specs offered (any other can be typed)
    spec_labels: Mapping[str, str] = field(default_factory=dict)
    start: ExperimentForm | None = None  # a new experiment's suggested values (the Models page's A/B test)

    @property
    def creating(self) -> bool:
        return self.exp is None

    @property
    def prefix(self) -> str:
        """Widget keys' prefix: a new version of the experiment, or a new suggestion, starts from fresh widgets."""
        if self.exp is None:
            return "ef-new-" if self.start is None else f"ef-new-{self.start.key}-"
        return f"ef-{self.exp.key}-{self.exp.version}-"

    @property
    def locked(self) -> bool:
        """Stopped: only the name and the hypothesis may change."""
        return self.exp is not None and self.exp.status == "stopped"

    @property
    def started(self) -> bool:
        """Started once: the kind is fixed."""
        return self.exp is not None and self.exp.status != "draft"

    @property
    def opens_phase(self) -> bool:
        """Running or paused: changing the allocation opens a new phase."""
        return self.exp is not None and self.exp.status in ("running", "paused")

    @property
    def title(self) -> str:
        return "New experiment" if self.exp is None else f"Edit {self.exp.key} (version {self.exp.version})"

    @property
    def submit_label(self) -> str:
        return "Create draft" if self.exp is None else f"Save changes (version {self.exp.version})"

    @property
    def other_model(self) -> str:
        """The treatment's model by default: the first one that is not the default."""
        return next((m for m in self.models if m != self.default_model), self.default_model)

    @property
    def initial(self) -> ExperimentForm:
        """The values the widgets start from: the experiment's, or a two-arm A/B test of the default
        model against another."""
        e = self.exp
        if e is None and self.start is not None:
            return self.start
        if e is None:
            return ExperimentForm(variants=(VariantRow("control", self.default_model, 0.5),
                                            VariantRow("treatment", self.other_model, 0.5)))
        return ExperimentForm(
            key=e.key, name=e.name, hypothesis=e.hypothesis, kind=e.kind,
            variants=tuple(VariantRow(v.name, v.model, v.weight, serving_params(v.params)) for v in e.variants),
            coverage_pct=float(e.coverage_pct), layer=e.layer or "", goal_metric=e.goal_metric,
            guardrail_metrics=tuple(e.guardrail_metrics), engine=e.engine, alpha=e.alpha, power=e.power, mde=e.mde,
            use_plan=bool(e.planned_sample_size),
            sequential_method=e.sequential.method if e.sequential else "msprt",
            sequential_looks=(e.sequential.looks or DEFAULT_LOOKS) if e.sequential else DEFAULT_LOOKS,
            metrics=tuple(m.model_dump() for m in e.metrics))

    def variant_default(self, i: int) -> VariantRow:
        """Row ``i``'s starting values; rows past the experiment's own start with weight 0."""
        current = self.initial.variants
        return current[i] if i < len(current) else VariantRow(f"variant_{i}", self.other_model, 0.0)

    def model_index(self, model: str) -> int:
        return list(self.models).index(model) if model in self.models else 0

    def spec_choices(self, current: str) -> list[str]:
        """The specs a variant's select box offers: the offered ones, plus ``current`` when it is another."""
        offered = list(self.specs or self.models)
        return offered if current in offered else [current, *offered]

    def spec_label(self, model_spec: str) -> str:
        return model_specs.label(model_spec, self.spec_labels)

    def full_spec(self, form: ExperimentForm, planned: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The spec the form sends, and the whole experiment it makes (what is validated).

        Editing keeps what the form does not show: variant parameters other than the serving ones,
        forced users, bandit settings.
        """
        spec = form.spec(planned)
        if self.exp is None:
            return spec, spec
        hidden = {v.name: {k: p for k, p in v.params.items() if k not in SERVING_KEYS} for v in self.exp.variants}
        spec["variants"] = [{**v, "params": {**hidden.get(v["name"], {}), **v.get("params", {})}}
                            for v in spec["variants"]]
        return spec, {**self.exp.model_dump(), **spec, "key": self.exp.key}

    def submit(self, engine: Engine, form: ExperimentForm, planned: int | None, actor: str) -> Submission:
        """Validate the form, then create the experiment or send what changed (audited as ``actor``)."""
        spec, full = self.full_spec(form, planned)
        errors = form_errors(full, self.models)
        if errors:
            return Submission(errors=errors, invalid=True)
        try:
            if self.exp is None:
                return Submission(saved=experiments.create(engine, spec, actor))
            current = self.exp.model_dump()
            changes = {k: v for k, v in spec.items() if k != "key" and current.get(k) != v}
            if not changes:
                return Submission(unchanged=True)
            return Submission(saved=experiments.update(engine, self.exp.key, changes, self.exp.version, actor))
        except ConflictError as exc:
            return Submission(errors={GENERAL: [f"{exc}. Reload the page to see the current version."]})
        except ExperimentError as exc:
            return Submission(errors={slot_of(exc.field): [str(exc)]})


def editor(engine: Engine, exp: Experiment | None, start: ExperimentForm | None = None) -> Editor:
    """The editor of ``exp`` (None: a new experiment, from ``start`` when given) over the models this engine
    serves, offering the specs of every version trained on the served dataset."""
    registry = ModelRegistry(engine.settings.models_dir)
    try:
        records = registry.records(engine.dataset.name)
        numbers = model_specs.version_numbers(records)
    except RegistryError:  # the plain model names still work; the service checks any typed spec
        records, numbers = [], {}
    return Editor(exp, sorted(engine.service.models), engine.service.default_model,
                  model_specs.choices(records, numbers), model_specs.labels(records, numbers),
                  start if exp is None else None)


def saved_text(exp: Experiment) -> str:
    return f"Saved `{exp.key}` (version {exp.version}, {exp.status})."


# ----------------------------------------------------------------------------- sample-size calculator


@dataclass(frozen=True)
class Baseline:
    value: float
    measured: bool  # read from the live KPIs rather than a default

    @property
    def help(self) -> str:
        return "current control value" + (" (measured now)" if self.measured else "")


def measured_kpi(goal_metric: str) -> str | None:
    """The live KPI that measures ``goal_metric`` now, if any."""
    return KPI_OF_METRIC.get(goal_metric)


def baseline(goal_metric: str, kpis: Mapping[str, float | None]) -> Baseline:
    """The calculator's starting baseline: the live rate when there is a plausible one, else a default."""
    measured = kpis.get(KPI_OF_METRIC.get(goal_metric, ""))
    value = measured if measured and 0 < measured < 1 else DEFAULT_BASELINE.get(goal_metric, 1.0)
    return Baseline(float(value), bool(measured))


def needs_std(goal_metric: str) -> bool:
    """A mean metric's sample size depends on its standard deviation per user."""
    return METRICS[goal_metric].kind == "mean"


def traffic_text(users_per_day: float | None) -> str:
    if not users_per_day:
        return "Current traffic: unknown until the event stream covers at least a minute."
    return (f"Current traffic: about {compact(users_per_day)} users per day (distinct users in the latest events, "
            "at most the shop's users), times the coverage.")


def duration_text(days: float | None) -> str:
    if days is None or not math.isfinite(days):
        return "no traffic measured yet to estimate the duration"
    if days < 1:
        return f"about {days * 24:.1f} hours at current traffic"
    return f"about {days:.1f} days at current traffic"


def plan(
    goal_metric: str, baseline: float, mde: float, alpha: float, power: float, weights: Sequence[float],
    traffic_per_day: float | None, coverage_pct: float = 100.0, std: float | None = None,
) -> SampleSizePlan:
    """Sample size for the goal metric; ``ValueError`` with a readable message when not computable."""
    spec = METRICS.get(goal_metric)
    if spec is None:
        raise ValueError(f"unknown metric {goal_metric!r}")
    metric_type: Literal["mean", "binomial"] = "mean" if spec.kind == "mean" else "binomial"
    if len(weights) < 2 or any(w <= 0 for w in weights):
        raise ValueError("the calculator needs at least two variants with positive weights")
    total = sum(weights)
    traffic = traffic_per_day * coverage_pct / 100.0 if traffic_per_day else None
    return plan_sample_size(baseline, mde, metric_type=metric_type, std=std, alpha=alpha, power=power,
                            variants=len(weights), users_per_day=traffic,
                            weights=tuple(w / total for w in weights))


def plan_text(p: SampleSizePlan) -> str:
    return (f"Needs **{p.users_per_variant:,} users per variant** ({p.total_users:,} in total), "
            f"{duration_text(p.days)}. MDE {format_value(p.mde_rel, 'percent')} relative, "
            f"alpha {p.alpha_per_comparison:.3g} per comparison.")
