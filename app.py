"""RecOps operator console: ``streamlit run app.py`` (``recops up`` starts it with the stack).

Routes with ``st.navigation`` over the files in ``pages/``, in three sidebar sections (each page's
URL path is its file name, which ``pages._ui.header`` relies on; see ``leave_legacy_pages_mode``).  Pages hold
layout only; the logic they call lives in ``engine/`` (``engine.console`` for the console) and ``analysis/``.
"""

from __future__ import annotations

import streamlit as st

from pages import _ui as ui

st.set_page_config(page_title="RecOps console", page_icon=":material/hub:", layout="wide")

PAGES = {
    "Serve": [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", url_path="overview",
                default=True),
        st.Page("pages/recommendations.py", title="Recommendations", icon=":material/recommend:",
                url_path="recommendations"),
        st.Page("pages/models.py", title="Models", icon=":material/model_training:", url_path="models"),
    ],
    "Experiment": [
        st.Page("pages/experiments.py", title="Experiments", icon=":material/science:", url_path="experiments"),
        st.Page("pages/readout.py", title="Readout", icon=":material/analytics:", url_path="readout"),
    ],
    "Operate": [
        st.Page("pages/monitoring.py", title="Monitoring", icon=":material/monitoring:", url_path="monitoring"),
        st.Page("pages/cache.py", title="Cache", icon=":material/memory:", url_path="cache"),
    ],
}

page = st.navigation(PAGES)
if ui.read_gate():
    ui.sidebar_account()
    page.run()
