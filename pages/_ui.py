"""Layout helpers shared by the pages: headers, notices, badges, cards, login, confirmations, live refresh.

Only Streamlit calls: what to say and how to colour it comes from ``engine.console``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from engine.console import badges, notices
from engine.console.auth import ANONYMOUS, operator_name
from engine.console.badges import Badge
from engine.console.cards import MetricCard
from engine.console.dependencies import Health
from engine.console.monitoring_panels import KPIS
from engine.console.notices import Notice
from pages import _resources as res

OPERATOR = "operator"  # session key: who is logged in (never the password)
OPEN_NAME = "operator_name_open"  # session key: the name an open console's operator gave


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
        notice(notices.engine_failed(exc))
        st.stop()
    if not h.ok:
        redis_down_banner(h)
    return h.ok


def notice(n: Notice | None, where: Any = st) -> None:
    """Show ``n`` (in ``where``: a column, a placeholder, or the page); nothing for None."""
    if n is None:
        return
    if n.level == "caption":
        where.caption(n.text)
    else:
        getattr(where, n.level)(n.text, icon=n.icon)


def redis_down_banner(h: Health) -> None:
    notice(notices.redis_down(h))


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Turn the failures a dependency can cause mid-page into a readable message, not a traceback."""
    try:
        yield
    except notices.DEPENDENCY_FAILURES as exc:
        notice(notices.dependency_failed(exc, what))


def chart(fig: go.Figure | None, missing: str | None = None) -> bool:
    """Plot ``fig`` across the column; without one, say ``missing`` (if given).  True when plotted."""
    if fig is None:
        if missing is not None:
            st.caption(missing)
        return False
    st.plotly_chart(fig, width="stretch")
    return True


def badge(b: Badge, where: Any = st) -> None:
    where.badge(b.label, color=b.color)


def cards(items: Sequence[MetricCard], columns: int | None = None) -> None:
    """One ``st.metric`` per card, side by side (in at least ``columns`` columns)."""
    for col, card in zip(st.columns(max(len(items), columns or 0)), items, strict=False):
        col.metric(card.label, card.value, help=card.help)


def grid(items: Sequence[Any], per_row: int) -> Iterator[tuple[Any, Any]]:
    """Each item with the column it goes in, ``per_row`` columns a row."""
    for start in range(0, len(items), per_row):
        yield from zip(st.columns(per_row), items[start:start + per_row], strict=False)


def health_card(h: Health) -> None:
    with st.container(border=True):
        st.markdown(f"**{h.name}**")
        badge(badges.health_badge(h.state))
        st.caption(h.summary)


def kpi_grid(values: Mapping[str, float | None], per_row: int) -> None:
    """A card per KPI with its value and whether it meets its target."""
    for col, kpi in grid(KPIS, per_row):
        with col, st.container(border=True):
            value = values.get(kpi.key)
            st.metric(kpi.label, kpi.format(value), help=kpi.help)
            badge(badges.kpi_badge(kpi, value))


def show_result(result_key: str) -> None:
    """The outcome of the last confirmed action, kept over the rerun that ran it."""
    if result_key in st.session_state:
        st.success(st.session_state.pop(result_key), icon=":material/check_circle:")


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
        st.session_state[OPERATOR] = policy.log_in(name, password)
    except ValueError as exc:
        st.error(str(exc))
        return
    st.rerun()


def current_writer() -> str | None:
    """Who may write now: the logged-in operator, the open console's name, or None."""
    return res.access_policy().writer(operator(), st.session_state.get(OPEN_NAME))


def writer(action: str, key: str) -> str | None:
    """``current_writer()``, showing the login form (for ``action``) when nobody may write yet."""
    who = current_writer()
    if who is None:
        login_form(f"login-{key}", f"to {action}: a console password is configured.")
    return who


def run_confirmed(pending_key: str, what: str, run: Callable[[Any, str], Notice], result_key: str) -> bool:
    """Run the action a dialog confirmed (stored under ``pending_key``); True when it succeeded.

    The right to write is checked again here, not only when the dialog opened: the login may have
    lapsed in between.  ``what`` completes "Log in to ..." in the refusal.  A success is kept under
    ``result_key`` for ``show_result``; a failure is shown at once.
    """
    action = st.session_state.pop(pending_key, None)
    if action is None:
        return False
    who = current_writer()
    if who is None:
        st.error(f"Log in to {what}; nothing was done.")
        return False
    outcome = run(action, who)
    if not outcome.succeeded:
        notice(outcome)
        return False
    st.session_state[result_key] = outcome.text
    return True


def confirm_buttons(label: str, key: str, pending_key: str, action: Any, disabled: bool = False) -> None:
    """A dialog's confirm and cancel buttons: confirming stores ``action`` for the next run (a dialog's
    buttons only rerun the page, which runs it; see ``run_confirmed``)."""
    left, right = st.columns(2)
    if left.button(label, type="primary", key=f"confirm_{key}_btn", width="stretch", disabled=disabled):
        st.session_state[pending_key] = action
        st.rerun()
    if right.button("Cancel", key=f"cancel_{key}_btn", width="stretch"):
        st.rerun()


def sidebar_account() -> None:
    policy = res.access_policy()
    with st.sidebar:
        if policy.open:
            st.caption("Open console (no password configured); actions are audited as:")
            name = st.text_input("Operator name", value=st.session_state.get(OPEN_NAME, ""),
                                 placeholder=ANONYMOUS, key="operator_name_input")
            try:
                st.session_state[OPEN_NAME] = operator_name(name)
            except ValueError as exc:
                st.error(str(exc))
        elif operator():
            st.caption(f"Logged in as **{operator()}**")
            if st.button("Log out", key="logout"):
                del st.session_state[OPERATOR]
                st.rerun()
        else:
            st.caption("Read-only until you log in (writes need the console password).")
        st.caption(res.options().refresh_text)


def read_gate() -> bool:
    """False (login shown) when reading needs a login that has not happened."""
    if not res.access_policy().may_read(operator()):
        st.title("RecOps console")
        login_form("login-read", "to use the console: reading requires a login here.")
        return False
    return True


def run_every() -> float | None:
    return res.options().run_every
