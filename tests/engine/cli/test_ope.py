"""`recops ope` in process on the small demo world and a real Redis: simulated exploring logs, estimates
near the world's truth, and refusals (exit 2, one line)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.config import get_settings
from engine.data.event_log import EventLog
from tests.support.cli import run_cli
from tests.support.engine_fixtures import small_world_env


@pytest.fixture
def data_dir(small_world_dir: Path, tmp_path: Path, redis_url: str, redis_client: redis.Redis,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The small demo world and its models, with an event log of this test's own."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("world", "models"):
        (data / name).symlink_to(small_world_dir / name, target_is_directory=True)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("RECOPS_DATA_DIR", str(data))
    for name, value in small_world_env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def test_simulated_logs_give_estimates_near_the_truth(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["ope", "--dataset", "demo", "--target", "als:mmr_lambda=1", "--simulate", "20000",
                              "--seed", "3", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["requests"] == 20_000
    truth = result["truth"]
    assert truth > 0
    assert result["logging_value"] > 0
    for name in ("ipw", "snips", "dr"):
        value, (lo, hi) = result[name]["value"], result[name]["ci"]
        assert lo <= value <= hi
        assert abs(value - truth) / truth < 0.15, (name, value, truth)
    for name in ("snips", "dr"):
        assert result[name]["ci"][0] <= truth <= result[name]["ci"][1] or \
            abs(result[name]["value"] - truth) / truth < 0.05, (name, result[name], truth)
    # the rows went into the dataset's event log: impressions with propensities, clicks with request ids
    table = EventLog(data_dir / "events" / "demo").read()
    impressions = table.filter(table["type"].to_numpy(zero_copy_only=False) == "impression")
    assert impressions.num_rows == 20_000 * 10
    assert impressions["marginal_propensity"].null_count == 0
    # the logs are read again without --simulate: one estimator asked, the same logs
    code, out, err = run_cli(["ope", "--dataset", "demo", "--target", "als", "--estimator", "snips", "--json"],
                             capsys)
    assert code == 0, err
    again = json.loads(out)
    assert again["requests"] == 20_000 and "snips" in again and "ipw" not in again


@pytest.mark.parametrize(("argv", "says"), [
    (["--dataset", "demo", "--target", "nosuch"], "unknown model"),
    (["--dataset", "demo", "--target", "als:mmr_lambda=7"], "mmr_lambda"),
    (["--dataset", "shop", "--target", "als", "--simulate", "10"], "demo world"),
    (["--dataset", "demo", "--target", "als"], "no logged exploring impressions"),
])
def test_refusals_exit_2_with_one_line(data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                       says: str) -> None:
    code, out, err = run_cli(["ope", *argv], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and says in err, err
