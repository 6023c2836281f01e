"""Recommendations: preview a user's list under any model and diversity setting, and compare two models."""

from __future__ import annotations

import streamlit as st

from engine.console import preview
from engine.console.cache_actions import check_user_id
from engine.serving.diversity import DiversitySettings
from engine.serving.service import RecommendationResult
from pages import _resources as res
from pages import _ui as ui

AS_SERVED = "as served"
USER_KEY = "rec_user"

if not ui.header("Recommendations", "Preview what a user is recommended: any model or the one they are served, "
                                  "any list length and diversity setting, and two models side by side."):
    st.stop()
eng = res.engine()
models = sorted(eng.service.models)


def pick_user() -> str | None:
    mode = st.segmented_control("User", ["Search", "Random", "New user"], default="Search", key="rec_mode",
                                width="stretch")
    if mode == "Random":
        if st.button("Pick another random user", icon=":material/shuffle:") or not st.session_state.get("rec_random"):
            st.session_state["rec_random"] = preview.random_user(eng)
        return st.session_state["rec_random"]
    if mode == "New user":
        if st.button("New user id", icon=":material/person_add:") or not st.session_state.get("rec_new"):
            st.session_state["rec_new"] = preview.new_user_id()
        st.caption(f"`{st.session_state['rec_new']}` has no history: a cold start.")
        return st.session_state["rec_new"]
    query = st.text_input("Search user id", key="rec_query", placeholder="e.g. u00042 — empty lists the most active")
    try:
        if query.strip():
            check_user_id(query)
    except ValueError as exc:
        st.error(str(exc))
        return None
    matches = preview.search_users(eng, query)
    if query.strip() and query.strip() not in matches:
        matches = [query.strip(), *matches]  # any valid id can be previewed, known or not
    if not matches:
        st.warning("No user matches.")
        return None
    return st.selectbox("Matching users (most active first)", matches, key=USER_KEY)


def settings_panel() -> tuple[str, int, DiversitySettings]:
    model = st.selectbox("Model", [AS_SERVED, *models], key="rec_model",
                         help="'as served' is the variant the user is assigned by a running experiment")
    n = st.number_input("List length n", min_value=1, max_value=100, value=eng.settings.default_n, key="rec_n")
    capped = st.toggle("Category cap", value=True, key="rec_cap_on")
    cap = st.number_input("At most per category", min_value=1, max_value=100, value=eng.settings.category_cap,
                          key="rec_cap", disabled=not capped)
    lam = st.slider("MMR λ (1 = relevance only)", 0.0, 1.0, float(eng.settings.mmr_lambda), 0.05, key="rec_lambda")
    return model, int(n), DiversitySettings(category_cap=int(cap) if capped else None, mmr_lambda=float(lam))


def result_table(result: RecommendationResult) -> None:
    frame = preview.items_frame(result)
    top = float(frame["score"].max()) if len(frame) else 1.0
    st.dataframe(
        frame, hide_index=True, width="stretch",
        column_config={"score": st.column_config.ProgressColumn("score", format="%.4f", min_value=0.0,
                                                                max_value=max(top, 1e-9), width="small"),
                       "rank": st.column_config.NumberColumn("#", width=40),
                       "category": st.column_config.TextColumn("category", width="small"),
                       "reason": st.column_config.TextColumn("reason", width="large"),
                       "item_id": st.column_config.TextColumn("item", width="small")},
    )


def result_header(result: RecommendationResult) -> None:
    cols = st.columns(4)
    cols[0].metric("Cache tier", result.cache_tier, help="l1 (in process), l2 (Redis), miss (computed) or fallback")
    cols[1].metric("Latency", f"{result.latency_seconds * 1000:.2f} ms")
    cols[2].metric("Diversity", f"{result.diversity:.2f}", help="1 − share of same-category pairs in the list")
    cols[3].metric("Items", len(result.items))
    if result.fallback:
        st.warning(f"Fallback list (popular items): {result.fallback_reason}")
    elif result.cold_start:
        st.info("Cold start: the user has no usable history, so the list is the most popular items.")


