"""`recops train` and `recops models ...` in process, on a small demo world and a real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.config import Settings, get_settings
from engine.data.event_log import EventLog, event_log_root
from engine.data.logged_events import replay_id_prefix
from engine.data.split import interaction_events
from engine.models.lineage import utc_iso
from engine.models.registry import ModelRegistry
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.cli import run_cli
from tests.support.engine_fixtures import small_world_env
from tests.support.imported_data import NAME, import_small_dataset
from tests.support.logged_events import log_events
from tests.support.synthetic_data import two_taste_dataset

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


# ---- recops train learns from the event log --------------------------------------------------

NEWCOMER = "zz-newcomer"  # a user who exists only in the event log
NEWCOMER_EVENTS = [(NEWCOMER, "A01", "view"), (NEWCOMER, "A01", "purchase"), (NEWCOMER, "A02", "click"),
                   (NEWCOMER, "A03", "add_to_cart"), (NEWCOMER, "A04", "view")]


@pytest.fixture
def shop_dir(tmp_path: Path, redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[Path]:
    """The two-taste shop imported into a data dir of its own, no models yet."""
    data = tmp_path / "data"
    import_small_dataset(data)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("RECOPS_DATA_DIR", str(data))
    monkeypatch.delenv("RECOPS_DATASET", raising=False)
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def test_train_learns_from_the_logged_events_and_counts_them(shop_dir: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    written = log_events(shop_dir, NAME, [*NEWCOMER_EVENTS, ("a00", "A05", "click"), ("b01", "B02", "impression")])
    code, out, err = run(["train", "--dataset", NAME, "--model", "als", "--json"], capsys)
    assert code == 0 and err == "", err
    [trained] = json.loads(out)
    lineage = trained["lineage"]
    assert lineage["events"] == written == 7
    log = EventLog(shop_dir / "events" / NAME).read()
    first, last = min(log["timestamp"].to_pylist()), max(log["timestamp"].to_pylist())
    assert (lineage["events_from"], lineage["events_to"]) == (utc_iso(first), utc_iso(last))
    # the dataset's own rows are counted as before, the logged ones apart
    assert lineage["interactions"] == len(interaction_events(two_taste_dataset(seed=0).events))

    model = ModelRegistry(shop_dir / "models").load("als", trained["version"], dataset=NAME)
    assert NEWCOMER in model.user_index
    # learnt, not only indexed: the newcomer touched A items only, and A items lead their list
    top = [item for item, _ in model.recommend(NEWCOMER, n=5)]
    assert sum(item.startswith("A") for item in top) >= 4, top

    code, out, _ = run(["models", "list", "--dataset", NAME, "--json"], capsys)
    [row] = json.loads(out)
    assert (row["version"], row["events"], row["events_to"]) == (trained["version"], 7, lineage["events_to"])
    code, out, _ = run(["models", "list", "--dataset", NAME], capsys)
    assert out.splitlines()[2].split()[6] == "7"  # the events column of the table

    code, out, err = run(["train", "--dataset", NAME, "--model", "als", "--no-events", "--json"], capsys)
    assert code == 0 and err == ""
    [alone] = json.loads(out)
    assert (alone["stage"], alone["lineage"]["events"], alone["lineage"]["events_from"]) == ("candidate", 0, None)
    assert NEWCOMER not in ModelRegistry(shop_dir / "models").load("als", alone["version"], dataset=NAME).user_index


def test_train_leaves_out_logged_events_of_unknown_items_and_says_so(shop_dir: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    log_events(shop_dir, NAME, [*NEWCOMER_EVENTS, (NEWCOMER, "GONE-1", "purchase"), ("a01", "GONE-2", "view")])
    code, out, err = run(["train", "--dataset", NAME, "--model", "popularity"], capsys)
    assert code == 0
    assert err.strip() == f"recops train: 2 logged events left out: their item is not in the catalogue of dataset " \
                          f"'{NAME}' version 1"
    assert f"dataset {NAME} version 1: 60 users, 24 items; 5 logged events of 1 users" in out
    [row] = json.loads(run(["models", "list", "--json"], capsys)[1])
    assert row["events"] == 5


def test_train_leaves_out_a_replay_of_the_versions_own_rows_and_says_so(shop_dir: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`recops replay` sends the dataset's rows as traffic (ids ``replay_id_prefix``): training on that
    version already holds them, so it learns the live events only."""
    log_events(shop_dir, NAME, NEWCOMER_EVENTS)
    replayed = [{"stream_id": f"9-{i}", "event_id": f"{replay_id_prefix(NAME, 1)}{i}", "user_id": "a01",
                 "item_id": "A01", "type": "purchase", "timestamp": time.time() - 10 + i, "value": 19.9}
                for i in range(3)]
    EventLog(event_log_root(Settings(data_dir=shop_dir)) / NAME).append(replayed, batch="replay-9")
    code, out, err = run(["train", "--dataset", NAME, "--model", "popularity", "--json"], capsys)
    assert code == 0
    assert err.strip() == f"recops train: 3 logged events left out: they are `recops replay` of rows dataset " \
                          f"'{NAME}' version 1 already holds"
    [trained] = json.loads(out)
    assert trained["lineage"]["events"] == len(NEWCOMER_EVENTS)


def test_a_log_that_does_not_match_its_manifest_is_one_line_and_trains_nothing(
    shop_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_events(shop_dir, NAME, NEWCOMER_EVENTS)
    for part in (shop_dir / "events" / NAME).rglob("*.parquet"):
        part.unlink()  # listed in the manifest, gone from the disk
    code, out, err = run(["train", "--dataset", NAME, "--model", "popularity"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "listed files are missing" in err
    assert registry_bytes(shop_dir) == b""
    code, out, err = run(["train", "--dataset", NAME, "--model", "popularity", "--no-events"], capsys)
    assert code == 0  # the dataset alone does not need the log
