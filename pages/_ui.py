"""Layout helpers shared by the pages: headers, banners, status badges, login, charts, live refresh."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import pandas as pd
import plotly.graph_objects as go
import redis
import streamlit as st

from engine.console.auth import ANONYMOUS, operator_name
from engine.console.dependencies import Health, redis_unavailable
from engine.console.monitoring_panels import Kpi, MetricsUnavailableError, Unit
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


def pop_confirmed(pending_key: str, what: str) -> tuple[dict[str, Any], str] | None:
    """The action a dialog confirmed (stored under ``pending_key``) and who runs it, or None.

    The right to write is checked again here, not only when the dialog opened: the login may have
    lapsed in between.  ``what`` completes "Log in to ..." in the refusal.
    """
    action = st.session_state.pop(pending_key, None)
    if action is None:
        return None
    who = current_writer()
    if who is None:
        st.error(f"Log in to {what}; nothing was done.")
        return None
    return action, who


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


Trace = dict[str, Any]  # one plotly trace as a plain dict, e.g. {"type": "scatter", "x": ..., "y": ...}
AXIS_FORMAT: dict[str, dict[str, str]] = {"seconds": {"ticksuffix": " ms"}, "percent": {"tickformat": ".1%"},
                                          "per_second": {"ticksuffix": "/s"}, "ratio": {"tickformat": ".2f"}}
TARGET_COLOR = "#ef4444"
ZERO_COLOR = "#334155"
Y_TICKS_MARGIN = 60  # px for numeric tick labels such as "1,250 ms" or "+12%"
X_TICKS_MARGIN = 44  # px for time ticks, which plotly writes on two lines ("02:05" over the date)
TITLE_MARGIN = 22  # px more for an axis title


@dataclass(frozen=True)
class Rule:
    """A dotted reference line across the plot: horizontal at ``y = at`` (a target) or vertical at ``x = at``."""

    at: float
    axis: Literal["x", "y"] = "y"
    label: str | None = None
    color: str = TARGET_COLOR

    def shape(self) -> dict[str, Any]:
        across = "y" if self.axis == "x" else "x"
        return {"type": "line", "xref" if self.axis == "y" else "yref": f"{across} domain",
                f"{across}0": 0, f"{across}1": 1, f"{self.axis}ref": self.axis, f"{self.axis}0": self.at,
                f"{self.axis}1": self.at, "line": {"dash": "dot", "color": self.color}}

    def annotation(self) -> dict[str, Any] | None:
        if self.label is None:
            return None
        across = "y" if self.axis == "x" else "x"
        return {"text": self.label, "showarrow": False, "xanchor": "left", "yanchor": "bottom",
                f"{across}ref": f"{across} domain", across: 0 if self.axis == "y" else 1,
                f"{self.axis}ref": self.axis, self.axis: self.at}


def figure(data: Sequence[Trace], title: str | None = None, *, height: int = 320, unit: Unit | None = None,
           xaxis: Mapping[str, Any] | None = None, yaxis: Mapping[str, Any] | None = None,
           rules: Sequence[Rule] = (), fit_labels: bool = False, **layout: Any) -> go.Figure:
    """A figure in the house style: title top left, legend top right on the same line, axis formats by
    unit (seconds are shown as milliseconds: the caller scales the data with ``scale``).

    Margins are fixed, sized for numeric tick labels and axis titles: letting plotly.js grow them to
    fit the labels costs the browser a second layout pass per chart (about 60 ms each on this
    machine, measured with six charts).  ``fit_labels`` keeps that growth for charts whose category
    labels have no bounded width (bar names, metric names).

    Built in one validated construction from plain dicts: each ``update_layout``/``update_yaxes``/
    ``add_hline`` on a graph_objects figure walks and re-validates the figure, which made building the
    Monitoring page's six charts 3-5x slower than the page's Prometheus queries.
    """
    x, y = dict(xaxis or {}), {**AXIS_FORMAT.get(unit or "", {}), **(yaxis or {})}
    if fit_labels:
        margin = {"l": 8, "r": 8, "t": 48, "b": 8}
    else:
        margin = {"l": Y_TICKS_MARGIN + (TITLE_MARGIN if "title" in y else 0), "r": 16, "t": 48,
                  "b": X_TICKS_MARGIN + (TITLE_MARGIN if "title" in x else 0), "autoexpand": False}
        x, y = {"automargin": False, **x}, {"automargin": False, **y}
    notes = [a for a in (r.annotation() for r in rules) if a is not None]
    full: dict[str, Any] = {
        "height": height, "margin": margin,
        "title": {"x": 0, "xanchor": "left", "y": 0.98, "yanchor": "top", "font": {"size": 15},
                  **({"text": title} if title else {})},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
        "hovermode": "x unified" if unit else "closest",
        "xaxis": x,
        "yaxis": y,
        **({"shapes": [r.shape() for r in rules]} if rules else {}),
        **({"annotations": notes} if notes else {}),
        **layout,
    }
    return go.Figure(data=list(data), layout=full)


def line_traces(frame: pd.DataFrame, x: str, y: str, group: str, mode: str = "lines") -> list[Trace]:
    """One line per ``group`` value, in order of appearance."""
    return [{"type": "scatter", "x": rows[x], "y": rows[y], "name": str(name), "mode": mode}
            for name, rows in frame.groupby(group, sort=False)]


def line_chart(frame: pd.DataFrame, x: str, y: str, group: str, title: str, **style: Any) -> go.Figure:
    """One line per ``group`` value, legend always shown; ``style`` as for ``figure``."""
    return figure(line_traces(frame, x, y, group), title, showlegend=True, **style)


def hbar_chart(labels: list[str], values: list[float], title: str | None = None, text: list[str] | None = None,
               *, xaxis: Mapping[str, Any] | None = None, **style: Any) -> go.Figure:
    """Horizontal bars, the first label on top."""
    bars = {"type": "bar", "x": values, "y": labels, "orientation": "h", "textposition": "auto",
            **({"text": text} if text is not None else {})}
    return figure([bars], title, xaxis=xaxis, yaxis={"autorange": "reversed"}, fit_labels=True, **style)


def scale(unit: Unit) -> float:
    return 1000.0 if unit == "seconds" else 1.0


def human_seconds(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:  # None or NaN
        return "–"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
