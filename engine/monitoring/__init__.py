"""Monitoring: Prometheus metric definitions, the embedded Prometheus with its config and rules, quality signals."""
