"""The Models page's Offline check: choices, the estimate laid out, and readable messages without logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.console import offline_check as oc
from engine.data.event_log import EventLog
from engine.experiments.off_policy import OffPolicyResult
from engine.experiments.offline_check import OfflineCheck
from engine.models.registry import VersionRecord
from engine.runtime import Engine


def result(snips: tuple[float, float, float], logging: float = 0.5, truth: float | None = 0.6,
           mean_weight: float = 1.0) -> OffPolicyResult:
    value, lo, hi = snips
    return OffPolicyResult(target="als@candidate", requests=20_000, rows=200_000, depth=10, matched=0.1,
                           mean_weight=mean_weight, logging_value=logging,
                           estimates={"ipw": {"value": value + 0.01, "ci": [lo, hi]},
                                      "snips": {"value": value, "ci": [lo, hi]}},
                           truth=truth)


def test_spec_choices_name_stages_then_numbers() -> None:
    records = [VersionRecord("als", "v1", "demo", "archived", number=1),
               VersionRecord("als", "v2", "demo", "production", number=2),
               VersionRecord("als", "v3", "demo", "candidate", number=3),
               VersionRecord("item_item", "v4", "demo", "production", number=1)]
    assert oc.spec_choices(records) == ["als@production", "als@candidate", "item_item@production",
                                        "als@1", "als@2", "als@3", "item_item@1"]
    assert oc.target_text("als@candidate", " mmr_lambda=0.5,n=10, ") == "als@candidate:mmr_lambda=0.5,n=10"
    assert oc.target_text("als@2", "") == "als@2"


def test_cards_frame_and_caption_put_estimate_logging_and_truth_side_by_side() -> None:
    better = result((0.62, 0.58, 0.66))
    cards = oc.result_cards(better)
    assert [c.label for c in cards] == ["Candidate (estimated)", "Logging policy (observed)", "Truth (demo world)"]
    assert cards[0].value == "0.620" and "0.580 – 0.660" in (cards[0].help or "")
    frame = oc.result_frame(better)
    assert frame["estimate"].tolist() == ["IPS", "SNIPS", "Logging policy (observed)", "Truth (demo world)"]
    assert frame["clicks per list"].tolist() == pytest.approx([0.63, 0.62, 0.5, 0.6])
    text = oc.caption(better)
    assert "more clicks than the logging policy" in text and "truth is 0.600" in text and "Caution" not in text
    assert "fewer clicks" in oc.caption(result((0.4, 0.35, 0.45)))
    assert "about as many" in oc.caption(result((0.52, 0.45, 0.59), truth=None))
    assert "Truth" not in str(oc.result_frame(result((0.5, 0.4, 0.6), truth=None))["estimate"].tolist())
    assert "Caution" in oc.caption(result((0.5, 0.4, 0.6), mean_weight=0.5))


def test_without_logs_the_check_says_so_and_how_to_get_some(engine: Engine, tmp_path: Path) -> None:
    check = OfflineCheck(engine.service, engine.registry, engine.dataset.name, EventLog(tmp_path / "empty"),
                         engine.world)
    outcome = oc.run_check(check, "als@production")
    assert outcome.result is None and outcome.message is not None
    assert "No exploring impressions" in outcome.message and "simulate" in outcome.message
    imported = OfflineCheck(engine.service, engine.registry, engine.dataset.name, EventLog(tmp_path / "empty"))
    assert "exploration" in (oc.run_check(imported, "als").message or "")
    assert "unknown model" in (oc.run_check(check, "nosuch").message or "")
    assert "Simulate between" in (oc.run_check(check, "als", simulate=10**9).message or "")
    assert "demo world" in (oc.run_check(imported, "als", simulate=100).message or "")


def test_a_simulated_check_gives_a_result(engine: Engine, tmp_path: Path) -> None:
    check = OfflineCheck(engine.service, engine.registry, engine.dataset.name, EventLog(tmp_path / "log"),
                         engine.world)
    outcome = oc.run_check(check, "als@production:mmr_lambda=1", simulate=2_000, seed=1)
    assert outcome.message is None and outcome.result is not None
    assert outcome.result.requests == 2_000 and outcome.result.truth is not None
    assert {c.label for c in oc.result_cards(outcome.result)} >= {"Candidate (estimated)", "Truth (demo world)"}
