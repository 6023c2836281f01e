"""RecOps engine: data, models, feature store, recommendation service, cache, events, serving.

Nothing in this package imports Streamlit; the console in ``app.py``/``pages/`` calls into it.
"""

__version__ = "0.1.0"
