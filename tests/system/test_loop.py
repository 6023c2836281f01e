"""The loop every recommender team lives in, end to end against real Redis, through the CLI and the HTTP API:
import → serve → POST events → consume → train on them → A/B the candidate against production → promote →
the served list changes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import redis

from engine.config import Settings
from engine.data.event_log import EventLog
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.api import api_env, running_api
from tests.support.cli import Recops
from tests.support.imported_data import NAME, write_import_files
from tests.support.polling import poll
from tests.support.synthetic_data import two_taste_dataset

USER = "a03"  # likes A items; the events below teach the next model that a-users buy B items too
NEWCOMER = "new-shopper-1"  # not in the imported data: welcome, kept, learnt at the next training


def served(api_url: str, user: str = USER) -> dict[str, object]:
    body: dict[str, object] = httpx.post(f"{api_url}/recommendations", params={"user_id": user, "n": 10},
                                         timeout=10).json()
    assert not body["fallback"], body
    return body


def item_ids(body: dict[str, object]) -> list[str]:
    items = body["items"]
    assert isinstance(items, list)
    return [item["item_id"] for item in items]


def test_events_become_a_candidate_that_an_experiment_tests_and_a_promotion_serves(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, recops: Recops
) -> None:
    data_dir = tmp_path / "data"
    recops.env(RECOPS_DATA_DIR=str(data_dir), REDIS_URL=redis_url, RECOPS_DATASET=NAME)
    world = two_taste_dataset()
    interactions, items = write_import_files(world, tmp_path / "files")
    a_users = sorted(u for u in world.events["user_id"].unique() if u.startswith("a"))
    b_items = sorted(i for i in world.items["item_id"] if i.startswith("B"))

    # import, and the first model version goes to production
    code, out, err = recops(["import", "--name", NAME, "--interactions", str(interactions), "--items", str(items)])
    assert code == 0, err
    code, out, err = recops(["train", "--dataset", NAME, "--model", "als", "--json"])
    assert code == 0, err
    production = json.loads(out)[0]
    assert production["stage"] == "production" and production["lineage"]["events"] == 0

    env = api_env(data_dir, redis_url, RECOPS_MODEL_POLL_SECONDS="0.2")
    with running_api(env, tmp_path / "api.log", args=["--dataset", NAME]) as api:
        # serve, then users act: every a-user but USER buys B items; an unknown item is refused, a new user welcome
        events = [{"event_id": f"e-{u}-{i}", "user_id": u, "item_id": i, "type": "purchase", "value": 5.0}
                  for u in a_users if u != USER for i in b_items[:4]]
        events += [{"event_id": f"e-{NEWCOMER}-{i}", "user_id": NEWCOMER, "item_id": i, "type": "click"}
                   for i in b_items[:3]]
        answer = httpx.post(f"{api.url}/events/batch", json=events, timeout=30)
        assert answer.status_code == 200 and all(r["accepted"] for r in answer.json()), answer.text
        refused = httpx.post(f"{api.url}/events", json={"user_id": USER, "item_id": "no-such-item", "type": "click"},
                             timeout=10)
        assert refused.status_code == 422 and "no-such-item" in refused.text
        newcomer = served(api.url, NEWCOMER)
        assert newcomer["items"], newcomer
        before = item_ids(served(api.url))

        # the consumer moves the tracked events into the dataset's event log
        code, out, err = recops(["consume", "--dataset", NAME, "--once", "--json"])
        assert code == 0, err
        assert EventLog.for_dataset(Settings(data_dir=data_dir), NAME).count() == len(events)

        # retraining learns from them: a candidate whose lineage counts the events and knows the newcomer
        code, out, err = recops(["train", "--dataset", NAME, "--model", "als", "--json"])
        assert code == 0, err
        candidate = json.loads(out)[0]
        assert candidate["stage"] == "candidate" and candidate["lineage"]["events"] == len(events)
        code, out, _ = recops(["models", "list", "--dataset", NAME, "--json"])
        rows = {r["version"]: r for r in json.loads(out)}
        assert rows[candidate["version"]]["events"] == len(events) and rows[candidate["version"]]["number"] == 2
        assert item_ids(served(api.url)) == before  # a candidate serves nobody yet

        # A/B test the candidate against production; USER is forced into the treatment arm
        spec = {"key": "als-v2", "name": "ALS v2 (trained on events) vs production",
                "variants": [{"name": "control", "model": "als@production"},
                             {"name": "treatment", "model": "als@candidate"}],
                "forced": {USER: "treatment"}}
        bad = dict(spec, key="als-v99", variants=[spec["variants"][0], {"name": "treatment", "model": "als@99"}])
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        code, _, err = recops(["experiments", "create", "--file", str(tmp_path / "bad.json")])
        assert code == 2 and "als@99" in err  # refused when saved, not when served
        (tmp_path / "exp.json").write_text(json.dumps(spec))
        code, _, err = recops(["experiments", "create", "--file", str(tmp_path / "exp.json")])
        assert code == 0, err
        code, _, err = recops(["experiments", "start", "als-v2"])
        assert code == 0, err
        in_test = poll(lambda: (body := served(api.url))["variant"] == "treatment" and body, 15, every=0.2)
        assert in_test, "the running experiment never reached the API"
        treatment_list = item_ids(in_test)
        assert treatment_list != before  # the candidate learnt from the events
        for user in world.events["user_id"].unique():  # traffic: exposures of both arms (forced users don't count)
            served(api.url, user)
        code, out, err = recops(["experiments", "readout", "als-v2", "--json"])
        assert code == 0, err
        arms = {arm["variant"]: arm for arm in json.loads(out)["served"]}
        for arm, version in (("treatment", candidate["version"]), ("control", production["version"])):
            assert arms[arm]["version"] == version
            assert list(arms[arm]["exposures_by_version"]) == [version], arms  # the readout names what was served

        # the candidate ships: stop the test, promote it, and production now serves what the treatment served
        code, _, err = recops(["experiments", "stop", "als-v2"])
        assert code == 0, err
        code, out, err = recops(["models", "promote", "als", candidate["version"], "--dataset", NAME])
        assert code == 0, err
        after = poll(lambda: (body := served(api.url))["variant"] is None and item_ids(body) == treatment_list
                     and body, 15, every=0.2)
        assert after, "the promotion never reached the running API"
        entry = AuditLog(redis_client, Keys()).recent(1)[0]
        assert (entry.action, entry.target) == ("promote_model", f"als:{NAME}")
