"""Back-end of the operator console, free of Streamlit so that it can be tested on its own.

The pages (``pages/``) only lay out widgets and call these modules: what to compute, say and draw
is decided here.

    options.py            console options from the environment (refresh interval, login for reads, API URL)
    auth.py               who may read and write: the console password, compared in constant time
    resource_keys.py      what identifies the settings and the engine a console process caches
    dependencies.py       is Redis / the API / Prometheus up
    notices.py            what a page says in a box: texts and levels, dependency failures as messages
    badges.py             which colour and label a state gets
    cards.py              a metric as a page shows it
    formatting.py         numbers, sizes, durations and times as the console writes them
    charts.py             Plotly figures in the house style
    monitoring_panels.py  the seed's KPIs and their targets; Prometheus queries, with a /metrics fallback
    monitoring_view.py    what the Overview and Monitoring pages show of them
    keyspace.py           key counts, memory and TTLs per key family, sampled with SCAN
    cache_actions.py      audited cache operations: invalidate a user or everything, warm users
    cache_view.py         what the Cache page shows: keyspace tables and charts, inspected features, audit log
    preview.py            users to preview, their lists and profiles, and two models' lists compared
    experiments.py        the experiment list and audited life-cycle actions
    experiment_form.py    the experiment editor: spec from the form, problems by field, sample-size calculator
    readout_view.py       a readout's status badge, tables, charts and decision texts
    stale_while_revalidate.py  slow reads served from the last value while the next one is computed
"""
