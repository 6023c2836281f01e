"""The Prometheus config template, recording and alert rules, checked by promtool.

promtool's own unit tests (engine/monitoring/prometheus/tests/rules_test.yml) assert what every rule computes;
here they run, and a rule added without a test there fails.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.monitoring.prometheus_server import CONFIG_FILES, RULE_FILES, render_config
from tests.conftest import require_binary

CONFIG_DIR = Path(str(CONFIG_FILES))  # promtool takes paths: the package lies on disk here
RULES_DIR = CONFIG_DIR / "rules"
UNIT_TESTS = CONFIG_DIR / "tests" / "rules_test.yml"
SCRAPE_INTERVAL_SECONDS = 5
SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool")
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of the rule files that has the key ``kind`` ("record" or "alert")."""
    found = []
    for name in RULE_FILES:
        for group in load(RULES_DIR / name)["groups"]:
            found += [rule for rule in group["rules"] if kind in rule]
    return found


def test_rendered_config_passes_promtool(tmp_path: Path) -> None:
    config = render_config(tmp_path, "127.0.0.1:8000")
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = load(config)
    assert rendered["global"]["scrape_interval"] == f"{SCRAPE_INTERVAL_SECONDS}s"
    assert rendered["global"]["evaluation_interval"] == f"{SCRAPE_INTERVAL_SECONDS}s"
    [job] = rendered["scrape_configs"]
    assert job["job_name"] == "recops-api"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert rendered["rule_files"] == [str((tmp_path / "rules" / name).resolve()) for name in RULE_FILES]
    # promtool also loaded and checked the copied rule files through rule_files
    checked = re.findall(r"SUCCESS: (\d+) rules found", result.stdout + result.stderr)
    assert sum(map(int, checked)) == len(rules("record")) + len(rules("alert"))


def test_the_config_scrapes_the_stream_consumer_when_given_its_port(tmp_path: Path) -> None:
    config = render_config(tmp_path, "127.0.0.1:8000", consumer_target="127.0.0.1:9400")
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    api, consumer = load(config)["scrape_configs"]
    assert api["job_name"] == "recops-api"
    assert (consumer["job_name"], consumer["metrics_path"]) == ("recops-consumer", "/metrics")
    assert consumer["static_configs"] == [{"targets": ["127.0.0.1:9400"]}]
    with pytest.raises(ValueError, match="consumer_target must be host:port"):
        render_config(tmp_path, "127.0.0.1:8000", consumer_target="http://127.0.0.1:9400/metrics")


def test_render_config_rejects_a_url_and_missing_config_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host:port"):
        render_config(tmp_path, "http://127.0.0.1:8000")
    with pytest.raises(FileNotFoundError, match="engine/monitoring/prometheus"):
        render_config(tmp_path, "127.0.0.1:8000", source=tmp_path / "nowhere")


def test_rule_files_pass_promtool_check() -> None:
    result = promtool("check", "rules", *(RULES_DIR / name for name in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_recording_rule_has_an_expression_test() -> None:
    tested: set[str] = set()
    for case in load(UNIT_TESTS)["tests"]:
        for expr_test in case.get("promql_expr_test", []):
            tested |= set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr_test["expr"]))
    untested = [rule["record"] for rule in rules("record") if rule["record"] not in tested]
    assert not untested, f"recording rules without a promql_expr_test in {UNIT_TESTS.name}: {untested}"


def test_every_alert_has_a_firing_and_a_silent_test() -> None:
    outcomes: dict[str, set[bool]] = {}
    for case in load(UNIT_TESTS)["tests"]:
        for alert_test in case.get("alert_rule_test", []):
            outcomes.setdefault(alert_test["alertname"], set()).add(bool(alert_test.get("exp_alerts")))
    for rule in rules("alert"):
        assert outcomes.get(rule["alert"]) == {True, False}, (
            f"{rule['alert']} needs an alert_rule_test where it fires and one where it does not"
        )


def test_recording_rule_names_follow_level_metric_operation() -> None:
    names = [rule["record"] for rule in rules("record")]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name


def test_rate_windows_span_at_least_four_scrapes() -> None:
    for rule in rules("record") + rules("alert"):
        for amount, unit in re.findall(r"\[(\d+)([smhd])\]", rule["expr"]):
            assert int(amount) * SECONDS_PER_UNIT[unit] >= 4 * SCRAPE_INTERVAL_SECONDS, rule["expr"]


def test_every_alert_is_documented() -> None:
    for rule in rules("alert"):
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule.get("for"), rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= annotations.keys(), rule["alert"]
        # a runbook is numbered steps starting in the console
        assert annotations["runbook"].startswith("1) Console,"), rule["alert"]
        assert "2) " in annotations["runbook"], rule["alert"]
