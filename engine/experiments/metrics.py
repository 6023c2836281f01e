"""What is counted per exposed user, and the metrics a readout can compute from it.

Counters are kept per unit (a user; for a bandit a user within one weight epoch): impressions,
clicks, add_to_carts, purchases and revenue.  Two indicators derive from them (``clicked``: at
least one click, ``converted``: at least one purchase).  Each counter has a pre-exposure covariate
for CUPED: the user's clicks in the dataset history for the click-side counters, purchases for the
purchase side.

Metric kinds:

- ``ratio``: sum of a numerator over sum of a denominator across the arm's users (CTR is
  clicks/impressions); analysed per user with the delta method, so a heavy user's many
  impressions are not treated as independent trials.  Not CUPED-adjusted.
- ``mean``: a per-user count or amount (revenue per exposed user); CUPED-adjusted.
- ``binomial``: a per-user indicator (share of users who converted); CUPED-adjusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

COUNTERS = ("impressions", "clicks", "add_to_carts", "purchases", "revenue")
COVARIATES = ("clicks", "purchases")  # pre-exposure counts from the dataset history
COUNTER_COVARIATE = {
    "impressions": "clicks",
    "clicks": "clicks",
    "add_to_carts": "purchases",
    "purchases": "purchases",
    "revenue": "purchases",
}
INDICATORS = {"clicked": "clicks", "converted": "purchases"}  # indicator -> counter it flags
EVENT_COUNTER = {
    "impression": "impressions",
    "click": "clicks",
    "add_to_cart": "add_to_carts",
    "purchase": "purchases",
}

MetricKind = Literal["ratio", "mean", "binomial"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: MetricKind
    numerator: str  # a counter, or an indicator for binomial metrics
    denominator: str | None = None
    description: str = ""

    @property
    def covariate(self) -> str | None:
        if self.kind == "ratio":
            return None
        return COUNTER_COVARIATE.get(self.numerator) or COUNTER_COVARIATE[INDICATORS[self.numerator]]


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("ctr", "ratio", "clicks", "impressions", "clicks per impression"),
        MetricSpec("add_to_cart_rate", "ratio", "add_to_carts", "impressions", "add-to-carts per impression"),
        MetricSpec("conversion_rate", "ratio", "purchases", "impressions", "purchases per impression"),
        MetricSpec("clicked", "binomial", "clicked", None, "share of users with at least one click"),
        MetricSpec("converted", "binomial", "converted", None, "share of users with at least one purchase"),
        MetricSpec("impressions", "mean", "impressions", None, "impressions per user"),
        MetricSpec("clicks", "mean", "clicks", None, "clicks per user"),
        MetricSpec("add_to_carts", "mean", "add_to_carts", None, "add-to-carts per user"),
        MetricSpec("purchases", "mean", "purchases", None, "purchases per user"),
        MetricSpec("revenue", "mean", "revenue", None, "revenue per user"),
    )
}


def metric(name: str) -> MetricSpec:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(METRICS)}") from None
