"""Experiments: the list with status; create and edit (with the sample-size calculator); start, pause, stop."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pandas as pd
import streamlit as st

from engine.console import badges, experiment_form, metric_table
from engine.console import experiments as backend
from engine.console.experiment_form import GENERAL, Editor, ExperimentForm, VariantRow
from engine.experiments import Experiment, NotFoundError
from pages import _experiments_ui as exp_ui
from pages import _resources as res
from pages import _ui as ui

NEW, SELECT_NEXT, SUGGESTED = exp_ui.NEW, exp_ui.SELECT_NEXT, exp_ui.SUGGESTED
SELECTED = "exp_selected"
PENDING = "exp_pending"  # a confirmed start/pause/stop, run on the next script run
RESULT = "exp_result"

if not ui.header("Experiments", "A/B tests and bandits over the serving models: create and edit them, plan their "
                                "sample size, and start, pause or stop them."):
    st.stop()
eng = res.engine()


# ----------------------------------------------------------------------------- confirmed actions


@st.dialog("Confirm")
def confirm(action: str, exp: Experiment) -> None:
    st.markdown(f"**{action.capitalize()}** `{exp.key}` — {exp.name}?")
    st.caption(backend.consequence(action, exp))
    ui.confirm_buttons(action.capitalize(), action, PENDING, {"action": action, "key": exp.key})


# ----------------------------------------------------------------------------- list


def list_section(exps: list[Experiment]) -> None:
    st.subheader("All experiments")
    if not exps:
        st.caption("No experiment yet: create the first one below.")
        return
    ui.notice(backend.demo_notice(exps))
    st.dataframe(backend.listing(exps), hide_index=True, width="stretch")


def actions_section(exp: Experiment) -> None:
    with st.container(border=True):
        cols = st.columns([4, 1, 1, 1, 2])
        with cols[0]:
            st.markdown(f"**{exp.name}** `{exp.key}`")
            ui.badge(badges.experiment_status_badge(exp.status))
            st.caption(exp.hypothesis or "No hypothesis written.")
        allowed = backend.allowed_actions(exp)
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


def calculator(form: ExperimentForm, prefix: str) -> int | None:
    """The sample size for the current inputs, shown inline; returns users per variant (None if not computable)."""
    with st.container(border=True):
        st.markdown("**Sample size**")
        goal = form.goal_metric
        start = experiment_form.baseline(goal, res.kpis_now() if experiment_form.measured_kpi(goal) else {})
        c1, c2 = st.columns(2)
        baseline = c1.number_input(f"Baseline {goal}", min_value=0.0, value=start.value, format="%.4f",
                                   key=f"{prefix}baseline", help=start.help)
        std = None
        if experiment_form.needs_std(goal):
            std = c2.number_input("Std per user", min_value=0.0001, value=1.0, key=f"{prefix}std")
        traffic = res.traffic_users_per_day()
        st.caption(experiment_form.traffic_text(traffic))
        try:
            p = experiment_form.plan(goal, baseline, form.mde, form.alpha, form.power, form.weights, traffic,
                                     form.coverage_pct, std)
        except ValueError as exc:
            st.warning(f"Not computable: {exc}")
            return None
        st.success(experiment_form.plan_text(p))
        return p.users_per_variant


def metrics_editor(start: ExperimentForm, prefix: str, locked: bool) -> list[dict[str, Any]]:
    """A small table of user-defined metrics: one row each, empty rows ignored."""
    columns = list(metric_table.COLUMNS)
    frame = pd.DataFrame(metric_table.rows_of(start.metrics), columns=columns)
    edited = st.data_editor(
        frame, num_rows="dynamic", disabled=locked, key=f"{prefix}metrics", hide_index=True,
        column_config={
            "kind": st.column_config.SelectboxColumn("kind", options=metric_table.KINDS),
            "event_type": st.column_config.SelectboxColumn("event type", options=metric_table.EVENT_TYPE_CHOICES),
            "direction": st.column_config.SelectboxColumn("direction", options=metric_table.DIRECTIONS),
            "role": st.column_config.SelectboxColumn("role", options=metric_table.ROLES),
            "margin": st.column_config.NumberColumn("margin", min_value=0.0, max_value=1.0, format="%.3f"),
            "cap_percentile": st.column_config.NumberColumn("cap pct", min_value=0.0, max_value=1.0),
            "cap_value": st.column_config.NumberColumn("cap value", min_value=0.0),
        },
    )
    st.caption("Your metrics. " + metric_table.HELP)
    return metric_table.declarations(edited.to_dict("records"))


def variant_inputs(ed: Editor) -> tuple[VariantRow, ...]:
    """One row per variant (name, model spec, weight), the first row the control; then each one's serving
    settings."""
    prefix, locked = ed.prefix, ed.locked
    count = int(st.number_input("Variants", min_value=2, max_value=experiment_form.MAX_VARIANTS,
                                value=len(ed.initial.variants), key=f"{prefix}nvar", disabled=locked,
                                help="the first one is the control"))
    rows = []
    for i in range(count):
        base = ed.variant_default(i)
        shown = "visible" if i == 0 else "collapsed"
        c1, c2, c3 = st.columns([2, 2, 1])
        name = c1.text_input("Variant" if i == 0 else "variant", value=base.name, key=f"{prefix}vname{i}",
                             disabled=locked, label_visibility=shown)
        choices = ed.spec_choices(base.model)
        model = c2.selectbox("Model" if i == 0 else "model", choices, disabled=locked, key=f"{prefix}vmodel{i}",
                             index=choices.index(base.model), format_func=ed.spec_label, accept_new_options=True,
                             label_visibility=shown,
                             help="als (its production version), als@production, als@candidate (the newest "
                                  "candidate), als@7 (the 7th version on the served dataset) or als@<version id>")
        weight = c3.number_input("Weight" if i == 0 else "weight", min_value=0.0, max_value=1.0, step=0.05,
                                 format="%.3f", value=float(base.weight), key=f"{prefix}vweight{i}",
                                 disabled=locked, label_visibility=shown)
        rows.append(VariantRow(name, model or "", weight, base.serving))
    st.caption("Serving settings per variant, applied when it serves (empty: the default)")
    return tuple(dataclasses.replace(row, serving=serving_inputs(ed, i, row)) for i, row in enumerate(rows))


def serving_inputs(ed: Editor, i: int, row: VariantRow) -> dict[str, float | int]:
    cols = st.columns([1, *([1] * len(experiment_form.SERVING_PARAMS))])
    cols[0].markdown(f"`{row.name.strip() or f'variant {i}'}`")
    values: dict[str, float | int | None] = {}
    for col, p in zip(cols[1:], experiment_form.SERVING_PARAMS, strict=True):
        start = row.serving.get(p.key)
        values[p.key] = col.number_input(
            p.label, min_value=int(p.minimum) if p.integer else p.minimum,
            max_value=(int(p.maximum) if p.integer else p.maximum) if p.maximum is not None else None,
            value=start, step=1 if p.integer else 0.05, format=None if p.integer else "%.2f", placeholder="default",
            help=p.help, key=f"{ed.prefix}v{p.key}{i}", disabled=ed.locked,
            label_visibility="visible" if i == 0 else "collapsed")
    return experiment_form.serving_params(values)


def editor(exp: Experiment | None) -> None:
    ed = experiment_form.editor(eng, exp, st.session_state.get(SUGGESTED))
    prefix, locked, start = ed.prefix, ed.locked, ed.initial
    st.subheader(ed.title)
    if ed.start is not None:
        c1, c2 = st.columns([4, 1])
        c1.info("Filled in from the Models page: change anything before creating the draft.",
                icon=":material/science:")
        if c2.button("Start from a blank form", key="ef-discard-suggestion"):
            del st.session_state[SUGGESTED]
            st.rerun()
    if ed.opens_phase:
        st.info("This experiment has started: changing variants, weights, coverage or layer opens a new phase "
                "(statistics restart; earlier phases stay readable).", icon=":material/info:")
    if locked:
        st.info("Stopped: only the name and the hypothesis can change.", icon=":material/lock:")
    slots: dict[str, Any] = {}

    left, right = st.columns(2)
    with left:
        key = st.text_input("Key", value=start.key, key=f"{prefix}key", disabled=not ed.creating,
                            placeholder="pop-vs-als", help="stable identifier: letters, digits, _ . -")
        slots["key"] = st.empty()
        name = st.text_input("Name", value=start.name, key=f"{prefix}name")
        slots["name"] = st.empty()
        hypothesis = st.text_area("Hypothesis", value=start.hypothesis, key=f"{prefix}hyp",
                                  placeholder="ALS lifts CTR by at least 5% over popularity", height=100)
        slots["hypothesis"] = st.empty()
        kind = st.segmented_control("Design", experiment_form.KINDS, default=start.kind, key=f"{prefix}kind",
                                    format_func=experiment_form.KIND_LABELS.get, disabled=ed.started) or "ab"
        st.caption(experiment_form.KIND_HELP[kind])
        slots["kind"] = st.empty()
        variants = variant_inputs(ed)
        slots["variants"] = st.empty()
    with right:
        c1, c2 = st.columns(2)
        coverage = c1.number_input("Coverage %", min_value=0.1, max_value=100.0, step=5.0, disabled=locked,
                                   value=start.coverage_pct, key=f"{prefix}cov")
        slots["coverage_pct"] = st.empty()
        layer = c2.text_input("Layer (optional)", value=start.layer, disabled=locked, key=f"{prefix}layer",
                              help="experiments of one layer never share a user")
        slots["layer"] = st.empty()
        metric_names = experiment_form.METRIC_NAMES
        goal = st.selectbox("Goal metric", metric_names, disabled=locked, key=f"{prefix}goal",
                            index=metric_names.index(start.goal_metric), format_func=experiment_form.metric_label)
        slots["goal_metric"] = st.empty()
        guardrails = st.multiselect("Guardrail metrics", metric_names, disabled=locked, key=f"{prefix}guard",
                                    default=list(start.guardrail_metrics))
        slots["guardrail_metrics"] = st.empty()
        metrics = metrics_editor(start, prefix, locked)
        slots["metrics"] = st.empty()
        c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
        engines = experiment_form.ENGINES
        engine = c1.selectbox("Deciding engine", engines, disabled=locked, key=f"{prefix}engine",
                              index=engines.index(start.engine))
        alpha = c2.number_input("Alpha", min_value=0.001, max_value=0.49, step=0.01, format="%.3f",
                                value=start.alpha, disabled=locked, key=f"{prefix}alpha")
        power = c3.number_input("Power", min_value=0.5, max_value=0.99, step=0.05, format="%.2f",
                                value=start.power, disabled=locked, key=f"{prefix}power")
        mde = c4.number_input("MDE (relative)", min_value=0.001, max_value=10.0, step=0.01, format="%.3f",
                              value=start.mde, disabled=locked, key=f"{prefix}mde")
        slots["engine"], slots["alpha"], slots["power"], slots["mde"] = st.empty(), st.empty(), st.empty(), st.empty()
        method, looks = start.sequential_method, start.sequential_looks
        if engine == "sequential":
            s1, s2 = st.columns([3, 1])
            methods = experiment_form.SEQUENTIAL_METHODS
            method = s1.radio("Sequential method", methods, index=methods.index(start.sequential_method),
                              format_func=experiment_form.SEQUENTIAL_METHOD_LABELS.__getitem__, horizontal=True,
                              disabled=locked, key=f"{prefix}seqmethod",
                              help="Both are tuned to the plan: the planned sample size (or the one the MDE needs) "
                                   "and the MDE.")
            looks = int(s2.number_input("Planned looks", min_value=1, max_value=1000, step=1,
                                        value=start.sequential_looks, disabled=locked or method != "group",
                                        key=f"{prefix}seqlooks"))
            slots["sequential"] = st.empty()
        form = ExperimentForm(key=key, name=name, hypothesis=hypothesis, kind=kind, variants=variants,
                              coverage_pct=coverage, layer=layer, goal_metric=goal, guardrail_metrics=tuple(guardrails),
                              engine=engine, alpha=alpha, power=power, mde=mde, sequential_method=method,
                              sequential_looks=looks, metrics=tuple(metrics))
        needed = calculator(form, prefix)
        use_plan = st.checkbox("Plan for this sample size", value=start.use_plan, key=f"{prefix}useplan",
                               disabled=locked,
                               help="recorded as the planned sample size; progress is measured against it")
        slots["planned_sample_size"] = st.empty()
    slots[GENERAL] = st.empty()

    if not st.button(ed.submit_label, type="primary", key=f"{prefix}submit", icon=":material/save:"):
        return
    who = ui.current_writer()
    if who is None:
        slots[GENERAL].error("Log in to create or change experiments; nothing was saved.")
        return
    done = ed.submit(eng, dataclasses.replace(form, use_plan=use_plan), needed, who)
    for field, slot in slots.items():
        errors_below(slot, done.errors, field)
    if done.invalid:
        st.error("Nothing was saved: fix the fields marked above.")
    if done.unchanged:
        st.info("Nothing changed.")
    if done.saved is None:
        return
    st.session_state[SELECT_NEXT] = done.saved.key
    st.session_state.pop(SUGGESTED, None)
    st.session_state[RESULT] = experiment_form.saved_text(done.saved)
    st.rerun()


# ----------------------------------------------------------------------------- page

with ui.guard("running the confirmed action"):
    ui.run_confirmed(PENDING, "manage experiments", functools.partial(backend.run_confirmed, eng), RESULT)
ui.show_result(RESULT)

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
            current = backend.get(eng, selected)
        except NotFoundError:
            st.warning(f"`{selected}` no longer exists.")
    if current is not None:
        actions_section(current)
    if selected == NEW or current is not None:
        editor(current)
