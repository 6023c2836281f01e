"""Breakdowns on an imported dataset, on a real Redis: `recops import --users` → the engine serves it → an
experiment's exposures record the users' attributes → `recops experiments readout --by` gives the cells."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis

from engine.config import Settings, get_settings
from engine.console import experiments as console_experiments
from engine.events.tracker import Event
from engine.experiments.breakdowns import MAX_CELLS
from engine.experiments.dimensions import UNKNOWN
from engine.runtime import Engine, build_engine
from tests.support.cli import Recops
from tests.support.console import two_arm_spec
from tests.support.imported_data import NAME, write_import_files
from tests.support.synthetic_data import two_taste_dataset

UNLISTED = {"b25", "b26", "b27", "b28", "b29"}  # users of the interactions the users file leaves out
NO_GENDER = "a07"  # listed, with an empty gender


def gender(user: str) -> str:
    return "F" if int(user[1:]) % 2 == 0 else "M"


def users_frame(user_ids: list[str]) -> pd.DataFrame:
    listed = [u for u in user_ids if u not in UNLISTED]
    return pd.DataFrame({"user_id": listed,
                         "gender": ["" if u == NO_GENDER else gender(u) for u in listed],
                         "zip": [f"0{1000 + k}" for k in range(len(listed))]})  # one value per user: id-like


@pytest.fixture(params=[True], ids=["with-users"])
def served(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_client: redis.Redis,
           recops: Recops) -> Iterator[tuple[Engine, list[str]]]:
    """The two-taste shop imported through the CLI (with a users file unless the param says not), and an
    engine serving it."""
    data_dir = tmp_path / "data"
    recops.env(RECOPS_DATA_DIR=str(data_dir), REDIS_URL=redis_url, RECOPS_DATASET=NAME, OPENBLAS_NUM_THREADS="1")
    dataset = two_taste_dataset()
    interactions, items = write_import_files(dataset, tmp_path / "files")
    user_ids = sorted(dataset.events["user_id"].unique())
    users = tmp_path / "files" / "users.csv"
    users_frame(user_ids).to_csv(users, index=False)
    extra = ["--users", str(users)] if request.param else []
    code, out, err = recops(["import", "--name", NAME, "--interactions", str(interactions), "--items", str(items),
                             *extra])
    assert code == 0 and ("gender (2 values)" in out) == request.param, err
    engine = build_engine(Settings(data_dir=data_dir, redis_url=redis_url, dataset=NAME,
                                   refresh_after_invalidation=False), start_listener=False)
    try:
        yield engine, user_ids
    finally:
        engine.close()
        get_settings.cache_clear()


def expose_everyone(engine: Engine, user_ids: list[str]) -> dict[str, str]:
    """Each user served their arm's list and recorded as exposed; every user clicks one item of it, the
    women the users file lists in the treatment three.  Returns each user's arm."""
    arms, events = {}, []
    for user in user_ids:
        a = engine.experiments.assign(user)
        assert a is not None
        result = engine.service.recommend(user, 5, a.model, version=a.version, serving=a.serving)
        assert engine.experiments.record_exposure(a)
        arms[user] = a.variant
        clicks = 3 if a.variant == "als" and user not in UNLISTED and user != NO_GENDER and gender(user) == "F" else 1
        events += [Event(user_id=user, item_id=i["item_id"], type="click") for i in result.items[:clicks]]
    engine.events.track_many(events)
    return arms


def test_readout_by_a_user_attribute_of_an_imported_dataset(served: tuple[Engine, list[str]],
                                                            recops: Recops) -> None:
    engine, user_ids = served
    assert engine.dataset.users is not None and console_experiments.dimensions(engine) == ["gender", "zip"]
    engine.experiments.create(two_arm_spec(key="shop-exp", goal_metric="clicks"))
    engine.experiments.start("shop-exp")
    arms = expose_everyone(engine, user_ids)

    # the cells' users, from the users file: the unlisted and the one without a gender are "unknown"
    def cell(user: str) -> str:
        return UNKNOWN if user in UNLISTED or user == NO_GENDER else gender(user)

    expected = Counter((cell(u), arm) for u, arm in arms.items())
    code, out, err = recops(["experiments", "readout", "shop-exp", "--by", "gender", "--json"])
    assert code == 0, err
    (b,) = json.loads(out)["breakdowns"]
    assert b["dimension"] == "gender" and b["metric"] == "clicks" and b["error"] is None
    got = {(c["value"], arm): n for c in b["cells"] for arm, n in c["users"].items() if n}
    assert got == dict(expected) and {c["value"] for c in b["cells"]} == {"F", "M", UNKNOWN}
    means = {c["value"]: (c["results"][0]["control_mean"], c["results"][0]["mean"]) for c in b["cells"]}
    assert (means["F"], means["M"]) == ((1.0, 3.0), (1.0, 1.0))
    assert all(c["results"][0]["too_small"] for c in b["cells"])  # 60 users: no cell is large enough for a test

    # a column with a value per user is no breakdown: refused with the readout's message
    code, out, err = recops(["experiments", "readout", "shop-exp", "--by", "zip"])
    assert code == 0, err
    assert f"has {len(user_ids) - len(UNLISTED) + 1:,} values; a breakdown shows at most {MAX_CELLS} cells" in out

    # the console offers the served dataset's attributes, and its breakdown is the same
    in_console = console_experiments.breakdown(engine, "shop-exp", "gender")["cells"]
    assert [(c["value"], c["users"]) for c in in_console] == [(c["value"], c["users"]) for c in b["cells"]]


@pytest.mark.parametrize("served", [False], ids=["without-users"], indirect=True)
def test_a_dataset_without_users_serves_and_reads_out_without_breakdowns(served: tuple[Engine, list[str]],
                                                                         recops: Recops) -> None:
    engine, user_ids = served
    assert engine.dataset.users is None and console_experiments.dimensions(engine) == []
    engine.experiments.create(two_arm_spec(key="shop-exp", goal_metric="clicks"))
    engine.experiments.start("shop-exp")
    arms = expose_everyone(engine, user_ids)
    code, out, err = recops(["experiments", "readout", "shop-exp", "--by", "gender", "--json"])
    assert code == 0, err
    data = json.loads(out)
    assert {a["name"]: a["users"] for a in data["arms"]} == dict(Counter(arms.values()))
    assert data["breakdowns"][0]["error"] == "no exposed user has the dimension 'gender'; recorded dimensions: none"
