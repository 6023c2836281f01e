"""Recommendations: preview a user's list under any model and diversity setting, and compare two models."""

from __future__ import annotations

import streamlit as st

from engine.console import preview
from engine.serving.diversity import DiversitySettings
from engine.serving.service import RecommendationResult
from pages import _resources as res
from pages import _ui as ui

USER_KEY = "rec_user"

if not ui.header("Recommendations", "Preview what a user is recommended: any model or the one they are served, "
                                  "any list length and diversity setting, and two models side by side."):
    st.stop()
eng = res.engine()
models = preview.model_names(eng)


def pick_user() -> str | None:
    mode = st.segmented_control("User", preview.USER_MODES, default="Search", key="rec_mode", width="stretch")
    if mode == "Random":
        if st.button("Pick another random user", icon=":material/shuffle:") or not st.session_state.get("rec_random"):
            st.session_state["rec_random"] = preview.random_user(eng)
        return st.session_state["rec_random"]
    if mode == "New user":
        if st.button("New user id", icon=":material/person_add:") or not st.session_state.get("rec_new"):
            st.session_state["rec_new"] = preview.new_user_id()
        st.caption(preview.cold_start_text(st.session_state["rec_new"]))
        return st.session_state["rec_new"]
    query = st.text_input("Search user id", key="rec_query",
                          placeholder=f"e.g. {preview.example_ids(eng)['User']} — empty lists the most active")
    try:
        matches = preview.user_choices(eng, query)
    except ValueError as exc:
        st.error(str(exc))
        return None
    if not matches:
        st.warning("No user matches.")
        return None
    return st.selectbox("Matching users (most active first)", matches, key=USER_KEY)


def settings_panel() -> tuple[str, int, DiversitySettings]:
    model = st.selectbox("Model", [preview.AS_SERVED, *models], key="rec_model",
                         help="'as served' is what the API serves the user: their running experiment arm's model "
                              "version and serving settings (which replace n and the diversity below), else the "
                              "default model")
    n = st.number_input("List length n", min_value=1, max_value=100, value=eng.settings.default_n, key="rec_n")
    capped = st.toggle("Category cap", value=True, key="rec_cap_on")
    cap = st.number_input("At most per category", min_value=1, max_value=100, value=eng.settings.category_cap,
                          key="rec_cap", disabled=not capped)
    lam = st.slider("MMR λ (1 = relevance only)", 0.0, 1.0, float(eng.settings.mmr_lambda), 0.05, key="rec_lambda")
    return model, int(n), preview.diversity_settings(capped, int(cap), lam)


def result_table(result: RecommendationResult) -> None:
    frame = preview.items_frame(result)
    st.dataframe(
        frame, hide_index=True, width="stretch",
        column_config={"score": st.column_config.ProgressColumn("score", format="%.4f", min_value=0.0,
                                                                max_value=preview.score_scale(frame), width="small"),
                       "rank": st.column_config.NumberColumn("#", width=40),
                       "category": st.column_config.TextColumn("category", width="small"),
                       "reason": st.column_config.TextColumn("reason", width="large"),
                       "item_id": st.column_config.TextColumn("item", width="small")},
    )


def result_header(result: RecommendationResult) -> None:
    ui.cards(preview.result_cards(result))
    ui.notice(preview.result_notice(result))


def profile(user_id: str) -> None:
    prof = preview.user_profile(eng, user_id)
    ui.cards(preview.profile_cards(prof))
    st.caption(preview.last_active_text(prof))
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**History** (most recent first)")
        if prof.history.empty:
            st.caption("No history.")
        else:
            st.dataframe(prof.history, hide_index=True, width="stretch", height=300)
    with right:
        st.markdown("**Category affinity**")
        ui.chart(preview.affinity_figure(prof), "No category affinity yet.")


def compare(user_id: str, n: int, div: DiversitySettings) -> None:
    if len(models) < 2:
        st.info("Only one model is loaded: nothing to compare.")
        return
    c1, c2 = st.columns(2)
    model_a = c1.selectbox("Model A", models, index=0, key="cmp_a")
    model_b = c2.selectbox("Model B", models, index=1, key="cmp_b")
    cmp = preview.compare_models(eng, user_id, n, model_a, model_b, div, res.item_popularity_shares())
    ui.cards(preview.comparison_cards(cmp.lists))
    for col, (model, result) in zip(st.columns(2), cmp.sides(), strict=True):
        with col:
            st.markdown(preview.side_caption(model, result))
            st.dataframe(preview.side_table(result, cmp.lists.shared), hide_index=True, width="stretch")
    ui.chart(preview.rank_moves_figure(cmp))


user: str | None = None
model_choice, n, diversity = preview.AS_SERVED, eng.settings.default_n, DiversitySettings()
controls, main = st.columns([1.2, 3], gap="large")
with controls, ui.guard("reading users"):
    user = pick_user()
    model_choice, n, diversity = settings_panel()
with main:
    if user is None:
        st.info("Pick a user to preview.")
        st.stop()
    with ui.guard("computing the list"):
        shown = preview.preview_list(eng, user, model_choice, n, diversity)
        st.subheader(f"Recommended to {user}")
        st.caption(shown.caption)
        result_header(shown.result)
        result_table(shown.result)
    # lazy tabs: only the open one runs (comparing costs two more lists and a chart)
    tab_profile, tab_compare = st.tabs(["History and features", "Compare two models"], key="rec_tabs",
                                       on_change="rerun")
    if tab_profile.open:
        with tab_profile, ui.guard("reading the user's features"):
            profile(user)
    if tab_compare.open:
        with tab_compare, ui.guard("comparing models"):
            compare(user, n, diversity)
