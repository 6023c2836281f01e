"""The console's pages (routed by ``app.py`` with ``st.navigation``) and their shared helpers (``_*.py``)."""
