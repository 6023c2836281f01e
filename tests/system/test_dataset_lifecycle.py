"""A dataset of one's own, end to end against real Redis: import → train → serve → promote a second version →
the served list changes (and a rollback brings the first back), all through the CLI and the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import redis

from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.api import api_env, running_api
from tests.support.cli import Recops
from tests.support.imported_data import NAME, write_import_files
from tests.support.polling import poll
from tests.support.synthetic_data import two_taste_dataset

USER = "a03"


def served_list(api_url: str) -> list[str]:
    body = httpx.post(f"{api_url}/recommendations", params={"user_id": USER, "n": 10}, timeout=10).json()
    assert body["model"] == "als" and not body["fallback"], body
    return [item["item_id"] for item in body["items"]]


def test_import_train_serve_promote_and_the_served_list_changes(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, recops: Recops
) -> None:
    data_dir = tmp_path / "data"
    recops.env(RECOPS_DATA_DIR=str(data_dir), REDIS_URL=redis_url)
    interactions, items = write_import_files(two_taste_dataset(), tmp_path / "files")

    code, out, err = recops(["import", "--name", NAME, "--interactions", str(interactions), "--items", str(items)])
    assert code == 0 and err == "" and f"imported {NAME} v1" in out
    code, out, err = recops(["train", "--dataset", NAME, "--model", "als", "--json"])
    assert code == 0, err
    first = json.loads(out)[0]
    assert first["stage"] == "production" and first["lineage"]["dataset_version"] == 1

    env = api_env(data_dir, redis_url, RECOPS_MODEL_POLL_SECONDS="0.2")
    with running_api(env, tmp_path / "api.log", args=["--dataset", NAME]) as api:
        health = httpx.get(f"{api.url}/health", timeout=5).json()
        assert health["status"] == "healthy" and health["models"]["detail"] == "als"  # only what was trained
        assert (health["dataset"]["name"], health["dataset"]["version"]) == (NAME, 1)
        before = served_list(api.url)
        # a-users like A items (the category cap keeps at most 3 of each of the two categories)
        assert before[:3] == [i for i in before if i.startswith("A")], before

        # a second version with other parameters is a candidate: nothing served changes
        code, out, err = recops(["train", "--dataset", NAME, "--model", "als", "--param", "factors=2",
                                 "--param", "iterations=1", "--param", "random_state=3", "--json"])
        assert code == 0, err
        second = json.loads(out)[0]
        assert second["stage"] == "candidate" and second["lineage"]["params"]["factors"] == 2
        assert served_list(api.url) == before

        code, out, err = recops(["models", "promote", "als", second["version"], "--dataset", NAME])
        assert code == 0 and f"{second['version']} is production" in out, err
        changed = poll(lambda: (lst := served_list(api.url)) != before and lst, 15, every=0.2)
        assert changed, "the promotion never reached the running API"
        code, out, _ = recops(["models", "list", "--dataset", NAME, "--json"])
        assert [(r["version"], r["stage"]) for r in json.loads(out)] == [(first["version"], "archived"),
                                                                         (second["version"], "production")]
        entry = AuditLog(redis_client, Keys()).recent(1)[0]
        assert (entry.action, entry.target) == ("promote_model", f"als:{NAME}")

        code, out, err = recops(["models", "rollback", "als", "--dataset", NAME])
        assert code == 0, err
        assert poll(lambda: served_list(api.url) == before, 15, every=0.2), "the rollback never reached the API"
