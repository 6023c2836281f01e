"""Experiments: the list with status; create and edit (with the sample-size calculator); start, pause, stop."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine.console import experiments as backend
from engine.console.monitoring_panels import format_value
from engine.experiments import METRICS, ConflictError, Experiment, ExperimentError, NotFoundError
from pages import _experiments_ui as exp_ui
from pages import _resources as res
from pages import _ui as ui

NEW = "(new experiment)"
SELECTED = "exp_selected"
SELECT_NEXT = "exp_select_next"  # a widget's own key cannot be set once it is drawn: handed over to the next run
PENDING = "exp_pending"  # a confirmed start/pause/stop, run on the next script run
RESULT = "exp_result"
ENGINES = ["frequentist", "sequential", "bayesian"]
DEFAULT_BASELINE = {"ctr": 0.05, "conversion_rate": 0.005, "add_to_cart_rate": 0.01, "clicked": 0.3,
                    "converted": 0.05}
KPI_OF_METRIC = {"ctr": "ctr", "conversion_rate": "conversion"}

if not ui.header("Experiments", "A/B tests and bandits over the serving models: create and edit them, plan their "
                                "sample size, and start, pause or stop them."):
    st.stop()
if not exp_ui.available():
    st.stop()
eng = res.engine()
svc = eng.experiments
models = sorted(eng.service.models)


# ----------------------------------------------------------------------------- confirmed actions


def run_pending() -> None:
    confirmed = ui.pop_confirmed(PENDING, "manage experiments")
    if confirmed is None:
        return
    action, who = confirmed
    try:
        exp = backend.transition(eng, action["key"], action["action"], who)
    except ExperimentError as exc:
        st.error(f"Could not {action['action']} `{action['key']}`: {exc}")
        return
    st.session_state[RESULT] = f"`{exp.key}` is now **{exp.status}** (phase {exp.phase})."


@st.dialog("Confirm")
def confirm(action: str, exp: Experiment) -> None:
    consequences = {
        "start": "Users start being assigned and exposed; statistics are collected from now on."
        if exp.status == "draft" else "Assignment and statistics resume in the same phase.",
        "pause": "No new exposures and no metric updates; users keep their variants for when it resumes.",
        "stop": "Final: the experiment cannot restart, and its layer slice is freed. The readout stays.",
    }
    st.markdown(f"**{action.capitalize()}** `{exp.key}` — {exp.name}?")
    st.caption(consequences[action])
    left, right = st.columns(2)
    if left.button(action.capitalize(), type="primary", key=f"confirm_{action}_btn", width="stretch"):
        st.session_state[PENDING] = {"action": action, "key": exp.key}
        st.rerun()
    if right.button("Cancel", key=f"cancel_{action}_btn", width="stretch"):
        st.rerun()


# ----------------------------------------------------------------------------- list


def list_section(exps: list[Experiment]) -> None:
    st.subheader("All experiments")
    if not exps:
        st.caption("No experiment yet: create the first one below.")
        return
    frame = pd.DataFrame([{
        "key": e.key, "name": e.name, "status": e.status, "kind": e.kind, "phase": e.phase,
        "variants": ", ".join(f"{v.name}: {v.model} ({v.weight:.0%})" for v in e.variants),
        "coverage": e.coverage_pct / 100, "layer": e.layer or "–", "goal": e.goal_metric,
        "started": ui.when(e.start_time) if e.start_time else "–",
    } for e in exps])
    colors = {"running": "#dcfce7", "paused": "#ffedd5", "stopped": "#ede9fe", "draft": "#f1f5f9"}
    styled = frame.style.map(lambda s: f"background-color: {colors.get(s, '')}", subset=["status"]) \
        .format({"coverage": "{:.0%}"})
    st.dataframe(styled, hide_index=True, width="stretch")


def actions_section(exp: Experiment) -> None:
    with st.container(border=True):
        cols = st.columns([4, 1, 1, 1, 2])
        with cols[0]:
            st.markdown(f"**{exp.name}** `{exp.key}`")
            st.badge(exp.status, color=exp_ui.STATUS_COLORS.get(exp.status, "gray"))  # type: ignore[arg-type]
            st.caption(exp.hypothesis or "No hypothesis written.")
        allowed = backend.ALLOWED.get(exp.status, ())
        who = ui.current_writer()
        for col, action in zip(cols[1:4], backend.ACTIONS, strict=True):
            if col.button(action.capitalize(), key=f"act_{action}", disabled=action not in allowed or who is None,
                          width="stretch"):
                confirm(action, exp)
        if exp.phase > 0 and cols[4].button("Open readout", icon=":material/analytics:", width="stretch"):
            st.session_state["readout_key"] = exp.key
            st.switch_page("pages/readout.py")
        if who is None:
            ui.writer("manage experiments", "experiments-actions")


# ----------------------------------------------------------------------------- editor


def errors_below(slot: Any, errors: dict[str, list[str]], field: str) -> None:
    if errors.get(field):
        slot.error("  \n".join(errors[field]))


def calculator(goal: str, weights: list[float], alpha: float, power: float, mde: float, coverage: float,
               prefix: str) -> int | None:
    """The sample size for the current inputs, shown inline; returns users per variant (None if not computable)."""
    with st.container(border=True):
        st.markdown("**Sample size**")
        spec = METRICS[goal]
        kpi_values: dict[str, float | None] = {}
        source = res.metrics_source()
        if source is not None and goal in KPI_OF_METRIC:
            try:
                kpi_values = res.current_kpis(source.kind, res.source_url(source))
            except Exception:  # a missing metrics backend only loses the default baseline
                kpi_values = {}
        measured = kpi_values.get(KPI_OF_METRIC.get(goal, ""))
        default = measured if measured and 0 < measured < 1 else DEFAULT_BASELINE.get(goal, 1.0)
        c1, c2 = st.columns(2)
        baseline = c1.number_input(f"Baseline {goal}", min_value=0.0, value=float(default), format="%.4f",
                                   key=f"{prefix}baseline",
                                   help="current control value" + (" (measured now)" if measured else ""))
        std = None
        if spec.kind == "mean":
            std = c2.number_input("Std per user", min_value=0.0001, value=1.0, key=f"{prefix}std")
        traffic = res.traffic_users_per_day()
        st.caption(f"Current traffic: about {backend.compact(traffic)} users per day "
                   "(distinct users in the latest events, "
                   "at most the shop's users), times the coverage." if traffic else
                   "Current traffic: unknown until the event stream covers at least a minute.")
        try:
            p = backend.plan(goal, baseline, mde, alpha, power, weights, traffic, coverage, std)
        except ValueError as exc:
            st.warning(f"Not computable: {exc}")
            return None
        st.success(f"Needs **{p.users_per_variant:,} users per variant** ({p.total_users:,} in total), "
                   f"{backend.duration_text(p.days)}. "
                   f"MDE {format_value(p.mde_rel, 'percent') if p.mde_rel is not None else '–'} relative, "
                   f"alpha {p.alpha_per_comparison:.3g} per comparison.")
        return p.users_per_variant


def variant_inputs(exp: Experiment | None, prefix: str, locked: bool) -> list[dict[str, Any]]:
    """One row per variant (name, model, weight); the first row is the control."""
    default = eng.service.default_model
    other = next((m for m in models if m != default), default)
    current = ([{"name": "control", "model": default, "weight": 0.5},
                {"name": "treatment", "model": other, "weight": 0.5}] if exp is None else
               [{"name": v.name, "model": v.model, "weight": v.weight} for v in exp.variants])
    count = int(st.number_input("Variants", min_value=2, max_value=backend.MAX_VARIANTS, value=len(current),
                                key=f"{prefix}nvar", disabled=locked, help="the first one is the control"))
    rows = []
    for i in range(count):
        base = current[i] if i < len(current) else {"name": f"variant_{i}", "model": other, "weight": 0.0}
        c1, c2, c3 = st.columns([2, 2, 1])
        name = c1.text_input("Variant" if i == 0 else "variant", value=base["name"], key=f"{prefix}vname{i}",
                             disabled=locked, label_visibility="visible" if i == 0 else "collapsed")
        model = c2.selectbox("Model" if i == 0 else "model", models, disabled=locked, key=f"{prefix}vmodel{i}",
                             index=models.index(base["model"]) if base["model"] in models else 0,
                             label_visibility="visible" if i == 0 else "collapsed")
        weight = c3.number_input("Weight" if i == 0 else "weight", min_value=0.0, max_value=1.0, step=0.05,
                                 format="%.3f", value=float(base["weight"]), key=f"{prefix}vweight{i}",
                                 disabled=locked, label_visibility="visible" if i == 0 else "collapsed")
        rows.append({"name": name.strip(), "model": model, "weight": weight})
    return rows


def editor(exp: Experiment | None) -> None:
    creating = exp is None
    prefix = "ef-new-" if creating else f"ef-{exp.key}-{exp.version}-"
    locked = exp is not None and exp.status == "stopped"  # only name and hypothesis may change
    started = exp is not None and exp.status != "draft"
    st.subheader("New experiment" if creating else f"Edit {exp.key} (version {exp.version})")
    if exp is not None and exp.status in ("running", "paused"):
        st.info("This experiment has started: changing variants, weights, coverage or layer opens a new phase "
                "(statistics restart; earlier phases stay readable).", icon=":material/info:")
    if locked:
        st.info("Stopped: only the name and the hypothesis can change.", icon=":material/lock:")
    slots: dict[str, Any] = {}

    left, right = st.columns(2)
    with left:
        key = st.text_input("Key", value="" if creating else exp.key, key=f"{prefix}key", disabled=not creating,
                            placeholder="pop-vs-als", help="stable identifier: letters, digits, _ . -")
        slots["key"] = st.empty()
        name = st.text_input("Name", value="" if creating else exp.name, key=f"{prefix}name")
        slots["name"] = st.empty()
        hypothesis = st.text_area("Hypothesis", value="" if creating else exp.hypothesis, key=f"{prefix}hyp",
                                  placeholder="ALS lifts CTR by at least 5% over popularity", height=100)
        slots["hypothesis"] = st.empty()
        kind = st.segmented_control("Kind", ["ab", "bandit"], default="ab" if creating else exp.kind,
                                    key=f"{prefix}kind", disabled=started) or "ab"
        slots["kind"] = st.empty()
        variants = variant_inputs(exp, prefix, locked)
        slots["variants"] = st.empty()
    with right:
        c1, c2 = st.columns(2)
        coverage = c1.number_input("Coverage %", min_value=0.1, max_value=100.0, step=5.0, disabled=locked,
                                   value=100.0 if creating else float(exp.coverage_pct), key=f"{prefix}cov")
        slots["coverage_pct"] = st.empty()
        layer = c2.text_input("Layer (optional)", value="" if creating else (exp.layer or ""), disabled=locked,
                              key=f"{prefix}layer", help="experiments of one layer never share a user")
        slots["layer"] = st.empty()
        metric_names = sorted(METRICS)
        goal = st.selectbox("Goal metric", metric_names, disabled=locked, key=f"{prefix}goal",
                            index=metric_names.index("ctr" if creating else exp.goal_metric),
                            format_func=lambda m: f"{m} — {METRICS[m].description}")
        slots["goal_metric"] = st.empty()
        guardrails = st.multiselect("Guardrail metrics", metric_names, disabled=locked, key=f"{prefix}guard",
                                    default=[] if creating else exp.guardrail_metrics)
        slots["guardrail_metrics"] = st.empty()
        c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
        engine = c1.selectbox("Deciding engine", ENGINES, disabled=locked, key=f"{prefix}engine",
                              index=ENGINES.index("frequentist" if creating else exp.engine))
        alpha = c2.number_input("Alpha", min_value=0.001, max_value=0.49, step=0.01, format="%.3f",
                                value=0.05 if creating else exp.alpha, disabled=locked, key=f"{prefix}alpha")
        power = c3.number_input("Power", min_value=0.5, max_value=0.99, step=0.05, format="%.2f",
                                value=0.8 if creating else exp.power, disabled=locked, key=f"{prefix}power")
        mde = c4.number_input("MDE (relative)", min_value=0.001, max_value=10.0, step=0.01, format="%.3f",
                              value=0.05 if creating else exp.mde, disabled=locked, key=f"{prefix}mde")
        slots["engine"], slots["alpha"], slots["power"], slots["mde"] = st.empty(), st.empty(), st.empty(), st.empty()
        weights = [float(v["weight"]) for v in variants if isinstance(v.get("weight"), int | float)]
        needed = calculator(goal, weights, alpha, power, mde, coverage, prefix)
        use_plan = st.checkbox("Plan for this sample size", value=creating or bool(exp.planned_sample_size),
                               key=f"{prefix}useplan", disabled=locked,
                               help="recorded as the planned sample size; progress is measured against it")
        slots["planned_sample_size"] = st.empty()
    slots[backend.GENERAL] = st.empty()

    label = "Create draft" if creating else f"Save changes (version {exp.version})"
    if not st.button(label, type="primary", key=f"{prefix}submit", icon=":material/save:"):
        return
    who = ui.current_writer()
    if who is None:
        slots[backend.GENERAL].error("Log in to create or change experiments; nothing was saved.")
        return
    spec: dict[str, Any] = {
        "key": key.strip(), "name": name.strip(), "hypothesis": hypothesis.strip(), "kind": kind,
        "variants": variants, "coverage_pct": coverage, "layer": layer.strip() or None, "goal_metric": goal,
        "guardrail_metrics": guardrails, "engine": engine, "alpha": alpha, "power": power, "mde": mde,
        "planned_sample_size": needed if use_plan and needed else None,
    }
    if not creating:
        # keep what the form does not edit (variant parameters, forced users, bandit settings)
        params = {v.name: v.params for v in exp.variants}
        spec["variants"] = [{**v, "params": params.get(v["name"], {})} for v in variants]
        full = {**exp.model_dump(), **spec, "key": exp.key}
    else:
        full = spec
    errors = backend.form_errors(full, models)
    if errors:
        for field, slot in slots.items():
            errors_below(slot, errors, field)
        st.error("Nothing was saved: fix the fields marked above.")
        return
    try:
        if creating:
            saved = backend.create(eng, spec, who)
        else:
            current = exp.model_dump()
            changes = {k: v for k, v in spec.items() if k != "key" and current.get(k) != v}
            if not changes:
                st.info("Nothing changed.")
                return
            saved = backend.update(eng, exp.key, changes, exp.version, who)
    except ConflictError as exc:
        slots[backend.GENERAL].error(f"{exc}. Reload the page to see the current version.")
        return
    except ExperimentError as exc:
        field = "key" if "already exists" in str(exc) else backend.GENERAL
        slots[field].error(str(exc))
        return
    st.session_state[SELECT_NEXT] = saved.key
    st.session_state[RESULT] = f"Saved `{saved.key}` (version {saved.version}, {saved.status})."
    st.rerun()


# ----------------------------------------------------------------------------- page

with ui.guard("running the confirmed action"):
    run_pending()
if RESULT in st.session_state:
    st.success(st.session_state.pop(RESULT), icon=":material/check_circle:")

with ui.guard("reading experiments"):
    all_exps = exp_ui.experiments()
    list_section(all_exps)
    options = [NEW, *(e.key for e in all_exps)]
    if SELECT_NEXT in st.session_state:
        st.session_state[SELECTED] = st.session_state.pop(SELECT_NEXT)
    if st.session_state.get(SELECTED) not in options:
        st.session_state[SELECTED] = NEW
    selected = st.selectbox("Experiment to manage", options, key=SELECTED)
    current = None
    if selected != NEW:
        try:
            current = svc.get(selected)
        except NotFoundError:
            st.warning(f"`{selected}` no longer exists.")
    if current is not None:
        actions_section(current)
    if selected == NEW or current is not None:
        editor(current)
