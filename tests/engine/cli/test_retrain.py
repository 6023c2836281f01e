"""`recops retrain` in process: one run now (--once), and the ways it is refused, against a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.models.registry import CANDIDATE, ModelRegistry
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.cli import Recops
from tests.support.imported_data import NAME, import_small_dataset
from tests.support.logged_events import log_events


@pytest.fixture
def shop(recops: Recops, tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> Iterator[Path]:
    """The imported shop served (RECOPS_DATASET) with a production popularity model trained on it."""
    data = tmp_path / "data"
    import_small_dataset(data)
    recops.env(REDIS_URL=redis_url, RECOPS_DATA_DIR=str(data), RECOPS_DATASET=NAME)
    recops.monkeypatch.delenv("RECOPS_RETRAIN_EVERY", raising=False)
    assert recops(["train", "--dataset", NAME, "--model", "popularity"])[0] == 0
    yield data


def test_once_retrains_when_events_arrived_and_skips_when_none_did(
    shop: Path, recops: Recops, redis_client: redis.Redis
) -> None:
    registry = ModelRegistry(shop / "models")
    production = registry.served(NAME)
    code, out, err = recops(["retrain", "--once"])
    assert (code, err) == (0, "") and f"retrain of {NAME} skipped: popularity: no new events since" in out

    log_events(shop, NAME, [("zz-new", "B01", "purchase"), ("b02", "B03", "click")])
    code, out, err = recops(["retrain", "--once"])
    assert (code, err) == (0, "") and f"retrained {NAME} v1 with 2 logged events: popularity " in out
    assert "(candidate)" in out
    assert registry.served(NAME) == production
    [candidate] = [r for r in registry.records(NAME) if r.stage == CANDIDATE]
    assert candidate.lineage["events"] == 2
    entry = AuditLog(redis_client, Keys()).recent(1)[0]
    assert (entry.actor, entry.action, entry.detail) == ("schedule", "retrain_models",
                                                         f"popularity {candidate.version} (candidate); 2 logged events")


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["retrain"], {}, "no schedule: pass --every"),
    (["retrain", "--every", "6x"], {}, "--every '6x' is not a duration"),
    (["retrain", "--every", "0"], {}, "a duration must be a positive"),
    (["retrain", "--once", "--dataset", "nowhere"], {}, "no dataset named 'nowhere'"),
    (["retrain", "--once"], {"RECOPS_RETRAIN_EVERY": "soon"},
     "invalid setting RECOPS_RETRAIN_EVERY: 'soon' is not a duration"),
])
def test_bad_input_is_one_line_and_exit_2(shop: Path, recops: Recops, argv: list[str], env: dict[str, str],
                                          message: str) -> None:
    before = (shop / "models" / "registry.json").read_bytes()
    recops.env(**env)
    code, out, err = recops(argv)
    assert (code, out) == (2, "") and len(err.strip().splitlines()) == 1 and message in err, err
    assert "Traceback" not in err
    assert (shop / "models" / "registry.json").read_bytes() == before


def test_without_redis_for_the_audit_log_nothing_is_retrained(shop: Path, recops: Recops) -> None:
    log_events(shop, NAME, [("zz-new", "B01", "purchase")])
    before = (shop / "models" / "registry.json").read_bytes()
    recops.env(REDIS_URL="redis://127.0.0.1:1/0")
    code, out, err = recops(["retrain", "--once"])
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and "does not answer" in err
    assert (shop / "models" / "registry.json").read_bytes() == before
