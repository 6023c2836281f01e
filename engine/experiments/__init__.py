"""Experiments: A/B/n tests, Thompson-sampling bandits and interleaving of two rankers over the serving models.

    >>> from engine.experiments import ExperimentService
    >>> service.create({...}); service.start(key); service.readout(key).decision_text

Modules: ``model`` (the config and its validation), ``assignment`` and ``hashing`` (pure hashing
of users to variants), ``store`` and ``scripts`` (Redis), ``snapshot`` (the configs a process
serves), ``exposure`` (exposures and metric updates), ``lifecycle`` (create, start, stop...),
``bandits`` (re-weighting), ``interleaving`` (merged lists, impressions and click credit of an
interleaving experiment), ``arm_stats``, ``results`` and ``readouts`` (from stored statistics to
a decision), ``planning`` (sample sizes), ``service`` (all of it behind one object).
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
