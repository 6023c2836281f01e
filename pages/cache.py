"""Cache and features: keys and memory per prefix, TTLs, hit ratios; invalidate, warm, inspect; the audit log."""

from __future__ import annotations

import functools

import streamlit as st

from engine.console import cache_actions as actions
from engine.console import cache_view as view
from engine.console import preview
from engine.console.monitoring_view import hit_ratio_cards
from pages import _resources as res
from pages import _ui as ui

PENDING = "cache_pending"  # a confirmed action, run on the next script run (dialog buttons only rerun)
RESULT = "cache_result"
AUDIT_ROWS = 200

if not ui.header("Cache and features", "What the cache and the feature store hold in Redis, and the operator "
                                       "actions on them. Every write is recorded in the audit log."):
    st.stop()
eng = res.engine()
examples = preview.example_ids(eng)  # ids of the served dataset, as placeholders


# ----------------------------------------------------------------------------- confirmed actions


@st.dialog("Invalidate a user's cache")
def confirm_user(user_id: str, keys: actions.UserKeys) -> None:
    st.markdown(view.confirm_user_text(user_id, keys))
    ui.confirm_buttons("Invalidate", "user", PENDING, {"kind": "invalidate_user", "user": user_id})


@st.dialog("Invalidate every recommendation list")
def confirm_all(count: int) -> None:
    st.warning(view.confirm_all_text(count), icon=":material/warning:")
    typed = st.text_input(f"Type “{actions.CONFIRM_ALL_PHRASE}” to confirm", key="confirm_all_text")
    ui.confirm_buttons("Invalidate everything", "all", PENDING, {"kind": "invalidate_all", "typed": typed},
                       disabled=not actions.confirmation_ok(typed))


# ----------------------------------------------------------------------------- sections


def keyspace_section() -> None:
    top = st.columns([4, 1])
    top[0].subheader("Keys and memory per prefix")
    if top[1].button("Rescan", icon=":material/refresh:", width="stretch"):
        res.rescan_keyspace()
    scan = res.keyspace_report()
    report = scan.value
    ui.cards(view.keyspace_cards(report))
    st.caption(view.scan_caption(scan.age_seconds))
    if not report.families:
        st.info("No key under the prefix yet.")
        return
    table = report.table()
    left, right = st.columns([3, 2])
    with left:
        st.dataframe(view.families_table(table), hide_index=True, width="stretch")
    with right:
        ui.chart(view.memory_figure(table))
    ui.chart(view.ttl_figure(report))


def hit_ratio_section() -> None:
    st.subheader("Hit ratios")
    source = res.metrics_source()
    if source is None:
        st.caption("No metrics source (API or Prometheus) is configured.")
        return
    with ui.guard("reading hit ratios"):
        ratios = res.tier_hit_ratios(source.kind, source.url)
        values = res.current_kpis(source.kind, source.url)
        ui.cards(hit_ratio_cards(ratios, values), columns=2)
        st.caption(f"Of the API: {source.window}.")


def invalidate_section() -> None:
    st.markdown("**Invalidate**")
    left, right = st.columns(2)
    with left, st.container(border=True):
        raw = st.text_input("User to invalidate", key="inv_user", placeholder=examples["User"])
        if raw.strip():
            try:
                user_id = actions.check_user_id(raw)
            except ValueError as exc:
                st.error(str(exc))
            else:
                keys = actions.user_keys(eng.redis, eng.keys, user_id)
                st.caption(view.user_keys_text(user_id, keys))
                if st.button("Invalidate this user …", key="inv_user_btn", disabled=keys.total == 0):
                    confirm_user(user_id, keys)
    with right, st.container(border=True):
        count = actions.count_cached_lists(eng.redis, eng.keys)
        st.caption(view.cached_lists_text(count))
        if st.button("Invalidate all recommendations …", key="inv_all_btn", disabled=count == 0):
            confirm_all(count)


def warm_section(who: str) -> None:
    st.markdown("**Warm the cache**")
    with st.form("warm", border=True):
        mode = st.radio("Users", view.WARM_MODES, horizontal=True, key="warm_mode")
        top_n = st.number_input("How many of the most active users", 1, actions.MAX_WARM_USERS, 100, key="warm_top")
        pasted = st.text_area("User ids (spaces, commas or new lines)", key="warm_list", height=90)
        n = st.number_input("List length n", 1, 100, eng.settings.default_n, key="warm_n")
        submitted = st.form_submit_button("Warm", type="primary", icon=":material/local_fire_department:")
    if not submitted:
        return
    try:
        request = view.warm_request(eng, mode, int(top_n), pasted)
        bar = st.progress(0.0, text=view.warm_start_text(request))
        report = actions.warm(eng, request.users, who, n=int(n), source=request.source,
                              progress=lambda done, total: bar.progress(*view.warm_progress(done, total)))
    except ValueError as exc:
        st.error(f"{exc} Nothing was warmed.")
        return
    res.rescan_keyspace()
    st.success(view.warm_result_text(report))


def inspect_section() -> None:
    kind = st.segmented_control("Entity", view.ENTITY_KINDS, default="User", key="insp_kind") or "User"
    raw = st.text_input(f"{kind} id", key="insp_id", placeholder=examples[kind])
    if not raw.strip():
        return
    try:
        found = view.inspect_entity(eng, kind, raw)
    except ValueError as exc:
        st.error(str(exc))
        return
    except view.NotInCatalogueError as exc:
        st.warning(str(exc))
        return
    st.caption(found.caption)
    st.dataframe(found.table, hide_index=True, width="stretch")


def audit_section() -> None:
    st.caption("Every operator write, newest first: who, what, when and how many keys.")
    table = view.audit_table(eng, AUDIT_ROWS)
    if table.empty:
        st.caption("No operator action recorded yet.")
        return
    st.dataframe(table, hide_index=True, width="stretch")


with ui.guard("running the confirmed action"):
    if ui.run_confirmed(PENDING, "change the cache", functools.partial(actions.run_confirmed, eng), RESULT):
        res.rescan_keyspace()
ui.show_result(RESULT)

# lazy tabs: only the open one runs (the keyspace scan, a SCAN count and the audit read are apart)
keys_tab, ops_tab, features_tab, audit_tab = st.tabs(
    ["Keys and memory", "Operations", "Inspect features", "Audit log"], key="cache_tab", on_change="rerun")
if keys_tab.open:
    with keys_tab:
        with ui.guard("scanning the keyspace"):
            keyspace_section()
        hit_ratio_section()
if ops_tab.open:
    with ops_tab:
        writer = ui.writer("change the cache", "cache")
        if writer is not None:
            with ui.guard("preparing cache operations"):
                invalidate_section()
                warm_section(writer)
if features_tab.open:
    with features_tab, ui.guard("reading features"):
        inspect_section()
if audit_tab.open:
    with audit_tab, ui.guard("reading the audit log"):
        audit_section()
