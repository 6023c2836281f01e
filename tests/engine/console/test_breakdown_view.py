"""The Readout page's breakdown section: the table of cells and the notices."""

from __future__ import annotations

from engine.console import breakdown_view

CELL = {"value": "bargain", "users": {"control": 500, "t": 480}, "results": [
    {"variant": "t", "control_mean": 1.0, "mean": 0.8, "lift_rel": -0.2, "p_value": 0.001,
     "p_value_adjusted": 0.003, "significant": True, "too_small": False, "message": None}]}
SMALL = {"value": "tablet", "users": {"control": 20, "t": 25}, "results": [
    {"variant": "t", "control_mean": 1.0, "mean": 1.1, "lift_rel": None, "p_value": None,
     "p_value_adjusted": None, "significant": False, "too_small": True, "message": "too small for a test"}]}


def test_breakdown_frame_shows_cells_and_marks_small_ones() -> None:
    frame = breakdown_view.breakdown_frame({"cells": [CELL, SMALL], "simpson": {}, "error": None})
    assert frame["cell"].tolist() == ["bargain", "tablet"]
    assert frame["significant"].tolist() == ["yes", "too small"]
    assert frame.loc[0, "adjusted p"] == 0.003 and frame.loc[0, "users"] == 480 and frame.loc[0, "control users"] == 500


def test_notices_carry_the_error_or_the_simpson_hint() -> None:
    error = breakdown_view.breakdown_notices({"error": "the dimension 'zip' has 9,000 values", "cells": []})
    assert [n.level for n in error] == ["warning"] and "9,000 values" in error[0].text
    hint = {"error": None, "cells": [CELL], "simpson": {"t": {"flagged": True, "text": "Simpson's paradox? ..."},
                                                     "u": {"flagged": False, "text": ""}}}
    assert [n.text for n in breakdown_view.breakdown_notices(hint)] == ["Simpson's paradox? ..."]


def test_a_lower_is_better_metric_reads_better_when_it_falls() -> None:
    from engine.console.readout_view import oriented_direction

    assert oriented_direction("worse", "lower") == "better" and oriented_direction("better", "lower") == "worse"
    assert oriented_direction("inconclusive", "lower") == "inconclusive"
    assert oriented_direction("better", "higher") == "better"


def test_a_cell_with_a_sample_ratio_mismatch_is_an_error_notice_first() -> None:
    srm = {"name": "srm_by_dimension", "status": "failed", "message": "device: sample ratio mismatch in android"}
    hint = {"t": {"flagged": True, "text": "Simpson's paradox? ..."}}
    notices = breakdown_view.breakdown_notices({"error": None, "cells": [CELL], "simpson": hint, "srm": srm})
    assert [n.level for n in notices] == ["error", "warning"] and "mismatch in android" in notices[0].text
    fine = {**srm, "status": "ok", "message": "device: no cell's split departs from the weights"}
    assert [n.level for n in breakdown_view.breakdown_notices({"error": None, "cells": [CELL], "srm": fine})] == []
