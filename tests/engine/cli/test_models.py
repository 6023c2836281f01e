"""`recops train` and `recops models ...` in process, on a small demo world and a real Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.config import get_settings
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.cli import run_cli
from tests.support.engine_fixtures import small_world_env

run = run_cli


@pytest.fixture
def data_dir(small_world_dir: Path, tmp_path: Path, redis_url: str, redis_client: redis.Redis,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The small demo world without its models: this test's registry starts empty."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "world").symlink_to(small_world_dir / "world", target_is_directory=True)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("RECOPS_DATA_DIR", str(data))
    for name, value in small_world_env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def registry_bytes(data_dir: Path) -> bytes:
    path = data_dir / "models" / "registry.json"
    return path.read_bytes() if path.exists() else b""


def test_train_list_promote_rollback(data_dir: Path, redis_client: redis.Redis,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["train", "--dataset", "demo", "--model", "popularity", "--json"], capsys)
    assert code == 0 and err == ""
    first = json.loads(out)[0]
    assert first["stage"] == "production" and first["lineage"]["dataset"] == "demo"
    assert first["lineage"]["metrics"]["per_user"]["precision_at_10"] > 0

    code, out, err = run(["train", "--dataset", "demo", "--model", "popularity", "--param", "half_life_days=3"],
                         capsys)
    assert code == 0 and err == ""
    assert "candidate" in out and "time P@10" in out and "per-user NDCG@10" in out
    code, out, _ = run(["models", "list", "--json"], capsys)
    rows = json.loads(out)
    assert [(r["model"], r["stage"]) for r in rows] == [("popularity", "production"), ("popularity", "candidate")]
    second = rows[1]
    assert second["params"] == {"half_life_days": 3.0} and second["events"] == 0
    assert second["interactions"] == rows[0]["interactions"] > 0 and second["trained_at"]
    code, out, _ = run(["models", "list", "--dataset", "demo"], capsys)
    header = out.splitlines()[0].split()
    assert header[:8] == ["model", "version", "dataset", "stage", "trained_at", "interactions", "events", "params"]
    assert "half_life_days=3" in out
    code, out, _ = run(["models", "list", "--dataset", "elsewhere"], capsys)
    assert out.strip() == "no trained models"

    code, out, err = run(["models", "promote", "popularity", second["version"], "--dataset", "demo"], capsys)
    assert code == 0 and err == "" and f"{second['version']} is production" in out
    audit = AuditLog(redis_client, Keys())
    entry = audit.recent(1)[0]
    assert (entry.action, entry.target) == ("promote_model", "popularity:demo")
    assert entry.actor.startswith("cli:") and entry.detail == f"{second['version']} (was {first['version']})"
    code, out, err = run(["models", "rollback", "popularity"], capsys)
    assert code == 0 and f"{first['version']} is production" in out
    assert audit.recent(1)[0].action == "rollback_model"
    code, out, _ = run(["models", "list", "--json"], capsys)
    assert [r["stage"] for r in json.loads(out)] == ["production", "archived"]


@pytest.mark.parametrize(("argv", "message"), [
    (["models", "promote", "popularity", "19990101T000000000000Z-deadbeef"], "has no version"),
    (["models", "promote", "deep_magic", "v1"], "unknown model 'deep_magic'"),
    (["models", "rollback", "popularity"], "no earlier production version"),
    (["train", "--dataset", "demo", "--model", "deep_magic"], "unknown model"),
    (["train", "--dataset", "demo", "--model", "als", "--param", "factors=many"], "als needs int"),
    (["train", "--dataset", "demo", "--model", "als", "--param", "depth=3"], "not a parameter of als"),
    (["train", "--dataset", "demo", "--model", "popularity", "--param", "nonsense"], "expected key=value"),
    (["train", "--dataset", "nowhere"], "no dataset named 'nowhere'"),
    (["train", "--dataset", "demo", "--holdout-days", "0"], "must be positive"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(["train", "--dataset", "demo", "--model", "popularity"], capsys)[0] == 0
    before = registry_bytes(data_dir)
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    assert registry_bytes(data_dir) == before


def test_ease_above_the_cap(data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                            ) -> None:
    monkeypatch.setenv("RECOPS_EASE_MAX_ITEMS", "50")
    get_settings.cache_clear()
    code, out, err = run(["train", "--dataset", "demo", "--model", "ease"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "RECOPS_EASE_MAX_ITEMS" in err
    assert registry_bytes(data_dir) == b""
    # "all" trains the others and says why EASE was left out
    code, out, err = run(["train", "--dataset", "demo", "--model", "all", "--json"], capsys)
    assert code == 0 and "ease skipped" in err
    assert sorted(r["model"] for r in json.loads(out)) == ["als", "item_item", "popularity"]


def test_a_switch_without_redis_is_refused(data_dir: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    run(["train", "--dataset", "demo", "--model", "popularity"], capsys)
    run(["train", "--dataset", "demo", "--model", "popularity", "--param", "half_life_days=2"], capsys)
    candidate = json.loads(run(["models", "list", "--json"], capsys)[1])[1]["version"]
    before = registry_bytes(data_dir)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    code, out, err = run(["models", "promote", "popularity", candidate], capsys)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "without an audit record" in err
    assert registry_bytes(data_dir) == before
