"""Connections made once per console process, and query results cached for a few seconds.

Streamlit re-runs a page's script on every interaction: anything that costs a connection or a
model load is a ``st.cache_resource`` (shared by every session), and anything read from Redis,
the API or Prometheus is a ``st.cache_data`` with a short TTL, so several operators watching
the same page cost one query.
"""

from __future__ import annotations

import functools
import os

import httpx
import streamlit as st

from engine.config import Settings
from engine.console import dependencies, monitoring_panels
from engine.console.auth import AccessPolicy, configured_password
from engine.console.experiments import users_per_day
from engine.console.keyspace import MAX_AGE_SECONDS, KeyspaceReport, scan_keyspace
from engine.console.options import ConsoleOptions
from engine.console.preview import popularity_shares
from engine.console.resource_keys import engine_fingerprint, settings_environment
from engine.console.stale_while_revalidate import Aged, StaleWhileRevalidate
from engine.runtime import Engine, build_engine

HEALTH_TTL = 5
METRICS_TTL = 10
KEYSPACE_TTL = MAX_AGE_SECONDS


def settings() -> Settings:
    """The settings of the current environment (the tests change it between runs)."""
    return _settings_for(settings_environment(os.environ))


@functools.lru_cache(maxsize=16)
def _settings_for(environment: tuple[tuple[str, str], ...]) -> Settings:
    # one build per distinct environment: pydantic-settings reads every source on each build
    # (~5-10 ms), and a page asks for the settings several times per run
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


@st.cache_resource(show_spinner="Loading the engine (the dataset served and its models) …")
def _engine_for(fingerprint: tuple[str, ...]) -> Engine:
    return build_engine(settings())


def engine() -> Engine:
    """The process-wide engine for the current settings (one per distinct Redis / data dir)."""
    return _engine_for(engine_fingerprint(settings()))


@st.cache_resource
def _shares_for(fingerprint: tuple[str, ...]) -> dict[str, float]:
    return popularity_shares(engine().dataset)


def item_popularity_shares() -> dict[str, float]:
    return _shares_for(engine_fingerprint(settings()))


@st.cache_resource
def prometheus(url: str) -> monitoring_panels.PrometheusSource:
    return monitoring_panels.PrometheusSource(url)


@st.cache_resource
def exposition(api_url: str) -> monitoring_panels.ExpositionSource:
    return monitoring_panels.ExpositionSource(api_url)


def _source(kind: str, url: str) -> monitoring_panels.MetricsSource:
    return prometheus(url) if kind == "prometheus" else exposition(url)


@st.cache_resource
def http_client() -> httpx.Client:
    """One connection pool per process for the health checks of the API and Prometheus."""
    return httpx.Client(timeout=dependencies.TIMEOUT_SECONDS)


@st.cache_data(ttl=HEALTH_TTL, show_spinner=False)
def service_health(api_url: str | None, prometheus_url: str | None) -> tuple[dependencies.Health, dependencies.Health]:
    client = http_client()
    return dependencies.check_api(api_url, client), dependencies.check_prometheus(prometheus_url, client)


def api_and_prometheus_health() -> tuple[dependencies.Health, dependencies.Health]:
    return service_health(options().api_url, settings().prometheus_url)


def redis_health() -> dependencies.Health:
    # not cached: the banner must appear on the very run that finds Redis down
    eng = engine()
    return dependencies.check_redis(eng.redis, eng.settings.redis_url)


def source_choice() -> monitoring_panels.SourceChoice | None:
    """Prometheus when it answers, else the API's /metrics, else None."""
    _, prom = api_and_prometheus_health()
    return monitoring_panels.choose_source(prom.ok, settings().prometheus_url, options().api_url)


def metrics_source() -> monitoring_panels.MetricsSource | None:
    choice = source_choice()
    return None if choice is None else _source(choice.kind, choice.url)


@st.cache_data(ttl=METRICS_TTL, show_spinner=False)
def current_kpis(kind: str, url: str) -> dict[str, float | None]:
    return _source(kind, url).current()


@st.cache_data(ttl=METRICS_TTL, show_spinner=False)
def tier_hit_ratios(kind: str, url: str) -> dict[str, float | None]:
    return _source(kind, url).tier_hit_ratios()


def kpis_now() -> dict[str, float | None]:
    """The current KPI values, or none at all when no metrics source answers (a default stands in)."""
    source = metrics_source()
    if source is None:
        return {}
    try:
        return current_kpis(source.kind, source.url)
    except Exception:  # a missing metrics backend only loses what the values were for
        return {}


@st.cache_data(ttl=METRICS_TTL, show_spinner=False)
def exposition_snapshot(api_url: str) -> monitoring_panels.ExpositionSnapshot:
    return exposition(api_url).snapshot()


@st.cache_data(ttl=METRICS_TTL, show_spinner=False)
def alerts(prometheus_url: str) -> list[monitoring_panels.Alert]:
    return prometheus(prometheus_url).alerts()


@st.cache_resource
def _keyspace_scans(fingerprint: tuple[str, ...]) -> StaleWhileRevalidate[KeyspaceReport]:
    eng = engine()
    return StaleWhileRevalidate(lambda: scan_keyspace(eng.redis, eng.keys), KEYSPACE_TTL)


@st.cache_resource
def _traffic(fingerprint: tuple[str, ...]) -> StaleWhileRevalidate[float | None]:
    eng = engine()
    return StaleWhileRevalidate(lambda: users_per_day(eng), KEYSPACE_TTL)


def traffic_users_per_day() -> float | None:
    """Distinct users per day in the latest events (a 5,000-entry stream read, ~0.1 s: refreshed in the
    background every 30 s)."""
    return _traffic(engine_fingerprint(settings())).get().value


def keyspace_report() -> Aged[KeyspaceReport]:
    """The last keyspace scan and its age: a scan visits every key (seconds on a large Redis), so past
    ``KEYSPACE_TTL`` the page shows the last one while the next runs in the background."""
    scans = _keyspace_scans(engine_fingerprint(settings()))
    if scans.has_value:
        return scans.get()
    with st.spinner("Scanning the keyspace (SCAN, sampled MEMORY USAGE) …"):
        return scans.get()


def rescan_keyspace() -> None:
    """Forget the last scan (after a write, or on the operator's request): the next read scans afresh."""
    _keyspace_scans(engine_fingerprint(settings())).clear()