def profile(user_id: str) -> None:
    prof = preview.user_profile(eng, user_id)
    f = prof.features
    cols = st.columns(3)
    cols[0].metric("Known user", "yes" if prof.known else "no")
    cols[1].metric("Items in history", len(f.history))
    cols[2].metric("Purchases", f.total_purchases)
    st.caption(f"Last active {ui.when(f.last_active)}." if f.last_active else "Never active.")
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**History** (most recent first)")
        if prof.history.empty:
            st.caption("No history.")
        else:
            st.dataframe(prof.history, hide_index=True, width="stretch", height=300)
    with right:
        st.markdown("**Category affinity**")
        if prof.affinity.empty:
            st.caption("No category affinity yet.")
        else:
            fig = ui.hbar_chart(prof.affinity["category"].tolist(), prof.affinity["share"].tolist(), height=300,
                                xaxis={"tickformat": ".0%"})
            st.plotly_chart(fig, width="stretch")


def compare(user_id: str, n: int, div: DiversitySettings) -> None:
    if len(models) < 2:
        st.info("Only one model is loaded: nothing to compare.")
        return
    c1, c2 = st.columns(2)
    model_a = c1.selectbox("Model A", models, index=0, key="cmp_a")
    model_b = c2.selectbox("Model B", models, index=1, key="cmp_b")
    a = eng.service.recommend(user_id, n=n, model=model_a, diversity=div)
    b = eng.service.recommend(user_id, n=n, model=model_b, diversity=div)
    cmp = preview.compare_lists(a.items, b.items, res.item_popularity_shares())
    cols = st.columns(4)
    cols[0].metric("Jaccard overlap", f"{cmp.jaccard:.2f}", help="shared items / items in either list")
    cols[1].metric("Rank-biased overlap", f"{cmp.rbo:.2f}",
                   help=f"RBO (p={preview.RBO_P}): agreement weighted towards the top ranks")
    cols[2].metric("Diversity A / B", f"{cmp.diversity_a:.2f} / {cmp.diversity_b:.2f}",
                   help="intra-list diversity: 1 − share of same-category pairs")
    cols[3].metric("Novelty A / B", f"{cmp.novelty_a:.2f} / {cmp.novelty_b:.2f}",
                   help="mean −log2(share of users who interacted with the item)")
    left, right = st.columns(2)
    shared = set(cmp.shared)
    for col, model, res_ in ((left, model_a, a), (right, model_b, b)):
        with col:
            st.markdown(f"**{model}** · {res_.cache_tier} · {res_.latency_seconds * 1000:.1f} ms")
            frame = preview.items_frame(res_)[["rank", "title", "category", "score"]]
            frame.insert(1, "in both", [i["item_id"] in shared for i in res_.items])
            st.dataframe(frame, hide_index=True, width="stretch")
    if shared:
        rank_a = {i["item_id"]: r for r, i in enumerate(a.items, 1)}
        rank_b = {i["item_id"]: r for r, i in enumerate(b.items, 1)}
        titles = {i["item_id"]: i["title"] for i in a.items}
        moves = [{"type": "scatter", "x": [model_a, model_b], "y": [rank_a[i], rank_b[i]], "mode": "lines+markers",
                  "name": titles[i], "hovertemplate": "%{y}"} for i in cmp.shared]
        fig = ui.figure(moves, "Rank of the shared items", showlegend=False,
                        yaxis={"autorange": "reversed", "title": {"text": "rank"}, "dtick": 1})
        st.plotly_chart(fig, width="stretch")


user: str | None = None
model_choice, n, diversity = AS_SERVED, eng.settings.default_n, DiversitySettings()
controls, main = st.columns([1.2, 3], gap="large")
with controls, ui.guard("reading users"):
    user = pick_user()
    model_choice, n, diversity = settings_panel()
with main:
    if user is None:
        st.info("Pick a user to preview.")
        st.stop()
    with ui.guard("computing the list"):
        choice = preview.served_choice(eng, user)
        model = choice.model if model_choice == AS_SERVED else model_choice
        result = eng.service.recommend(user, n=n, model=model, diversity=diversity)
        st.subheader(f"Recommended to {user}")
        st.caption(f"Model **{result.model}** — " + (f"as served: {choice.text}." if model_choice == AS_SERVED else
                   f"chosen here; the API serves this user {choice.text}."))
        result_header(result)
        result_table(result)
    # lazy tabs: only the open one runs (comparing costs two more lists and a chart)
    tab_profile, tab_compare = st.tabs(["History and features", "Compare two models"], key="rec_tabs",
                                       on_change="rerun")
    if tab_profile.open:
        with tab_profile, ui.guard("reading the user's features"):
            profile(user)
    if tab_compare.open:
        with tab_compare, ui.guard("comparing models"):
            compare(user, n, diversity)
