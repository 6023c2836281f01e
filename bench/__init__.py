"""Benchmarks: each prints a table with medians and ratios against a baseline measured in the same run."""
