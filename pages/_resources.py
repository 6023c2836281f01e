"""Connections made once per console process, and query results cached for a few seconds.

Streamlit re-runs a page's script on every interaction: anything that costs a connection or a
model load is a ``st.cache_resource`` (shared by every session), and anything read from Redis,
the API or Prometheus is a ``st.cache_data`` with a short TTL, so several operators watching
the same page cost one query.
"""

from __future__ import annotations

import httpx
import streamlit as st

from engine.config import Settings
from engine.ops import health, monitoring
from engine.ops.auth import AccessPolicy, configured_password
from engine.ops.experiment_ops import users_per_day
from engine.ops.keyspace import KeyspaceReport, scan_keyspace
from engine.ops.options import ConsoleOptions
from engine.ops.preview import popularity_shares
from engine.runtime import Engine, build_engine

HEALTH_TTL = 5
METRICS_TTL = 10
KEYSPACE_TTL = 30


def settings() -> Settings:
    # read on every run (cheap): the tests change the environment between runs
    return Settings()


def options() -> ConsoleOptions:
    return ConsoleOptions.from_env()


def _secrets() -> dict[str, object] | None:
    try:
        return dict(st.secrets)
    except (FileNotFoundError, OSError):  # no secrets.toml: only the environment configures the password
        return None


def access_policy() -> AccessPolicy:
    return AccessPolicy(configured_password(settings(), _secrets()), options().login_for_reads)


def _fingerprint(s: Settings) -> tuple[str, ...]:
    return (str(s.redis_url), str(s.data_dir.resolve()), str(s.demo_users), str(s.demo_items),
            str(s.demo_seed), s.key_prefix)


@st.cache_resource(show_spinner="Loading the engine (demo world and models) …")
def _engine_for(fingerprint: tuple[str, ...]) -> Engine:
    return build_engine(settings())


def engine() -> Engine:
    """The process-wide engine for the current settings (one per distinct Redis / data dir)."""
    return _engine_for(_fingerprint(settings()))


@st.cache_resource
def _shares_for(fingerprint: tuple[str, ...]) -> dict[str, float]:
    return popularity_shares(engine().dataset)


def item_popularity_shares() -> dict[str, float]:
    return _shares_for(_fingerprint(settings()))


@st.cache_resource
def prometheus(url: str) -> monitoring.PrometheusSource:
    return monitoring.PrometheusSource(url)


@st.cache_resource
def exposition(api_url: str) -> monitoring.ExpositionSource:
    return monitoring.ExpositionSource(api_url)


@st.cache_resource
def http_client() -> httpx.Client:
    """One connection pool per process for the health checks of the API and Prometheus."""
    return httpx.Client(timeout=health.TIMEOUT_SECONDS)


@st.cache_data(ttl=HEALTH_TTL, show_spinner=False)
def service_health(api_url: str | None, prometheus_url: str | None) -> tuple[health.Health, health.Health]:
    client = http_client()
    return health.check_api(api_url, client), health.check_prometheus(prometheus_url, client)


def redis_health() -> health.Health:
    # not cached: the banner must appear on the very run that finds Redis down
    eng = engine()
    return health.check_redis(eng.redis, eng.settings.redis_url)


def metrics_source() -> monitoring.MetricsSource | None:
    """Prometheus when it answers, else the API's /metrics, else None."""
    s, o = settings(), options()
    _, prom = service_health(o.api_url, s.prometheus_url)
    if prom.ok and s.prometheus_url:
        return prometheus(s.prometheus_url)
    if o.api_url:
        return exposition(o.api_url)
    return None


@st.cache_data(ttl=METRICS_TTL, show_spinner=False)
def current_kpis(kind: str, url: str) -> dict[str, float | None]:
    source = prometheus(url) if kind == "prometheus" else exposition(url)
    return source.current()


@st.cache_data(ttl=METRICS_TTL, show_spinner=False)
def tier_hit_ratios(kind: str, url: str) -> dict[str, float | None]:
    source = prometheus(url) if kind == "prometheus" else exposition(url)
    return source.tier_hit_ratios()


@st.cache_data(ttl=METRICS_TTL, show_spinner=False)
def exposition_snapshot(api_url: str) -> monitoring.ExpositionSnapshot:
    return exposition(api_url).snapshot()


@st.cache_data(ttl=METRICS_TTL, show_spinner=False)
def alerts(prometheus_url: str) -> list[monitoring.Alert]:
    return prometheus(prometheus_url).alerts()


def source_url(source: monitoring.MetricsSource) -> str:
    if isinstance(source, monitoring.PrometheusSource):
        return source.url
    assert isinstance(source, monitoring.ExpositionSource)
    return source.api_url


@st.cache_data(ttl=KEYSPACE_TTL, show_spinner="Scanning the keyspace (SCAN, sampled MEMORY USAGE) …")
def keyspace(fingerprint: tuple[str, ...], sample_per_family: int) -> KeyspaceReport:
    eng = engine()
    return scan_keyspace(eng.redis, eng.keys, sample_per_family=sample_per_family)


@st.cache_data(ttl=KEYSPACE_TTL, show_spinner=False)
def _traffic(fingerprint: tuple[str, ...]) -> float | None:
    return users_per_day(engine())


def traffic_users_per_day() -> float | None:
    """Distinct users per day in the latest events (a 5,000-entry stream read: cached 30 s)."""
    return _traffic(_fingerprint(settings()))


def keyspace_report(sample_per_family: int = 200) -> KeyspaceReport:
    return keyspace(_fingerprint(settings()), sample_per_family)
