"""Experiments: A/B/n tests and Thompson-sampling bandits over the serving models.

    >>> from engine.experiments import ExperimentService
    >>> service.create({...}); service.start(key); service.readout(key).decision_text

Modules: ``model`` (the config and its validation), ``assignment`` (pure hashing of users to
variants), ``scripts`` and ``store`` (Redis), ``stats`` and ``readout`` (from stored statistics to
a decision), ``planning`` (sample sizes), ``service`` (all of it behind one object), ``cli``.
"""

from engine.experiments.assignment import Assignment, AssignmentTable, Holdout
from engine.experiments.covariates import PreExposure
from engine.experiments.hashing import bucket
from engine.experiments.metrics import METRICS, MetricSpec
from engine.experiments.model import (
    BanditSettings,
    ConflictError,
    Experiment,
    ExperimentError,
    NotFoundError,
    Phase,
    Variant,
    parse_experiment,
)
from engine.experiments.planning import SampleSizePlan, plan_sample_size
from engine.experiments.results import ExperimentReadout, MetricResult
from engine.experiments.service import ExperimentService

__all__ = [
    "METRICS",
    "Assignment",
    "AssignmentTable",
    "BanditSettings",
    "ConflictError",
    "Experiment",
    "ExperimentError",
    "ExperimentReadout",
    "ExperimentService",
    "Holdout",
    "MetricResult",
    "MetricSpec",
    "NotFoundError",
    "Phase",
    "PreExposure",
    "SampleSizePlan",
    "Variant",
    "bucket",
    "parse_experiment",
    "plan_sample_size",
]
