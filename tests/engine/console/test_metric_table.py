"""The metrics table of the experiment editor: rows to declarations and back, empty rows dropped."""

from __future__ import annotations

import math

import pytest

from engine.console import experiment_form, metric_table
from engine.experiments import ExperimentError, parse_experiment
from engine.experiments.metric_definitions import MetricDefinition

DEFS = [
    MetricDefinition(name="views", kind="count", event_type="view", role="goal"),
    MetricDefinition(name="spend", kind="sum", event_type="purchase", role="guardrail", margin=0.02,
                     cap={"percentile": 0.99}),  # type: ignore[arg-type]
    MetricDefinition(name="view_rate", kind="ratio", numerator="views", denominator="impressions"),
]
BASE = {"key": "e", "name": "e", "variants": [{"name": "a", "model": "popularity"}, {"name": "b", "model": "als"}]}


def test_rows_round_trip_to_the_stored_declarations() -> None:
    rows = metric_table.rows_of(DEFS)
    assert rows[1]["cap_percentile"] == 0.99 and rows[1]["cap_value"] is None
    # an editor's blank row (NaN cells) is ignored
    blank = dict.fromkeys(metric_table.COLUMNS, float("nan"))
    back = metric_table.declarations([*rows, blank])
    assert back == [d.model_dump() for d in DEFS]
    exp = parse_experiment({**BASE, "metrics": back})
    assert exp.model_dump()["metrics"] == back  # unchanged table: no change, no new phase


def test_an_invalid_row_reaches_the_experiment_check_under_metrics() -> None:
    rows = [{"name": "v", "kind": "count", "event_type": "nope", "margin": math.nan}]
    declared = metric_table.declarations(rows)
    assert declared[0]["event_type"] == "nope" and declared[0]["margin"] == 0.0  # a NaN cell is no value
    with pytest.raises(ExperimentError, match="unknown event_type 'nope'") as caught:
        parse_experiment({**BASE, "metrics": declared})
    assert caught.value.field == "metrics"
    assert experiment_form.slot_of("metrics") == "metrics"
