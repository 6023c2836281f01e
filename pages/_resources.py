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
from engine.console.keyspace import KeyspaceReport, scan_keyspace
from engine.console.options import ConsoleOptions
from engine.console.preview import popularity_shares
from engine.console.stale_while_revalidate import Aged, StaleWhileRevalidate
from engine.runtime import Engine, build_engine

HEALTH_TTL = 5
METRICS_TTL = 10
KEYSPACE_TTL = 30
KEYSPACE_SAMPLE = 200  # keys per family asked for MEMORY USAGE and PTTL
SETTINGS_ENV_PREFIX = "RECOPS_"  # what Settings reads (engine/config.py), matched case-insensitively as it does
SETTINGS_ENV_NAMES = ("REDIS_URL", "PROMETHEUS_URL")


def settings() -> Settings:
    """The settings of the current environment (the tests change it between runs)."""
    return _settings_for(_settings_environment())


def _settings_environment() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in os.environ.items()
                        if k.upper().startswith(SETTINGS_ENV_PREFIX) or k.upper() in SETTINGS_ENV_NAMES))


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
def prometheus(url: str) -> monitoring_panels.PrometheusSource:
    return monitoring_panels.PrometheusSource(url)


@st.cache_resource
def exposition(api_url: str) -> monitoring_panels.ExpositionSource:
    return monitoring_panels.ExpositionSource(api_url)


@st.cache_resource
def http_client() -> httpx.Client:
    """One connection pool per process for the health checks of the API and Prometheus."""
    return httpx.Client(timeout=dependencies.TIMEOUT_SECONDS)


@st.cache_data(ttl=HEALTH_TTL, show_spinner=False)
def service_health(api_url: str | None, prometheus_url: str | None) -> tuple[dependencies.Health, dependencies.Health]:
    client = http_client()
    return dependencies.check_api(api_url, client), dependencies.check_prometheus(prometheus_url, client)


def redis_health() -> dependencies.Health:
    # not cached: the banner must appear on the very run that finds Redis down
    eng = engine()
    return dependencies.check_redis(eng.redis, eng.settings.redis_url)


def metrics_source() -> monitoring_panels.MetricsSource | None:
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
def exposition_snapshot(api_url: str) -> monitoring_panels.ExpositionSnapshot:
    return exposition(api_url).snapshot()


@st.cache_data(ttl=METRICS_TTL, show_spinner=False)
def alerts(prometheus_url: str) -> list[monitoring_panels.Alert]:
    return prometheus(prometheus_url).alerts()


def source_url(source: monitoring_panels.MetricsSource) -> str:
    if isinstance(source, monitoring_panels.PrometheusSource):
        return source.url
    assert isinstance(source, monitoring_panels.ExpositionSource)
    return source.api_url


@st.cache_resource
def _keyspace_scans(fingerprint: tuple[str, ...], sample_per_family: int) -> StaleWhileRevalidate[KeyspaceReport]:
    eng = engine()
    return StaleWhileRevalidate(lambda: scan_keyspace(eng.redis, eng.keys, sample_per_family=sample_per_family),
                                KEYSPACE_TTL)


@st.cache_resource
def _traffic(fingerprint: tuple[str, ...]) -> StaleWhileRevalidate[float | None]:
    eng = engine()
    return StaleWhileRevalidate(lambda: users_per_day(eng), KEYSPACE_TTL)


def traffic_users_per_day() -> float | None:
    """Distinct users per day in the latest events (a 5,000-entry stream read, ~0.1 s: refreshed in the
    background every 30 s)."""
    return _traffic(_fingerprint(settings())).get().value


def keyspace_report(sample_per_family: int = KEYSPACE_SAMPLE) -> Aged[KeyspaceReport]:
    """The last keyspace scan and its age: a scan visits every key (seconds on a large Redis), so past
    ``KEYSPACE_TTL`` the page shows the last one while the next runs in the background."""
    scans = _keyspace_scans(_fingerprint(settings()), sample_per_family)
    if scans.has_value:
        return scans.get()
    with st.spinner("Scanning the keyspace (SCAN, sampled MEMORY USAGE) …"):
        return scans.get()


def rescan_keyspace(sample_per_family: int = KEYSPACE_SAMPLE) -> None:
    """Forget the last scan (after a write, or on the operator's request): the next read scans afresh."""
    _keyspace_scans(_fingerprint(settings()), sample_per_family).clear()
