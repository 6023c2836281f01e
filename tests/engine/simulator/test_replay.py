"""`recops replay`: the plan (pure), and replays against a real API process serving an imported dataset."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis

from engine.data.dataset_import import import_dataset
from engine.data.dataset_store import DatasetStore
from engine.simulator.replay import (
    NOT_IN_CATALOGUE,
    REFUSED_BY_VALIDATION,
    ReplayConfig,
    ReplayError,
    parse_time,
    plan_replay,
)
from engine.storage.embedded_redis import EmbeddedRedis
from engine.storage.keys import Keys
from tests.engine.data.fixture_files import write_csv
from tests.support.api import ApiProcess, api_env, flush_for_a_new_api, running_api
from tests.support.cli import Recops
from tests.support.imported_data import NAME, import_small_dataset, write_import_files
from tests.support.synthetic_data import DAY, T0, two_taste_dataset

KEYS = Keys(f"recops@{NAME}")  # the served dataset's keys (engine/runtime.py dataset_keys)

# ------------------------------------------------------------------------------ the plan


def test_times_parse_as_unix_seconds_or_iso_8601_in_utc() -> None:
    march = 888_710_400.0  # 1998-03-01T00:00:00Z
    for text in ("888710400", " 888710400.0 ", "1998-03-01", "1998-03-01T00:00:00Z", "1998-03-01T01:00:00+01:00",
                 "1998-03-01 00:00:00"):
        assert parse_time(text) == march, text
    for bad in ("yesterday", "1998-13-01", "inf", ""):
        with pytest.raises(ReplayError):
            parse_time(bad)


def test_the_plan_keeps_the_window_in_time_order_and_skips_what_the_api_would_refuse() -> None:
    events = pd.DataFrame([
        ("u1", "i1", "view", 105.0, 1.0),
        ("u1", "i2", "rating", 101.0, 4.0),
        ("u2", "i1", "view", 99.0, 1.0),  # before the window
        ("u2", "gone", "click", 102.0, 1.0),  # not in the served catalogue
        ("u 3", "i1", "view", 103.0, 1.0),  # an id the API refuses
        ("u2", "i2", "rating", 104.0, 0.5),  # a rating outside 1-5
        ("u2", "i2", "purchase", 106.0, 20.0),
        ("u1", "i2", "view", 200.0, 1.0),  # at `until`: outside
    ], columns=["user_id", "item_id", "type", "timestamp", "value"])
    plan = plan_replay(events, {"i1", "i2"}, start=100, until=200, id_prefix="replay:shop:v1:")
    assert plan.times.tolist() == [101.0, 103.0, 104.0, 105.0, 106.0]
    assert plan.skipped == {NOT_IN_CATALOGUE: 1} and plan.in_window == 6 and not plan.truncated
    # bodies are built batch by batch; what the API's validation would refuse is left out and counted
    assert plan.batch(0, len(plan)) == ([
        {"event_id": "replay:shop:v1:1", "user_id": "u1", "item_id": "i2", "type": "rating", "value": 4.0},
        {"event_id": "replay:shop:v1:0", "user_id": "u1", "item_id": "i1", "type": "view"},
        {"event_id": "replay:shop:v1:6", "user_id": "u2", "item_id": "i2", "type": "purchase", "value": 20.0},
    ], 2)
    assert plan.batch(1, 3) == ([], 2)
    limited = plan_replay(events, {"i1", "i2"}, start=100, limit=2)
    assert [b["event_id"] for b in limited.batch(0, len(limited))[0]] == ["replay:1"] and limited.truncated
    assert plan_replay(events, {"i1"}, start=1000).in_window == 0


def test_speed_duration_and_list_length_are_checked() -> None:
    for bad in ({"speed": 0}, {"speed": float("inf")}, {"duration": -1}, {"n": 0}, {"n": 101}):
        with pytest.raises(ReplayError):
            ReplayConfig(api_url="http://x", **bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ against the API


@pytest.fixture(scope="module")
def shop_api(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """An API serving the imported two-taste shop (trained as it starts), on a flushed test Redis."""
    data_dir = tmp_path_factory.mktemp("replay") / "data"
    import_small_dataset(data_dir)
    flush_for_a_new_api(redis_server)
    env = api_env(data_dir, redis_server.url)
    with running_api(env, data_dir.parent / "api.log", args=["--dataset", NAME]) as api:
        yield api


@pytest.fixture
def replay(shop_api: ApiProcess, recops: Recops) -> Recops:
    recops.env(RECOPS_DATA_DIR=shop_api.env["RECOPS_DATA_DIR"], REDIS_URL=shop_api.env["REDIS_URL"])
    return recops


def summary_of(out: str) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(out)
    return parsed


def window(start_day: float) -> pd.DataFrame:
    events = two_taste_dataset().events
    return events[events["timestamp"] >= T0 + start_day * DAY]


def test_a_replay_sends_the_window_as_live_traffic_once(shop_api: ApiProcess, replay: Recops) -> None:
    sent = window(25)
    argv = ["replay", "--dataset", NAME, "--from", str(T0 + 25 * DAY), "--speed", "1e9", "--api", shop_api.url,
            "--json"]
    code, out, err = replay(argv)
    assert code == 0 and err == "", err
    summary = summary_of(out)
    users = sent["user_id"].nunique()
    assert (summary["dataset"], summary["version"], summary["stopped"]) == (NAME, 1, "done")
    assert summary["planned"] == summary["sent"] == summary["accepted"] == len(sent)
    assert (summary["duplicates"], summary["rejected"], summary["skipped"]) == (0, 0, {})
    assert summary["users"] == summary["lists_requested"] == summary["lists_served"] == users
    # what the API stored: each replayed user's live log holds their window's interactions (impressions excepted)
    client = redis.Redis.from_url(shop_api.env["REDIS_URL"], decode_responses=True)
    user = str(sent["user_id"].iloc[0])
    logged = client.lrange(KEYS.user_log(user), 0, -1)
    assert len(logged) == int(((sent["user_id"] == user) & (sent["type"] != "impression")).sum())
    assert int(client.hget(KEYS.event_counts, "view") or 0) >= int((sent["type"] == "view").sum())

    # the same replay again: every event is already there
    code, out, _ = replay(argv)
    again = summary_of(out)
    assert code == 0 and again["sent"] == len(sent) and again["duplicates"] == len(sent) and again["accepted"] == 0
    client.close()


def test_a_replay_keeps_the_logged_pace_and_stops_at_its_duration(shop_api: ApiProcess, replay: Recops) -> None:
    events = window(29)
    span = float(events["timestamp"].max() - events["timestamp"].min())
    # the last two days of data in about 1.5 s: the replay cannot be faster than the logged pace allows
    paced = ["replay", "--dataset", NAME, "--from", str(T0 + 29 * DAY), "--speed", str(span / 1.5),
             "--api", shop_api.url, "--json"]
    started = time.monotonic()
    code, out, _ = replay(paced)
    summary = summary_of(out)
    assert code == 0 and summary["stopped"] == "done" and summary["sent"] == len(events)
    assert time.monotonic() - started >= 1.4
    # the whole month at a day per second does not fit in one second: the replay ends by itself
    code, out, _ = replay(["replay", "--dataset", NAME, "--from", str(T0), "--speed", str(DAY), "--duration", "1",
                           "--api", shop_api.url, "--json"])
    bounded = summary_of(out)
    assert code == 0 and bounded["stopped"] == "duration"
    assert 0 < int(bounded["sent"]) < int(bounded["planned"])  # type: ignore[call-overload]


def test_events_the_api_would_refuse_are_skipped_as_they_come(
    shop_api: ApiProcess, replay: Recops, tmp_path: Path
) -> None:
    events = write_csv(tmp_path / "odd.csv", ["user_id", "item_id", "timestamp", "event", "rating"], [
        ["a00", "A01", int(T0), "rating", 4], ["a 01", "A02", int(T0) + 1, "view", None],
        ["a02", "A03", int(T0) + 2, "rating", 0.5], ["a03", "A04", int(T0) + 3, "click", None]])
    items = write_import_files(two_taste_dataset(), tmp_path)[1]
    store = DatasetStore(tmp_path / "data" / "datasets")
    import_dataset(store, NAME, events, items)
    replay.env(RECOPS_DATA_DIR=str(tmp_path / "data"))
    code, out, err = replay(["replay", "--dataset", NAME, "--from", "0", "--speed", "1e9", "--api", shop_api.url,
                             "--json"])
    summary = summary_of(out)
    assert code == 0, err
    # the refused two left out, the batch of the other two is taken (they may be "duplicate": this shop v1
    # shares its event ids with the API's own shop v1, replayed by the tests above)
    assert (summary["planned"], summary["sent"], summary["rejected"]) == (4, 2, 0)
    assert summary["accepted"] + summary["duplicates"] == 2  # type: ignore[operator]
    assert summary["skipped"] == {REFUSED_BY_VALIDATION: 2} and summary["users"] == 2


def test_events_outside_the_served_catalogue_are_skipped(
    shop_api: ApiProcess, replay: Recops, tmp_path: Path
) -> None:
    # version 2 adds an item the running API (serving version 1) does not have
    dataset = two_taste_dataset()
    interactions, items = write_import_files(dataset, tmp_path)
    with interactions.open("a") as f:
        f.write(f"a00,Z99,{int(T0 + 28 * DAY)},view\nb00,Z99,{int(T0 + 28 * DAY) + 1},click\n")
    with items.open("a") as f:
        f.write("Z99,New item,cat-Z,brand-0\n")
    import_dataset(DatasetStore(Path(shop_api.env["RECOPS_DATA_DIR"]) / "datasets"), NAME, interactions, items)
    code, out, err = replay(["replay", "--dataset", NAME, "--dataset-version", "2", "--from", str(T0 + 28 * DAY),
                             "--speed", "1e9", "--api", shop_api.url, "--json"])
    summary = summary_of(out)
    assert code == 0, err
    assert summary["version"] == 2 and summary["skipped"] == {NOT_IN_CATALOGUE: 2}
    assert summary["rejected"] == 0 and summary["sent"] == len(window(28))


def test_replays_the_api_cannot_take_are_refused_with_one_line(shop_api: ApiProcess, replay: Recops) -> None:
    for argv, message in [
        (["--dataset", "demo", "--from", "0"], "serves dataset 'shop', not 'demo'"),
        (["--dataset", NAME, "--from", "yesterday"], "neither Unix seconds nor an ISO 8601 time"),
        (["--dataset", NAME, "--from", "2030-01-01"], "has no interaction logged from 2030-01-01T00:00:00Z"),
        (["--dataset", NAME, "--from", "0", "--until", "0"], "must come after --from"),
        (["--dataset", NAME, "--from", "0", "--speed", "0"], "--speed must be a positive number"),
    ]:
        code, out, err = replay(["replay", *argv, "--api", shop_api.url])
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (argv, err)
        assert err.startswith("recops replay: ") and message in err, err
    code, _, err = replay(["replay", "--dataset", NAME, "--from", "0", "--api", "http://127.0.0.1:9"])
    assert code == 1 and "does not answer /health" in err and len(err.strip().splitlines()) == 1
