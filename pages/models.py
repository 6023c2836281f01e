"""Models: the dataset served; model versions per dataset with lineage and offline metrics; promote and roll back;
import a dataset from uploaded files and train models on any dataset."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from engine.console import datasets as dv
from engine.console import experiments as exp_backend
from engine.console import model_specs
from engine.console import models as mv
from engine.console import offline_check as oc
from pages import _experiments_ui as exp_ui
from pages import _models_ui as models_ui
from pages import _resources as res
from pages import _ui as ui

PENDING = "models_pending"  # a confirmed switch, run on the next script run (dialog buttons only rerun)
RESULT = "models_result"
DATA_OUTCOME = "data_outcome"  # (form, Outcome) of the last import or training, shown after the rerun

if not ui.header("Models", "Which dataset is served, every model version trained on a dataset with what it learnt "
                           "from and how it scored offline, the switch of what serves, importing a dataset and "
                           "training. Every write is audited."):
    st.stop()
eng = res.engine()
poll = eng.settings.model_poll_seconds


# ----------------------------------------------------------------------------- confirmed actions


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


def ab_test_section(records: Sequence[mv.VersionRecord], dataset: str) -> None:
    """A candidate of the served dataset, and the button that opens the experiment editor testing it."""
    candidates = mv.testable_candidates(records, dataset, eng.dataset.name)
    if not candidates:
        return
    numbers = model_specs.version_numbers(records)
    by_version = {r.version: r for r in candidates}
    box = st.container(border=True)
    box.markdown("**A/B test a candidate** against its model's production version")
    left, right = box.columns([3, 2], vertical_alignment="bottom")
    version = left.selectbox("Candidate", list(by_version), key="ab_candidate",
                             format_func=lambda v: mv.candidate_label(by_version[v], numbers[v]))
    if right.button("A/B test this candidate against production", key="ab_candidate_btn", icon=":material/science:",
                    help="Opens the Experiments page's editor filled in; nothing is saved before you create it."):
        record = by_version[version]
        production = mv.production_version(records, record.model)
        taken = {e.key for e in exp_backend.listed(eng)}
        exp_ui.open_editor(mv.ab_test_form(record, numbers[version], numbers.get(production or ""), taken))


def offline_check_section(records: Sequence[mv.VersionRecord]) -> None:
    """OPE of a candidate against the exploring logs of the served dataset, before anyone A/B tests it."""
    box = st.container(border=True)
    box.markdown("**Offline check**: a candidate's clicks per list estimated from the exploring logs")
    left, right = box.columns([2, 3])
    spec = left.selectbox("Candidate", oc.spec_choices(records), key="ope_spec")
    params = right.text_input("Serving parameters (optional)", key="ope_params", placeholder="mmr_lambda=0.5,n=10")
    simulate = 0
    if eng.world is not None and box.checkbox("Simulate logged impressions first (demo world)", key="ope_sim"):
        simulate = int(box.number_input("Lists to simulate", 1_000, oc.MAX_SIMULATED, 20_000, 1_000,
                                        key="ope_sim_n"))
    if box.button("Run the offline check", key="ope_run", icon=":material/query_stats:"):
        with st.spinner("Estimating from the logs …"):
            st.session_state["ope_outcome"] = oc.run_check(oc.offline_check(eng), oc.target_text(spec, params),
                                                           simulate)
    outcome: oc.CheckOutcome | None = st.session_state.get("ope_outcome")
    if outcome is None:
        return
    if outcome.result is None:
        box.info(outcome.message)
        return
    with box:
        ui.cards(oc.result_cards(outcome.result))
        st.dataframe(oc.result_frame(outcome.result), hide_index=True, width="stretch")
        st.caption(oc.caption(outcome.result))


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
                models_ui.confirm_promote(model, version, dataset, mv.production_version(records, model), PENDING)
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

def show_outcome(form: str) -> None:
    """The outcome of the last import or training, beside the form that asked for it."""
    kept = st.session_state.get(DATA_OUTCOME)
    if kept is None or kept[0] != form:
        return
    outcome: dv.Outcome = kept[1]
    ui.notice(outcome.notice)
    if not outcome.table.empty:
        st.dataframe(outcome.table, hide_index=True, width="stretch")


def keep_outcome(form: str, outcome: dv.Outcome) -> None:
    st.session_state[DATA_OUTCOME] = (form, outcome)
    st.rerun()  # the tables above show the new dataset version or model versions


def upload(file: UploadedFile | None) -> dv.Upload | None:
    return None if file is None else dv.Upload(file.name, file.getvalue())


def import_section(who: str) -> None:
    with st.form("import_form", border=True):
        name = st.text_input("Dataset name", max_chars=64, key="import_name",
                             help="Importing under an existing name adds a new version of it.")
        interactions = st.file_uploader("Interactions: user_id, item_id[, timestamp, event, rating, weight]",
                                        type=dv.UPLOAD_TYPES, key="import_interactions")
        items = st.file_uploader("Items (optional): item_id[, title, category, further attributes]",
                                 type=dv.UPLOAD_TYPES, key="import_items")
        share = st.number_input("Max reject share", min_value=0.0, max_value=1.0, step=0.005, format="%.3f",
                                value=dv.DEFAULT_MAX_REJECT_SHARE, key="import_share",
                                help="Refuse the import when a larger share of a file's rows is rejected.")
        submitted = st.form_submit_button("Import", type="primary", icon=":material/upload:")
    if submitted:
        with st.spinner("Importing …"):
            outcome = dv.import_upload(eng, who, name, upload(interactions), upload(items), share)
        keep_outcome("import", outcome)
    show_outcome("import")


def train_section(who: str) -> None:
    with st.form("train_form", border=True):
        left, right = st.columns(2)
        dataset = left.selectbox("Dataset to train on", dv.training_choices(eng), key="train_dataset")
        model = right.selectbox("Model", dv.MODEL_CHOICES, key="train_model")
        params = st.text_area("Parameters (optional): key=value lines, model.key=value for one model",
                              key="train_params", placeholder="als.factors=64\nhalf_life_days=14")
        submitted = st.form_submit_button("Train", type="primary", icon=":material/model_training:")
    if submitted:
        with st.spinner(f"Training {model} on {dataset} (scored on both holdouts, then fitted on everything) …"):
            outcome = dv.train(eng, who, dataset, model, params)
        keep_outcome("train", outcome)
    show_outcome("train")


def data_section(login_shown: bool) -> None:
    st.subheader("Datasets")
    with ui.guard("reading the datasets"):
        frame = dv.datasets_frame(eng)
        if frame.empty:
            st.caption("No dataset imported yet; the demo world is always available to train on.")
        else:
            st.dataframe(frame, hide_index=True, width="stretch")
    who = ui.current_writer() if login_shown else ui.writer("import datasets and train models", "data")
    if who is None:
        st.caption("Log in (above) to import datasets and train models.")
        return
    st.subheader("Import a dataset")
    with ui.guard("importing the dataset"):
        import_section(who)
    st.subheader("Train")
    with ui.guard("training"):
        train_section(who)


registry = mv.open_registry(eng)
try:
    dataset = st.selectbox("Dataset", mv.dataset_choices(registry, eng.dataset.name), key="models_dataset")
    records = registry.records(dataset)
except mv.RegistryError as exc:
    st.error(f"The model registry cannot be read: {exc}")
    st.stop()
st.subheader("Versions")
writer = None
if not records:
    st.info(f"No model is trained on dataset {dataset} yet: train one below or `recops train --dataset {dataset}`.")
else:
    versions_section(records)
    with ui.guard("preparing the A/B test"):
        ab_test_section(records, dataset)
    if dataset == eng.dataset.name:
        with ui.guard("running the offline check"):
            offline_check_section(records)
    st.subheader("Promote or roll back")
    writer = ui.writer("promote or roll back models", "models")
    if writer is not None:
        with ui.guard("preparing the switch"):
            switch_section(registry, records, dataset)
data_section(login_shown=bool(records) and writer is None)
