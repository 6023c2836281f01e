"""A sample of the API's /metrics text with known KPIs, for the console's metrics tests."""

from __future__ import annotations

EXPOSITION = """\
# TYPE recops_recommendation_requests_total counter
recops_recommendation_requests_total{model="als",status="ok"} 97.0
recops_recommendation_requests_total{model="als",status="error"} 3.0
# TYPE recops_recommendation_latency_seconds histogram
recops_recommendation_latency_seconds_bucket{le="0.01",tier="l1"} 60.0
recops_recommendation_latency_seconds_bucket{le="0.1",tier="l1"} 60.0
recops_recommendation_latency_seconds_bucket{le="+Inf",tier="l1"} 60.0
recops_recommendation_latency_seconds_count{tier="l1"} 60.0
recops_recommendation_latency_seconds_sum{tier="l1"} 0.3
recops_recommendation_latency_seconds_bucket{le="0.01",tier="miss"} 0.0
recops_recommendation_latency_seconds_bucket{le="0.1",tier="miss"} 40.0
recops_recommendation_latency_seconds_bucket{le="+Inf",tier="miss"} 40.0
recops_recommendation_latency_seconds_count{tier="miss"} 40.0
recops_recommendation_latency_seconds_sum{tier="miss"} 2.0
# TYPE recops_cache_requests_total counter
recops_cache_requests_total{result="hit",tier="l1"} 60.0
recops_cache_requests_total{result="miss",tier="l1"} 40.0
recops_cache_requests_total{result="hit",tier="l2"} 10.0
recops_cache_requests_total{result="miss",tier="l2"} 30.0
# TYPE recops_events_total counter
recops_events_total{type="impression"} 1000.0
recops_events_total{type="click"} 40.0
recops_events_total{type="purchase"} 5.0
# TYPE recops_list_diversity_ratio histogram
recops_list_diversity_ratio_count 100.0
recops_list_diversity_ratio_sum 82.0
# TYPE recops_catalog_coverage_ratio gauge
recops_catalog_coverage_ratio 0.42
"""

