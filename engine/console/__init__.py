"""Back-end logic of the operator console, free of Streamlit so that it can be tested on its own.

    options.py        console options from the environment (refresh interval, login for reads, API URL)
    auth.py           who may write (and read): the console password, compared in constant time
    health.py         is Redis / the API / Prometheus up
    keyspace.py       key counts, memory and TTLs per key family, sampled with SCAN
    monitoring.py     the seed's KPIs and their targets; Prometheus queries, with a /metrics fallback
    cache_actions.py  audited cache operations: invalidate a user or everything, warm users
    experiment_ops.py form errors by field, audited life-cycle actions, status badges, readout tables
    preview.py        users to preview, their profiles, and two models' lists compared
"""
