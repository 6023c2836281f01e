"""Models: the dataset served; model versions per dataset with lineage and offline metrics; promote and roll back."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import streamlit as st

from engine.console import models as mv
from pages import _resources as res
from pages import _ui as ui

PENDING = "models_pending"  # a confirmed switch, run on the next script run (dialog buttons only rerun)
RESULT = "models_result"

if not ui.header("Models", "Which dataset is served, every model version trained on a dataset with what it learnt "
                           "from and how it scored offline, and the switch of what serves. Every switch is audited."):
    st.stop()
eng = res.engine()
poll = eng.settings.model_poll_seconds


# ----------------------------------------------------------------------------- confirmed actions


@st.dialog("Promote a model version")
def confirm_promote(model: str, version: str, dataset: str, current: str | None) -> None:
    st.markdown(mv.confirm_promote_text(model, version, dataset, current, poll))
    ui.confirm_buttons("Promote", "promote", PENDING,
                       {"kind": "promote", "model": model, "version": version, "dataset": dataset})


@st.dialog("Roll back a model")
def confirm_rollback(choice: mv.Rollback) -> None:
    st.markdown(mv.confirm_rollback_text(choice, poll))
    ui.confirm_buttons("Roll back", "rollback", PENDING,
                       {"kind": "rollback", "model": choice.model, "dataset": choice.dataset})


# ----------------------------------------------------------------------------- sections


def served_section() -> None:
    summary = eng.stored.summary()
    ui.cards(mv.dataset_cards(summary))
    served, default = eng.served_versions()
    st.caption(mv.dataset_caption(summary, served, default))


def versions_section(records: Sequence[mv.VersionRecord]) -> None:
    st.dataframe(mv.versions_frame(records), hide_index=True, width="stretch",
                 column_config={"version": st.column_config.TextColumn("version", width="medium"),
                                "params": st.column_config.TextColumn("params", width="large")})
    note = mv.unscored_text(records)
    if note:
        st.caption(note)
    if not mv.scored(records):
        return
    for col, (key, label) in zip(st.columns(len(mv.METRICS)), mv.METRICS, strict=True):
        with col:
            ui.chart(mv.metric_figure(records, key, label))


def switch_section(registry: mv.ModelRegistry, records: Sequence[mv.VersionRecord], dataset: str) -> None:
    names = sorted({r.model for r in records})
    labels = {r.version: f"{r.version} ({r.stage})" for r in records}
    left, right = st.columns(2)
    with left, st.container(border=True):
        st.markdown("**Promote**")
        model = st.selectbox("Model to promote", names, key="promote_model")
        versions = mv.promotable(records, model)
        if not versions:
            st.caption(f"No candidate or archived version of `{model}` to promote.")
        else:
            version = st.selectbox("Version", versions, key="promote_version", format_func=labels.__getitem__)
            if st.button("Promote …", key="promote_btn", icon=":material/upgrade:"):
                confirm_promote(model, version, dataset, mv.production_version(records, model))
    with right, st.container(border=True):
        st.markdown("**Roll back**")
        model = st.selectbox("Model to roll back", names, key="rollback_model")
        choice = mv.rollback_choice(registry, model, dataset)
        if choice is None:
            st.caption(f"`{model}` has no earlier production version on {dataset} to go back to.")
        else:
            st.caption(f"Serves `{choice.target}` again instead of `{choice.current}`.")
            if st.button("Roll back …", key="rollback_btn", icon=":material/undo:"):
                confirm_rollback(choice)


with ui.guard("running the confirmed switch"):
    ui.run_confirmed(PENDING, "promote or roll back models", functools.partial(mv.run_confirmed, eng), RESULT)
ui.show_result(RESULT)

st.subheader("Served")
served_section()

registry = mv.open_registry(eng)
try:
    dataset = st.selectbox("Dataset", mv.dataset_choices(registry, eng.dataset.name), key="models_dataset")
    records = registry.records(dataset)
except mv.RegistryError as exc:
    st.error(f"The model registry cannot be read: {exc}")
    st.stop()
st.subheader("Versions")
if not records:
    st.info(f"No model is trained on dataset {dataset} yet: `recops train --dataset {dataset}`.")
    st.stop()
versions_section(records)
st.subheader("Promote or roll back")
writer = ui.writer("promote or roll back models", "models")
if writer is not None:
    with ui.guard("preparing the switch"):
        switch_section(registry, records, dataset)
