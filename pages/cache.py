"""Cache and features: keys and memory per prefix, TTLs, hit ratios; invalidate, warm, inspect; the audit log."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.console import cache_actions as actions
from engine.console import preview
from engine.console.monitoring_panels import format_value
from pages import _resources as res
from pages import _ui as ui

PENDING = "cache_pending"  # a confirmed action, run on the next script run (dialog buttons only rerun)
RESULT = "cache_result"
AUDIT_ROWS = 200

if not ui.header("Cache and features", "What the cache and the feature store hold in Redis, and the operator "
                                       "actions on them. Every write is recorded in the audit log."):
    st.stop()
eng = res.engine()


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# ----------------------------------------------------------------------------- confirmed actions


def run_pending() -> None:
    """Execute the action a dialog confirmed."""
    confirmed = ui.pop_confirmed(PENDING, "change the cache")
    if confirmed is None:
        return
    action, who = confirmed
    try:
        if action["kind"] == "invalidate_user":
            r = actions.invalidate_user(eng, action["user"], who)
            msg = f"Invalidated `{action['user']}`: {r.lists} cached lists and {r.features} feature hash deleted."
        elif action["kind"] == "invalidate_all":
            r = actions.invalidate_all(eng, who, action.get("typed", ""))
            msg = f"Invalidated every cached list: {r.lists} deleted."
        else:
            st.error(f"Unknown action {action['kind']!r}; nothing was done.")
            return
    except ValueError as exc:
        st.error(f"{exc} Nothing was done.")
        return
    res.rescan_keyspace()
    st.session_state[RESULT] = msg


@st.dialog("Invalidate a user's cache")
def confirm_user(user_id: str, keys: actions.UserKeys) -> None:
    st.markdown(f"Delete **{len(keys.lists)}** cached list(s) and {'the' if keys.features else 'no'} feature hash "
                f"of `{user_id}`? Their next request is computed afresh; every API process drops its L1 copy.")
    left, right = st.columns(2)
    if left.button("Invalidate", type="primary", key="confirm_user_btn", width="stretch"):
        st.session_state[PENDING] = {"kind": "invalidate_user", "user": user_id}
        st.rerun()
    if right.button("Cancel", key="cancel_user_btn", width="stretch"):
        st.rerun()


@st.dialog("Invalidate every recommendation list")
def confirm_all(count: int) -> None:
    st.warning(f"This deletes **all {count:,}** cached recommendation lists. Until the cache refills, every "
               "request is computed, and latency rises.", icon=":material/warning:")
    typed = st.text_input(f"Type “{actions.CONFIRM_ALL_PHRASE}” to confirm", key="confirm_all_text")
    left, right = st.columns(2)
    if left.button("Invalidate everything", type="primary", key="confirm_all_btn", width="stretch",
                   disabled=not actions.confirmation_ok(typed)):
        st.session_state[PENDING] = {"kind": "invalidate_all", "typed": typed}
        st.rerun()
    if right.button("Cancel", key="cancel_all_btn", width="stretch"):
        st.rerun()


# ----------------------------------------------------------------------------- sections


def keyspace_section() -> None:
    top = st.columns([4, 1])
    top[0].subheader("Keys and memory per prefix")
    if top[1].button("Rescan", icon=":material/refresh:", width="stretch"):
        res.rescan_keyspace()
    scan = res.keyspace_report()
    report = scan.value
    cols = st.columns(4)
    cols[0].metric("Keys in the database", f"{report.db_size:,}")
    cols[1].metric("Keys under the prefix", f"{report.scanned:,}" + (" (truncated)" if report.truncated else ""))
    cols[2].metric("Estimated memory", human_bytes(sum(f.est_bytes or 0 for f in report.families)))
    cols[3].metric("Scan time", f"{report.seconds * 1000:.0f} ms")
    st.caption("Counted with SCAN (never KEYS); memory is MEMORY USAGE of a random sample of up to 200 keys per "
               f"prefix times the key count. Scanned {ui.human_seconds(scan.age_seconds)} ago; past "
               f"{res.KEYSPACE_TTL} s the next visit starts a new scan in the background (Rescan waits for one).")
    if not report.families:
        st.info("No key under the prefix yet.")
        return
    table = report.table()
    left, right = st.columns([3, 2])
    with left:
        shown = table.assign(**{"est. memory": table["est. memory (bytes)"].map(human_bytes),
                                "median TTL": table["median TTL (s)"].map(ui.human_seconds)})
        st.dataframe(shown[["family", "what", "keys", "est. memory", "sampled", "median TTL", "sampled without TTL"]],
                     hide_index=True, width="stretch")
    with right:
        fig = ui.hbar_chart(table["what"].tolist(), table["est. memory (bytes)"].fillna(0).tolist(),
                            "Estimated memory (label: keys)", [f"{k:,}" for k in table["keys"]],
                            height=max(260, 34 * len(table)))
        st.plotly_chart(fig, width="stretch")
    ttl = report.ttl_frame()
    if not ttl.empty:
        boxes = [{"type": "box", "x": rows["ttl_seconds"], "name": str(name), "orientation": "h",
                  "boxpoints": "outliers"} for name, rows in ttl.groupby("family", sort=False)]
        fig = ui.figure(boxes, "Remaining TTL of sampled keys", height=max(240, 44 * ttl["family"].nunique()),
                        showlegend=False, xaxis={"title": {"text": "seconds (log scale)"}, "type": "log", "dtick": 1},
                        fit_labels=True)
        st.plotly_chart(fig, width="stretch")


def hit_ratio_section() -> None:
    st.subheader("Hit ratios")
    source = res.metrics_source()
    if source is None:
        st.caption("No metrics source (API or Prometheus) is configured.")
        return
    with ui.guard("reading hit ratios"):
        ratios = res.tier_hit_ratios(source.kind, res.source_url(source))
        values = res.current_kpis(source.kind, res.source_url(source))
        cols = st.columns(1 + max(len(ratios), 1))
        cols[0].metric("Served from cache (L1 or L2)", format_value(values.get("cache_hit"), "percent"),
                       help="target ≥ 80%")
        for col, (tier, ratio) in zip(cols[1:], sorted(ratios.items()), strict=False):
            col.metric(f"{tier.upper()} hit ratio", format_value(ratio, "percent"),
                       help="L2 is consulted only after an L1 miss" if tier == "l2" else None)
        st.caption(f"Of the API: {source.window}.")


def invalidate_section() -> None:
    st.markdown("**Invalidate**")
    left, right = st.columns(2)
    with left, st.container(border=True):
        raw = st.text_input("User to invalidate", key="inv_user", placeholder="u00042")
        if raw.strip():
            try:
                user_id = actions.check_user_id(raw)
            except ValueError as exc:
                st.error(str(exc))
            else:
                keys = actions.user_keys(eng.redis, eng.keys, user_id)
                st.caption(f"`{user_id}` has {len(keys.lists)} cached list(s) and "
                           f"{'a' if keys.features else 'no'} cached feature hash.")
                if st.button("Invalidate this user …", key="inv_user_btn", disabled=keys.total == 0):
                    confirm_user(user_id, keys)
    with right, st.container(border=True):
        count = actions.count_cached_lists(eng.redis, eng.keys)
        st.caption(f"{count:,} cached recommendation lists in Redis.")
        if st.button("Invalidate all recommendations …", key="inv_all_btn", disabled=count == 0):
            confirm_all(count)


def warm_section(who: str) -> None:
    st.markdown("**Warm the cache**")
    with st.form("warm", border=True):
        mode = st.radio("Users", ["Most active users", "Pasted list"], horizontal=True, key="warm_mode")
        top_n = st.number_input("How many of the most active users", 1, actions.MAX_WARM_USERS, 100, key="warm_top")
        pasted = st.text_area("User ids (spaces, commas or new lines)", key="warm_list", height=90)
        n = st.number_input("List length n", 1, 100, eng.settings.default_n, key="warm_n")
        submitted = st.form_submit_button("Warm", type="primary", icon=":material/local_fire_department:")
    if not submitted:
        return
    if mode == "Pasted list":
        parsed = actions.parse_user_ids(pasted)
        if parsed.invalid:
            shown = ", ".join(repr(t[:40]) for t in parsed.invalid[:5])
            st.error(f"Not valid user ids: {shown}. Nothing was warmed.")
            return
        users, source = parsed.valid, "list"
    else:
        users, source = eng.features.top_active_users(int(top_n)), f"top {int(top_n)} active"
    bar = st.progress(0.0, text=f"Warming {len(users)} users …")
    try:
        report = actions.warm(eng, users, who, n=int(n), source=source,
                              progress=lambda done, total: bar.progress(done / max(total, 1),
                                                                        text=f"{done:,} / {total:,} users"))
    except ValueError as exc:
        st.error(f"{exc} Nothing was warmed.")
        return
    res.rescan_keyspace()
    st.success(f"Warmed {report.users:,} users: {report.keys_written:,} lists written in {report.seconds:.2f} s"
               + (f" ({report.failed} failed, see the log)" if report.failed else "") + ".")


def inspect_section() -> None:
    kind = st.segmented_control("Entity", ["User", "Item"], default="User", key="insp_kind") or "User"
    raw = st.text_input(f"{kind} id", key="insp_id", placeholder="u00042" if kind == "User" else "i00007")
    if not raw.strip():
        return
    try:
        entity = actions.check_user_id(raw)  # item ids share the id charset
    except ValueError as exc:
        st.error(str(exc).replace("user id", f"{kind.lower()} id"))
        return
    if kind == "User":
        key = eng.keys.user_features(entity)
        ttl = eng.redis.ttl(key)
        prof = preview.user_profile(eng, entity)
        f = prof.features
        fields = {"known user": prof.known, "new (no history)": f.is_new, "history items": len(f.history),
                  "purchased items": len(f.purchased), "total purchases": f.total_purchases,
                  "last active": ui.when(f.last_active) if f.last_active else "–",
                  "top categories": ", ".join(f"{c} {s:.0%}" for c, s in f.category_affinity.items()) or "–"}
    else:
        key = eng.keys.item_features(entity)
        ttl = eng.redis.ttl(key)
        item = preview.item_profile(eng, entity)
        if item is None:
            st.warning(f"No item `{entity}` in the catalogue.")
            return
        fields = {"title": item.title, "category": item.category, "popularity": f"{item.popularity:.5f}",
                  "average rating": f"{item.avg_rating:.2f}" if item.avg_rating is not None else "–",
                  "price": f"{item.price:.2f}" if item.price is not None else "–"}
    state = f"cached, expires in {ttl} s" if ttl > 0 else "not cached: computed from the source of truth now"
    st.caption(f"`{key}` — {state}")
    st.dataframe(pd.DataFrame({"feature": list(fields), "value": [str(v) for v in fields.values()]}),
                 hide_index=True, width="stretch")


def audit_section() -> None:
    st.caption("Every operator write, newest first: who, what, when and how many keys.")
    entries = eng.audit.recent(AUDIT_ROWS)
    if not entries:
        st.caption("No operator action recorded yet.")
        return
    st.dataframe(pd.DataFrame([{"when": ui.when(e.at), "who": e.actor, "what": e.action, "target": e.target,
                                "keys": e.keys, "detail": e.detail} for e in entries]),
                 hide_index=True, width="stretch")


with ui.guard("running the confirmed action"):
    run_pending()
if RESULT in st.session_state:
    st.success(st.session_state.pop(RESULT), icon=":material/check_circle:")

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
