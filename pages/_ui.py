"""Layout helpers shared by the pages: headers, banners, status badges, login, charts, live refresh."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from datetime import datetime, timezone

import pandas as pd
import plotly.graph_objects as go
import redis
import streamlit as st

from engine.ops.auth import ANONYMOUS, operator_name
from engine.ops.health import Health, redis_unavailable
from engine.ops.monitoring import Kpi, MetricsUnavailableError, Unit
from pages import _resources as res

OPERATOR = "operator"  # session key: who is logged in (never the password)
STATE_BADGE = {"up": ("green", "up"), "degraded": ("orange", "degraded"), "down": ("red", "down"),
               "absent": ("gray", "not configured")}
KPI_BADGE = {"ok": ("green", "on target"), "bad": ("red", "off target"), "no data": ("gray", "no data"),
             "info": ("blue", "no target")}


def leave_legacy_pages_mode() -> None:
    """Re-run through ``app.py`` when Streamlit ran this page by its legacy ``pages/`` auto-discovery.

    Streamlit (1.5x–1.6x) decides per process whether a ``pages/`` folder means the old multipage
    mode, and only drops it once ``st.navigation`` has run.  So the first request of a fresh process
    for a deep URL (``/cache``) runs ``pages/cache.py`` alone: no sidebar sections, no page config,
    no login gate of ``app.py``.  Turning the flag off and re-running sends that request through
    ``app.py``; the page keeps its identity because both modes hash a page by its URL path (the file
    name here).  If a future Streamlit drops the flag, this does nothing.
    """
    manager = getattr(importlib.import_module("streamlit.runtime.pages_manager"), "PagesManager", None)
    if manager is not None and getattr(manager, "uses_pages_directory", False) is True:
        manager.uses_pages_directory = False
        st.rerun()


def header(title: str, caption: str) -> bool:
    """Title, caption, configuration notes and — on every page — the Redis banner; returns Redis' health."""
    leave_legacy_pages_mode()
    if not read_gate():  # also here: a page can be reached without app.py (AppTest, legacy pages/ URLs)
        st.stop()
    st.title(title)
    st.caption(caption)
    for note in res.options().problems:
        st.warning(note)
    try:
        h = res.redis_health()
    except Exception as exc:  # the engine itself could not be built: nothing else on the page can work
        st.error(f"**The engine could not start**: {type(exc).__name__}: {exc}. Check RECOPS_DATA_DIR and "
                 "the console's log.", icon=":material/error:")
        st.stop()
    if not h.ok:
        redis_down_banner(h)
    return h.ok


def redis_down_banner(h: Health) -> None:
    st.error(
        f"**Redis is unreachable** ({h.url or 'REDIS_URL'}): {h.detail}. The cache, the feature store, "
        "experiments and the audit log live there, so this page cannot show live data. "
        "Serving keeps answering with fallback lists. Check the Redis process, then reload.",
        icon=":material/database_off:",
    )


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Turn the failures a dependency can cause mid-page into a readable message, not a traceback."""
    try:
        yield
    except (redis.RedisError, ConnectionError, TimeoutError) as exc:
        if redis_unavailable(exc):
            st.error(f"**Redis is unreachable** while {what}: {exc}. Check the Redis process, then reload.",
                     icon=":material/database_off:")
        else:
            st.error(f"Redis refused a command while {what}: {exc}")
    except MetricsUnavailableError as exc:
        st.warning(f"Metrics are unavailable while {what}: {exc}")


def status_badge(state: str, mapping: dict[str, tuple[str, str]]) -> None:
    color, text = mapping.get(state, ("gray", state))
    st.badge(text, color=color)  # type: ignore[arg-type]


def health_card(h: Health) -> None:
    with st.container(border=True):
        st.markdown(f"**{h.name}**")
        status_badge(h.state, STATE_BADGE)
        detail = h.detail if h.latency_ms is None else f"{h.detail} · {h.latency_ms:.0f} ms"
        st.caption(detail if not h.url else f"{detail}  \n`{h.url}`")


def kpi_card(kpi: Kpi, value: float | None) -> None:
    status = kpi.status(value)
    with st.container(border=True):
        st.metric(kpi.label, kpi.format(value), help=kpi.help)
        color, text = KPI_BADGE[status]
        st.badge(f"{text} · target {kpi.target_text}" if kpi.target is not None else text,
                 color=color)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- access


def operator() -> str | None:
    return st.session_state.get(OPERATOR)


def login_form(key: str, reason: str) -> None:
    """Name + password; on success only the name is kept in the session."""
    policy = res.access_policy()
    with st.form(key, clear_on_submit=True, border=True):
        st.markdown(f"**Log in** {reason}")
        name = st.text_input("Your name (for the audit log)", max_chars=64)
        password = st.text_input("Console password", type="password")
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return
    try:
        who = operator_name(name)
    except ValueError as exc:
        st.error(str(exc))
        return
    if not policy.check(password):
        st.error("Wrong password.")
        return
    st.session_state[OPERATOR] = who
    st.rerun()


def current_writer() -> str | None:
    """Who may write now: the logged-in operator, the open console's name, or None."""
    if not res.access_policy().login_required(write=True):
        return operator() or st.session_state.get("operator_name_open") or ANONYMOUS
    return operator()


