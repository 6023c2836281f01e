"""The seed's KPIs against their targets, read from Prometheus or, without it, from the API's /metrics.

Prometheus is queried through ``prometheus-api-client`` for the recording rules of
``engine/monitoring/prometheus/rules/recording.yml`` (instant values for the KPI cards, ranges for the charts);
firing alerts come from its ``/api/v1/alerts`` with their summaries and runbooks.  When no
Prometheus runs, ``ExpositionSnapshot`` parses the API's ``/metrics`` text and computes the same
KPIs from the raw counters and histograms — as totals since the API started, since a single
scrape has no rate; the console says so next to the numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol, TypeVar

import httpx
import pandas as pd
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from prometheus_client.parser import text_string_to_metric_families
from urllib3.util.retry import Retry

from engine.console.formatting import Unit, format_value
from engine.serving.cache.miss_causes import CAUSES as MISS_CAUSES

Status = Literal["ok", "bad", "no data", "info"]
TIMEOUT_SECONDS = 3.0
QUANTILES = (0.5, 0.95, 0.99)
QUERY_THREADS = 8  # below the client's pool of 10 connections: more would open and drop extra ones
_In = TypeVar("_In")
_Out = TypeVar("_Out")


class MetricsUnavailableError(RuntimeError):
    """The metrics backend did not answer; the message says which and why."""


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    rule: str  # recording rule with the current value
    unit: Unit
    target: float | None = None
    higher_is_better: bool = True
    help: str = ""

    def status(self, value: float | None) -> Status:
        if value is None or not math.isfinite(value):
            return "no data"
        if self.target is None:
            return "info"
        good = value >= self.target if self.higher_is_better else value <= self.target
        return "ok" if good else "bad"

    def format(self, value: float | None) -> str:
        return format_value(value, self.unit)

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "no target"
        return f"{'≥' if self.higher_is_better else '≤'} {format_value(self.target, self.unit)}"


KPIS: tuple[Kpi, ...] = (
    Kpi("ctr", "CTR", "job:recops_clicks_per_impression:ratio_rate5m", "percent", 0.03,
        help="clicks per impression"),
    Kpi("conversion", "Conversion rate", "job:recops_purchases_per_impression:ratio_rate5m", "percent",
        help="purchases per impression"),
    Kpi("p95_latency", "p95 latency", "job:recops_recommendation_latency_seconds:p95_rate1m", "seconds", 0.2,
        higher_is_better=False, help="95th percentile of recommendation latency"),
    Kpi("cache_hit", "Cache hit rate", "job:recops_recommendations_from_cache_per_request:ratio_rate1m", "percent",
        0.8, help="share of lists answered by L1 or L2"),
    Kpi("coverage", "Catalog coverage", "job:recops_catalog_coverage_ratio:max", "percent", 0.5,
        help="share of the catalogue recommended recently"),
    Kpi("diversity", "Diversity", "job:recops_list_diversity_ratio:mean_rate5m", "ratio", 0.7,
        help="mean intra-list diversity"),
    Kpi("error_ratio", "Error ratio", "job:recops_recommendation_errors_per_request:ratio_rate1m", "percent", 0.01,
        higher_is_better=False, help="share of recommendation requests that failed"),
)
KPI_BY_KEY = {k.key: k for k in KPIS}


@dataclass(frozen=True)
class Series:
    expr: str
    legend: str  # str.format template over the series' labels, e.g. "{tier}"


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    unit: Unit
    series: tuple[Series, ...]
    target: float | None = None


PANELS: tuple[Panel, ...] = (
    Panel("traffic", "Request rate", "per_second", (
        Series("job_status:recops_recommendation_requests:rate1m", "{status}"),
    )),
    Panel("errors", "Error and fallback ratio", "percent", (
        Series(KPI_BY_KEY["error_ratio"].rule, "errors"),
        Series("job:recops_recommendation_fallbacks_per_request:ratio_rate1m", "fallbacks"),
        Series("job:recops_http_5xx_per_request:ratio_rate1m", "HTTP 5xx"),
    ), target=0.01),
    Panel("latency", "Latency", "seconds", (
        Series("job:recops_recommendation_latency_seconds:p50_rate1m", "p50"),
        Series("job:recops_recommendation_latency_seconds:p95_rate1m", "p95"),
        Series("job:recops_recommendation_latency_seconds:p99_rate1m", "p99"),
    ), target=0.2),
    Panel("cache", "Cache hit ratio per tier", "percent", (
        Series("job_tier:recops_cache_hits_per_request:ratio_rate1m", "{tier}"),
        Series(KPI_BY_KEY["cache_hit"].rule, "served from cache"),
    ), target=0.8),
    Panel("cache_misses", "Lists computed, by why they were not cached", "per_second", (
        Series("job_cause:recops_cache_computed_lists:rate1m", "{cause}"),
    )),
    Panel("business", "CTR and conversion", "percent", (
        Series(KPI_BY_KEY["ctr"].rule, "CTR"),
        Series(KPI_BY_KEY["conversion"].rule, "conversion"),
    ), target=0.03),
    Panel("quality", "Diversity and coverage", "ratio", (
        Series(KPI_BY_KEY["diversity"].rule, "diversity"),
        Series(KPI_BY_KEY["coverage"].rule, "coverage"),
    ), target=0.7),
)

TIME_RANGES: dict[str, timedelta] = {
    "15 minutes": timedelta(minutes=15),
    "1 hour": timedelta(hours=1),
    "6 hours": timedelta(hours=6),
    "24 hours": timedelta(hours=24),
    "2 days": timedelta(days=2),
}
MIN_STEP_SECONDS = 5.0  # the scrape interval: a finer step only repeats samples


def step_for(span: timedelta, points: int = 240) -> float:
    return max(MIN_STEP_SECONDS, math.ceil(span.total_seconds() / points))


def _legend(template: str, labels: Mapping[str, str]) -> str:
    return template.format_map(defaultdict(str, labels)) or template


@dataclass(frozen=True)
class Alert:
    name: str
    state: str  # firing or pending
    severity: str
    summary: str
    description: str = ""
    runbook: str = ""
    active_at: str | None = None
    value: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


SourceKind = Literal["prometheus", "api"]


class MetricsSource(Protocol):
    kind: SourceKind
    url: str  # Prometheus', or the API's (whose /metrics is read)
    window: str  # what the numbers cover, for the page to say

    def current(self) -> dict[str, float | None]: ...

    def tier_hit_ratios(self) -> dict[str, float | None]: ...


class PrometheusSource:
    kind: SourceKind = "prometheus"
    window = "last 1–5 minutes (Prometheus recording rules)"

    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # one quick retry: the client's default backs off for seconds, and a page waits for every query
        retry = Retry(total=1, backoff_factor=0.1, status_forcelist=(502, 503, 504), allowed_methods=("GET", "POST"))
        self.client = PrometheusConnect(url=self.url, disable_ssl=True, timeout=timeout, retry=retry)
        self.http = httpx.Client(timeout=timeout)  # for /api/v1/alerts, which the client library lacks
        # a page waits for every query: sent together they cost one round trip, not one per series
        self.pool = ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="prometheus-query")

    def _each(self, fn: Callable[[_In], _Out], items: Sequence[_In]) -> list[_Out]:
        """``fn`` over ``items`` on the query threads, results in order (the first error is raised)."""
        return list(self.pool.map(fn, items)) if len(items) > 1 else [fn(i) for i in items]

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (PrometheusApiClientException, OSError, ValueError) as exc:
            raise MetricsUnavailableError(f"Prometheus at {self.url} failed: {exc}") from exc
        except Exception as exc:  # requests' errors, which the client lets through
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise MetricsUnavailableError(f"Prometheus at {self.url} is unreachable: {exc}") from exc
            raise

    def instant(self, expr: str) -> list[tuple[dict[str, str], float]]:
        result = self._call(self.client.custom_query, expr)
        return [(dict(r.get("metric", {})), float(r["value"][1])) for r in result]

    def _first(self, expr: str) -> float | None:
        rows = sorted(self.instant(expr), key=lambda r: sorted(r[0].items()))
        value = rows[0][1] if rows else None
        return value if value is not None and math.isfinite(value) else None

    def current(self) -> dict[str, float | None]:
        return dict(zip((k.key for k in KPIS), self._each(self._first, [k.rule for k in KPIS]), strict=True))

    def tier_hit_ratios(self) -> dict[str, float | None]:
        return {labels.get("tier", "?"): value for labels, value in
                self.instant("job_tier:recops_cache_hits_per_request:ratio_rate1m")}

    def range_frame(self, panel: Panel, start: datetime, end: datetime, step: float) -> pd.DataFrame:
        """Long frame (time, series, value) of every series of ``panel``; empty when nothing recorded."""
        return self.range_frames([panel], start, end, step)[panel.key]

    def range_frames(self, panels: Sequence[Panel], start: datetime, end: datetime,
                     step: float) -> dict[str, pd.DataFrame]:
        """``range_frame`` of each panel, by panel key; every series of every panel is queried at once."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("pass timezone-aware datetimes (naive ones would be read as local time)")
        series = [(panel.key, s) for panel in panels for s in panel.series]

        def query(item: tuple[str, Series]) -> list[dict[str, Any]]:
            return self._call(self.client.custom_query_range, item[1].expr, start_time=start, end_time=end,
                              step=f"{int(step)}s")

        frames: dict[str, list[pd.DataFrame]] = {panel.key: [] for panel in panels}
        for (key, s), result in zip(series, self._each(query, series), strict=True):
            for r in result:
                values = r.get("values") or []
                if not values:
                    continue
                frames[key].append(pd.DataFrame({
                    "time": pd.to_datetime([float(t) for t, _ in values], unit="s", utc=True),
                    "series": _legend(s.legend, r.get("metric", {})),
                    "value": pd.to_numeric([v for _, v in values], errors="coerce"),
                }))
        return {key: pd.concat(parts, ignore_index=True) if parts else _empty_range_frame()
                for key, parts in frames.items()}

    def alerts(self) -> list[Alert]:
        try:
            response = self.http.get(f"{self.url}/api/v1/alerts")
            response.raise_for_status()
            raw = response.json()["data"]["alerts"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise MetricsUnavailableError(f"Prometheus alerts at {self.url} failed: {exc}") from exc
        return parse_alerts(raw)


def _empty_range_frame() -> pd.DataFrame:
    return pd.DataFrame({"time": pd.Series(dtype="datetime64[ns, UTC]"), "series": pd.Series(dtype=str),
                         "value": pd.Series(dtype=float)})


def parse_alerts(raw: Iterable[Mapping[str, Any]]) -> list[Alert]:
    """Alerts of Prometheus' ``/api/v1/alerts``, firing first, then by severity and name."""
    out = []
    for a in raw:
        labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
        notes = a.get("annotations") or {}
        out.append(Alert(
            name=labels.get("alertname", "?"), state=str(a.get("state", "?")),
            severity=labels.get("severity", "none"), summary=str(notes.get("summary", "")),
            description=str(notes.get("description", "")), runbook=str(notes.get("runbook", "")),
            active_at=a.get("activeAt"), value=a.get("value"), labels=labels,
        ))
    severity_rank = {"critical": 0, "warning": 1}
    return sorted(out, key=lambda a: (a.state != "firing", severity_rank.get(a.severity, 2), a.name))


# --------------------------------------------------------------------------- /metrics fallback


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile`` over cumulative ``(le, count)`` buckets (linear in a bucket)."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower  # past the last finite bucket: its bound is the best answer there is
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class ExpositionSnapshot:
    """One read of the API's ``/metrics``; every number is a total since the API started."""

    samples: list[Sample]

    @classmethod
    def parse(cls, text: str) -> ExpositionSnapshot:
        samples = [
            Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
        return cls(samples)

    def total(self, name: str, **match: str) -> float:
        return math.fsum(s.value for s in self.samples
                         if s.name == name and all(s.labels.get(k) == v for k, v in match.items()))

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for s in self.samples:
            if s.name == name and label in s.labels:
                out[s.labels[label]] += s.value
        return dict(out)

    def latency_quantiles(self) -> dict[float, float | None]:
        buckets = self.by_label("recops_recommendation_latency_seconds_bucket", "le")
        pairs = [(float(le), count) for le, count in buckets.items()]
        return {q: histogram_quantile(q, pairs) for q in QUANTILES}

    def requests(self) -> dict[str, float]:
        return self.by_label("recops_recommendation_requests_total", "status")

    def tier_hit_ratios(self) -> dict[str, float | None]:
        looked = self.by_label("recops_cache_requests_total", "tier")
        return {tier: _ratio(self.total("recops_cache_requests_total", tier=tier, result="hit"), n)
                for tier, n in sorted(looked.items())}

    def miss_causes(self) -> dict[str, float]:
        """Lists computed (L2 misses) since the API started, by cause; every cause, zeros included."""
        return {cause: self.total("recops_cache_misses_total", tier="l2", cause=cause) for cause in MISS_CAUSES}

    def kpis(self) -> dict[str, float | None]:
        events = self.by_label("recops_events_total", "type")
        impressions = events.get("impression", 0.0)
        served = self.by_label("recops_recommendation_latency_seconds_count", "tier")
        requests = self.requests()
        coverage = [s.value for s in self.samples if s.name == "recops_catalog_coverage_ratio"]
        return {
            "ctr": _ratio(events.get("click", 0.0), impressions),
            "conversion": _ratio(events.get("purchase", 0.0), impressions),
            "p95_latency": self.latency_quantiles()[0.95],
            "cache_hit": _ratio(served.get("l1", 0.0) + served.get("l2", 0.0), sum(served.values())),
            "coverage": max(coverage) if coverage else None,
            "diversity": _ratio(self.total("recops_list_diversity_ratio_sum"),
                                self.total("recops_list_diversity_ratio_count")),
            "error_ratio": _ratio(requests.get("error", 0.0), sum(requests.values())),
        }


class ExpositionSource:
    kind: SourceKind = "api"
    window = "totals since the API started (no Prometheus: read from the API's /metrics)"

    def __init__(self, api_url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = api_url.rstrip("/")
        self.timeout = timeout
        self.http = httpx.Client(timeout=timeout)

    def snapshot(self) -> ExpositionSnapshot:
        try:
            response = self.http.get(f"{self.url}/metrics")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise MetricsUnavailableError(f"the API's /metrics at {self.url} failed: {exc}") from exc
        try:
            return ExpositionSnapshot.parse(response.text)
        except ValueError as exc:
            raise MetricsUnavailableError(f"the API's /metrics is not in the Prometheus text format: {exc}") from exc

    def current(self) -> dict[str, float | None]:
        return self.snapshot().kpis()

    def tier_hit_ratios(self) -> dict[str, float | None]:
        return self.snapshot().tier_hit_ratios()


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class SourceChoice:
    kind: SourceKind
    url: str


def choose_source(prometheus_ok: bool, prometheus_url: str | None, api_url: str | None) -> SourceChoice | None:
    """Where the console reads metrics: Prometheus when it answers, else the API's /metrics, else nowhere."""
    if prometheus_ok and prometheus_url:
        return SourceChoice("prometheus", prometheus_url)
    if api_url:
        return SourceChoice("api", api_url)
    return None


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    step: float  # seconds between points


def window(range_label: str, end: datetime) -> Window:
    """The span of ``TIME_RANGES[range_label]`` ending at ``end``, with its query step."""
    span = TIME_RANGES[range_label]
    return Window(end - span, end, step_for(span))
