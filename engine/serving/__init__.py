"""Serving: the recommendation service (cache → features → candidates → scores → re-rank → reasons) and its cache."""
