"""`recops experiments readout --json` carries health, quality and timeseries; `recops experiments export`."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.cli.main import main
from engine.config import get_settings
from engine.events.tracker import Event
from engine.experiments import ExperimentService
from engine.experiments.quality import ServedList
from engine.storage.keys import Keys


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def running(tmp_path: Path, redis_url: str, redis_client: redis.Redis,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[ExperimentService]:
    """An experiment with exposures and clicks, in the Redis and data dir the CLI reads."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("RECOPS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    service = ExperimentService(redis_client, Keys(get_settings().key_prefix))
    service.create({"key": "rep", "name": "Report", "goal_metric": "clicked",
                    "variants": [{"name": "control", "model": "popularity"}, {"name": "als", "model": "als"}]})
    service.start("rep")
    for i in range(300):
        a = service.assign(f"u{i:04d}")
        service.record_exposure(a, ServedList(("i1", "i2")))
        if a is not None and (a.variant == "als" or i % 3 == 0):
            service.observe([Event(user_id=a.user_id, item_id="i1", type="click")])
    yield service
    service.close()
    get_settings.cache_clear()


def test_readout_json_carries_health_quality_and_timeseries(
    running: ExperimentService, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["experiments", "readout", "rep", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert {"health", "quality", "timeseries"} <= set(data)
    assert data["health"][0]["name"] == "srm"
    assert all(set(c) == {"name", "status", "message", "details"} for c in data["health"])
    assert [a["variant"] for a in data["quality"]["arms"]] == ["control", "als"]
    assert sum(a["lists"] for a in data["quality"]["arms"]) == 300
    row = next(r for r in data["timeseries"] if r["arm"] == "als" and r["metric"] == "clicked")
    assert {"period", "arm", "metric", "users", "mean", "lift", "ci"} <= set(row)
    goal = data["goal"]["readout"]["results"][0]
    assert row["lift"] == pytest.approx(goal["lift_rel"]) and row["ci"] == pytest.approx(goal["ci"])
    code, out, _ = run(["experiments", "readout", "rep"], capsys)
    assert code == 0 and "health:" in out and "srm:" in out


def test_export_csv_and_html(running: ExperimentService, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["experiments", "export", "rep", "--format", "csv"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {(r["metric"], r["arm"]) for r in rows} >= {("clicked", "control"), ("clicked", "als")}
    code, out, _ = run(["experiments", "export", "rep", "--format", "csv", "--what", "timeseries"], capsys)
    assert code == 0 and out.startswith("period,metric,arm")
    target = tmp_path / "report.html"
    code, out, _ = run(["experiments", "export", "rep", "--format", "html", "--out", str(target)], capsys)
    assert code == 0 and str(target) in out
    page = target.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?https?:", page, re.I)
    assert "Report" in page and "Health" in page and "Recommendation quality" in page


def test_export_of_an_unknown_experiment_is_one_line(running: ExperimentService,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["experiments", "export", "nope", "--format", "html"], capsys)
    assert code == 2 and out == "" and err.strip() == "error: no experiment 'nope'"
