"""What a simulation run observed, collected while it runs and frozen into ``SimulationSummary``."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

EVENT_ORDER = ("impression", "click", "add_to_cart", "purchase")
PERCENTILES = (50, 95, 99)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass
class VariantStats:
    """Traffic of one (experiment, variant) arm; ``None`` for both when no experiment assigned the user."""

    experiment: str | None
    variant: str | None
    requests: int = 0
    impressions: int = 0
    clicks: int = 0

    @property
    def ctr(self) -> float | None:
        return _ratio(self.clicks, self.impressions)


@dataclass
class SimulationSummary:
    """Counts are of events the API acknowledged (accepted, or a duplicate it already held), so CTR and
    conversion are what the API itself can see; ``expected_*`` are the ground truth of what was shown."""

    api_url: str
    target_rate: float
    duration_seconds: float
    elapsed_seconds: float
    sending_seconds: float
    requests: int
    ok: int
    dropped: int
    interrupted: bool
    errors: dict[str, int]
    events: dict[str, int]
    duplicate_events: int
    failed_events: int
    items_shown: int
    ctr: float | None
    conversion: float | None
    expected_ctr: float | None
    expected_conversion: float | None
    expected_clicks: float
    latency_ms: dict[str, float | None]
    cache_tiers: dict[str, float]
    fallbacks: int
    variants: list[VariantStats] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def achieved_rate(self) -> float:
        """Requests sent per second of the sending window (the drain after it sends nothing)."""
        return self.requests / self.sending_seconds if self.sending_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["achieved_rate"] = self.achieved_rate
        out["error_count"] = self.error_count
        for row, stats in zip(out["variants"], self.variants, strict=True):
            row["ctr"] = stats.ctr
        return out


class Recorder:
    """Mutable tallies shared by the concurrent visits of one run (all on one event loop, so no locks)."""

    def __init__(self) -> None:
        self.requests = 0
        self.ok = 0
        self.dropped = 0
        self.errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.duplicate_events = 0
        self.failed_events = 0
        self.items_shown = 0
        self.click_probability_sum = 0.0
        self.purchase_probability_sum = 0.0
        self.latencies: list[float] = []
        self.tiers: Counter[str] = Counter()
        self.fallbacks = 0
        self.variants: dict[tuple[str | None, str | None], VariantStats] = {}

    def error(self, endpoint: str, what: str) -> None:
        self.errors[f"{endpoint} {what}"] += 1

    def variant(self, experiment: str | None, variant: str | None) -> VariantStats:
        key = (experiment, variant)
        if key not in self.variants:
            self.variants[key] = VariantStats(experiment, variant)
        return self.variants[key]

    def listed(self, body: dict[str, Any], latency: float, shown: int) -> VariantStats:
        self.ok += 1
        self.latencies.append(latency)
        self.tiers[str(body.get("cache_tier"))] += 1
        self.fallbacks += bool(body.get("fallback"))
        self.items_shown += shown
        arm = self.variant(body.get("experiment"), body.get("variant"))
        arm.requests += 1
        return arm

    def truth(self, click_probabilities: np.ndarray, purchase_probabilities: np.ndarray) -> None:
        self.click_probability_sum += float(click_probabilities.sum())
        self.purchase_probability_sum += float(purchase_probabilities.sum())

    def delivered(self, arm: VariantStats, event_type: str, duplicate: bool) -> None:
        self.events[event_type] += 1
        self.duplicate_events += duplicate
        if event_type == "impression":
            arm.impressions += 1
        elif event_type == "click":
            arm.clicks += 1

    def summary(
        self, *, api_url: str, target_rate: float, duration: float, elapsed: float, sending: float, interrupted: bool
    ) -> SimulationSummary:
        impressions = self.events["impression"]
        lat = np.asarray(self.latencies) * 1000.0
        latency: dict[str, float | None] = {
            f"p{q}": float(np.percentile(lat, q)) if lat.size else None for q in PERCENTILES
        }
        latency["mean"] = float(lat.mean()) if lat.size else None
        latency["max"] = float(lat.max()) if lat.size else None
        return SimulationSummary(
            api_url=api_url,
            target_rate=target_rate,
            duration_seconds=duration,
            elapsed_seconds=elapsed,
            sending_seconds=sending,
            requests=self.requests,
            ok=self.ok,
            dropped=self.dropped,
            interrupted=interrupted,
            errors=dict(sorted(self.errors.items())),
            events={t: self.events[t] for t in EVENT_ORDER},
            duplicate_events=self.duplicate_events,
            failed_events=self.failed_events,
            items_shown=self.items_shown,
            ctr=_ratio(self.events["click"], impressions),
            conversion=_ratio(self.events["purchase"], impressions),
            expected_ctr=_ratio(self.click_probability_sum, self.items_shown),
            expected_conversion=_ratio(self.purchase_probability_sum, self.items_shown),
            expected_clicks=self.click_probability_sum,
            latency_ms=latency,
            cache_tiers={tier: n / self.ok for tier, n in sorted(self.tiers.items())},
            fallbacks=self.fallbacks,
            variants=sorted(self.variants.values(), key=lambda v: (v.experiment or "", v.variant or "")),
        )


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def format_summary(s: SimulationSummary) -> str:
    """A plain-text report for a terminal."""
    status = "interrupted" if s.interrupted else "done"
    lines = [
        f"simulation against {s.api_url} ({status})",
        f"  duration          {s.elapsed_seconds:.2f} s of {s.duration_seconds:g} s",
        f"  requests          {s.requests} sent, {s.ok} ok, {s.dropped} dropped "
        f"({s.achieved_rate:.1f}/s, target {s.target_rate:g}/s)",
        f"  errors            {s.error_count}" + "".join(f"\n    {k:<28} {v}" for k, v in s.errors.items()),
        "  events posted     " + ", ".join(f"{t} {n}" for t, n in s.events.items()),
        f"                    {s.duplicate_events} duplicate, {s.failed_events} failed, {s.items_shown} items shown",
        f"  CTR               {_pct(s.ctr)}   (ground truth of what was shown: {_pct(s.expected_ctr)})",
        f"  conversion        {_pct(s.conversion, 3)}   (ground truth: {_pct(s.expected_conversion, 3)})",
        "  latency           " + "  ".join(f"{k} {_ms(v)}" for k, v in s.latency_ms.items() if k.startswith("p")),
        "  cache tiers       " + (", ".join(f"{t} {_pct(v, 1)}" for t, v in s.cache_tiers.items()) or "-"),
        f"  fallbacks         {s.fallbacks}",
    ]
    if s.variants:
        header = f"  {'experiment':<20} {'variant':<14} {'requests':>9} {'impressions':>12} {'clicks':>7} {'CTR':>8}"
        lines.append(header)
        for v in s.variants:
            lines.append(
                f"  {v.experiment or '-':<20} {v.variant or '-':<14} {v.requests:>9} {v.impressions:>12} "
                f"{v.clicks:>7} {_pct(v.ctr):>8}"
            )
    return "\n".join(lines)
