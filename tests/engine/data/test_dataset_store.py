"""The dataset store: versions, the ``Dataset`` a stored version loads into, the demo world, ``recops datasets``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config import Settings
from engine.data.dataset_import import import_dataset
from engine.data.dataset_store import DatasetNotFoundError, DatasetStore, open_dataset
from engine.data.demo import DemoWorld
from engine.data.schema import EVENT_WEIGHTS, DatasetError
from engine.data.split import interaction_events
from tests.engine.data.fixture_files import INTERACTION_HEADER, CliRunner, interaction_rows, write_csv

HEADER = ["user_id", "item_id", "timestamp", "event", "rating", "weight"]
ROWS = [
    ["u1", "i1", 1_700_000_300, "view", "", ""],
    ["u1", "i2", 1_700_000_100, "Add-To-Cart", "", ""],
    ["u2", "i1", 1_700_000_200, "rating", 4, ""],
    ["u2", "i3", 1_700_000_400, "wishlist", "", ""],  # a label the engine does not know
    ["u3", "i2", 1_700_000_000, "purchase", "", 7.5],
    ["u3", "i1", 1_700_000_500, "", 2, ""],  # no event but a rating: a rating event
]


@pytest.fixture
def shop(tmp_path: Path, store: DatasetStore) -> DatasetStore:
    items = write_csv(tmp_path / "items.csv", ["item_id", "title", "category", "price"],
                      [["i1", "Kettle", "Kitchen", 20], ["i2", "", "", 5.5], ["i3", "Tent", "Outdoor", 99],
                       ["i4", "Lamp", "Home", 30]])  # fmt: skip
    import_dataset(store, "shop", write_csv(tmp_path / "events.csv", HEADER, ROWS), items)
    return store


def test_load_round_trip_into_dataset(shop: DatasetStore) -> None:
    stored = shop.load("shop")
    assert (stored.name, stored.version, stored.path) == ("shop", 1, shop.version_dir("shop", 1))
    assert stored.manifest["rows"] == {"interactions": 6, "items": 4}
    events, items = stored.dataset.events, stored.dataset.items
    assert stored.dataset.name == "shop" and stored.dataset.n_users == 3 and stored.dataset.n_items == 4
    # ordered by time; unknown labels served as views, their label and weight kept
    assert events["timestamp"].tolist() == [1_700_000_000 + 100 * k for k in range(6)]
    assert events["type"].tolist() == ["purchase", "add_to_cart", "rating", "view", "view", "rating"]
    assert events["event"].tolist() == ["purchase", "add_to_cart", "rating", "view", "wishlist", "rating"]
    assert events["value"].tolist() == [1.0, 1.0, 4.0, 1.0, 1.0, 2.0]
    rated = EVENT_WEIGHTS["rating"]  # a rating is kept as the rating, not as the weight
    assert events["weight"].tolist() == [7.5, EVENT_WEIGHTS["add_to_cart"], rated, 1.0, 1.0, rated]
    assert events["user_id"].tolist() == ["u3", "u1", "u2", "u1", "u2", "u3"]
    assert items["item_id"].tolist() == ["i1", "i2", "i3", "i4"]
    assert items["title"].tolist() == ["Kettle", "i2", "Tent", "Lamp"]
    assert items["category"].tolist() == ["Kitchen", "unknown", "Outdoor", "Home"]
    assert items["popularity"].tolist() == pytest.approx([3 / 6, 2 / 6, 1 / 6, 0.0])
    assert items["avg_rating"].iloc[0] == pytest.approx(3.0) and np.isnan(items["avg_rating"].iloc[1])
    assert items["price"].tolist() == [20.0, 5.5, 99.0, 30.0]
    # what models build on works on it
    matrix = stored.dataset.interactions()
    assert matrix.matrix.shape == (3, 4)
    u1 = matrix.user_index["u1"]
    assert matrix.matrix[u1, matrix.item_index["i2"]] == EVENT_WEIGHTS["add_to_cart"]
    assert len(interaction_events(events)) == 6


def test_versions_names_and_not_found(tmp_path: Path, shop: DatasetStore) -> None:
    import_dataset(shop, "shop", write_csv(tmp_path / "more.csv", INTERACTION_HEADER, interaction_rows()))
    import_dataset(shop, "other", write_csv(tmp_path / "o.csv", INTERACTION_HEADER, interaction_rows(n_users=3)))
    assert shop.names() == ["other", "shop"] and shop.versions("shop") == [1, 2]
    assert shop.load("shop").version == 2 and shop.load("shop", 1).manifest["rows"]["interactions"] == 6
    with pytest.raises(DatasetNotFoundError, match=r"no dataset named 'nope' \(datasets: other, shop\)"):
        shop.load("nope")
    with pytest.raises(DatasetNotFoundError, match=r"dataset 'shop' has no version 7 \(versions: 1, 2\)"):
        shop.load("shop", 7)
    assert issubclass(DatasetNotFoundError, ValueError)
    with pytest.raises(DatasetError, match="invalid dataset name"):
        shop.load("../shop")


def test_current_pointer(tmp_path: Path, shop: DatasetStore) -> None:
    import_dataset(shop, "shop", write_csv(tmp_path / "more.csv", INTERACTION_HEADER, interaction_rows()))
    pointer = shop.root / "shop" / "current"
    pointer.write_text("1\n")  # pointed back: load() follows the pointer
    assert shop.current_version("shop") == 1 and shop.load("shop").version == 1
    pointer.write_text("garbage")  # unreadable: the highest version
    assert shop.current_version("shop") == 2
    pointer.unlink()
    assert shop.current_version("shop") == 2


def test_incomplete_version_directories_are_ignored(shop: DatasetStore) -> None:
    (shop.root / "shop" / "v5").mkdir()  # no manifest: not a version
    (shop.root / "ghost" / "v1").mkdir(parents=True)
    assert shop.versions("shop") == [1] and shop.names() == ["shop"]
    assert DatasetStore(shop.root / "absent").names() == []


def test_open_dataset_demo_and_imported(tmp_path: Path, shop: DatasetStore) -> None:
    settings = Settings(data_dir=shop.root.parent, demo_users=60, demo_items=40, demo_seed=3)
    demo = open_dataset(settings, "demo")
    world = DemoWorld.load_or_generate(settings.data_dir / "world", seed=3, n_users=60, n_items=40)
    assert (demo.name, demo.version, demo.path) == ("demo", 1, None)
    pd.testing.assert_frame_equal(demo.dataset.events, world.events)
    events = world.events
    assert demo.manifest["rows"] == {"interactions": len(events), "items": 40}
    assert demo.manifest["users"] == events["user_id"].nunique()
    assert demo.manifest["items_with_interactions"] == events["item_id"].nunique()
    assert demo.manifest["events"] == events["type"].value_counts().to_dict()
    assert demo.manifest["time_range"]["min"] == int(np.floor(events["timestamp"].min()))
    assert demo.manifest["source"]["params"]["seed"] == 3
    with pytest.raises(DatasetNotFoundError):
        open_dataset(settings, "demo", 2)
    assert open_dataset(settings, "shop").manifest["rows"]["interactions"] == 6
    with pytest.raises(DatasetNotFoundError):
        open_dataset(settings, "absent")


def test_datasets_list_and_show(tmp_path: Path, cli: CliRunner, data_dir: Path) -> None:
    code, out, _ = cli(["datasets", "list"])
    assert code == 0 and "no datasets imported yet" in out
    path = write_csv(tmp_path / "e.csv", INTERACTION_HEADER, interaction_rows())
    assert cli(["import", "--name", "shop", "--interactions", str(path)])[0] == 0
    assert cli(["import", "--name", "shop", "--interactions", str(path)])[0] == 0
    code, out, _ = cli(["datasets", "list", "--json"])
    listed = json.loads(out)
    assert [(r["name"], r["current_version"], r["versions"], r["interactions"], r["users"]) for r in listed] == [
        ("shop", 2, [1, 2], 100, 20)
    ]
    code, out, _ = cli(["datasets", "list"])
    assert code == 0 and "shop" in out and "v2" in out
    code, out, _ = cli(["datasets", "show", "shop", "--version", "1", "--json"])
    manifest = json.loads(out)
    assert manifest["version"] == 1 and manifest["source"]["interactions"]["file"] == "e.csv"
    code, out, _ = cli(["datasets", "show", "shop"])
    assert code == 0 and out.startswith("shop v2\n") and "users" in out and "sha256" in out
    code, out, err = cli(["datasets", "show", "nope"])
    assert code == 2 and err.count("\n") == 1 and "no dataset named 'nope'" in err
    code, out, err = cli(["datasets", "show", "shop", "--version", "9"])
    assert code == 2 and "has no version 9" in err