def writer(action: str, key: str) -> str | None:
    """``current_writer()``, showing the login form (for ``action``) when nobody may write yet."""
    who = current_writer()
    if who is None:
        login_form(f"login-{key}", f"to {action}: a console password is configured.")
    return who


def sidebar_account() -> None:
    policy = res.access_policy()
    with st.sidebar:
        if policy.open:
            st.caption("Open console (no password configured); actions are audited as:")
            name = st.text_input("Operator name", value=st.session_state.get("operator_name_open", ""),
                                 placeholder=ANONYMOUS, key="operator_name_input")
            try:
                st.session_state["operator_name_open"] = operator_name(name)
            except ValueError as exc:
                st.error(str(exc))
        elif operator():
            st.caption(f"Logged in as **{operator()}**")
            if st.button("Log out", key="logout"):
                del st.session_state[OPERATOR]
                st.rerun()
        else:
            st.caption("Read-only until you log in (writes need the console password).")
        o = res.options()
        st.caption(f"Live refresh every {o.refresh_seconds:g} s" if o.live else "Live refresh off")


def read_gate() -> bool:
    """False (login shown) when reading needs a login that has not happened."""
    if res.access_policy().login_required(write=False) and operator() is None:
        st.title("RecOps console")
        login_form("login-read", "to use the console: reading requires a login here.")
        return False
    return True


# ------------------------------------------------------------------------------- charts


def run_every() -> float | None:
    o = res.options()
    return o.refresh_seconds if o.live else None


def style(fig: go.Figure, height: int = 320, unit: Unit | None = None) -> go.Figure:
    """House style: title top left, legend top right on the same line, axis formats by unit
    (seconds are shown as milliseconds: the caller scales the data with ``scale``)."""
    fig.update_layout(
        height=height, margin={"l": 8, "r": 8, "t": 48, "b": 8},
        title={"x": 0, "xanchor": "left", "y": 0.98, "yanchor": "top", "font": {"size": 15}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1, "title": None},
        hovermode="x unified" if unit else "closest",
    )
    if unit == "seconds":
        fig.update_yaxes(ticksuffix=" ms")
    elif unit == "percent":
        fig.update_yaxes(tickformat=".1%")
    elif unit == "per_second":
        fig.update_yaxes(ticksuffix="/s")
    elif unit == "ratio":
        fig.update_yaxes(tickformat=".2f")
    return fig


def lines(frame: pd.DataFrame, x: str, y: str, group: str, title: str, mode: str = "lines") -> go.Figure:
    """One line per ``group`` value (graph_objects: several times faster to build than plotly express)."""
    fig = go.Figure([go.Scatter(x=rows[x], y=rows[y], name=str(name), mode=mode)
                     for name, rows in frame.groupby(group, sort=False)])
    fig.update_layout(title=title, showlegend=True)
    return fig


def hbars(labels: list[str], values: list[float], title: str | None = None, text: list[str] | None = None) -> go.Figure:
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=text, textposition="auto"))
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_xaxes(title=None)
    if title:
        fig.update_layout(title=title)
    return fig


def scale(unit: Unit) -> float:
    return 1000.0 if unit == "seconds" else 1.0


def target_line(fig: go.Figure, target: float | None, label: str = "target") -> None:
    if target is not None:
        fig.add_hline(y=target, line_dash="dot", line_color="#ef4444", annotation_text=label,
                      annotation_position="top left")


def human_seconds(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:  # None or NaN
        return "–"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
