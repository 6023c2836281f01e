"""Model switches shared by the Models and Readout pages: the promotion's confirmation dialog."""

from __future__ import annotations

import streamlit as st

from engine.console import models as mv
from pages import _resources as res
from pages import _ui as ui


@st.dialog("Promote a model version")
def confirm_promote(model: str, version: str, dataset: str, current: str | None, pending_key: str) -> None:
    """Confirming stores the promotion under ``pending_key``; the page runs it (``mv.run_confirmed``) next run."""
    st.markdown(mv.confirm_promote_text(model, version, dataset, current, res.engine().settings.model_poll_seconds))
    ui.confirm_buttons("Promote", "promote", pending_key, mv.promote_action(model, version, dataset))
