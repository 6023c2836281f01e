"""Events weigh what their dataset says: the ``weight`` column of an imported dataset, else the type's weight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.dataset_import import import_dataset
from engine.data.dataset_store import DatasetStore
from engine.data.schema import EVENT_WEIGHTS, InteractionMatrix, interaction_weights
from engine.data.split import interaction_events
from engine.storage.feature_store import FeatureSource
from tests.engine.data.fixture_files import write_csv
from tests.support.synthetic_data import T0, make_dataset


def cell(matrix: InteractionMatrix, user: str, item: str) -> float:
    return float(matrix.matrix[matrix.user_index[user], matrix.item_index[item]])


def test_without_a_weight_column_events_weigh_by_type() -> None:
    rows = [("u1", "i1", "view", T0, 1.0), ("u1", "i1", "purchase", T0 + 1, 19.0), ("u1", "i2", "impression", T0, 1.0),
            ("u2", "i2", "rating", T0, 2.0), ("u2", "i1", "add_to_cart", T0, 1.0)]
    dataset = make_dataset(rows, ["i1", "i2"])
    expected = [EVENT_WEIGHTS[t] for _, _, t, _, _ in rows]
    assert interaction_weights(dataset.events).tolist() == expected
    matrix = dataset.interactions()
    assert cell(matrix, "u1", "i1") == EVENT_WEIGHTS["view"] + EVENT_WEIGHTS["purchase"]  # 1 + 5
    assert cell(matrix, "u2", "i2") == EVENT_WEIGHTS["rating"]  # a rating's value is not its weight here
    assert matrix.matrix.nnz == 3  # the impression is no interaction
    assert len(interaction_events(dataset.events)) == 4


def test_a_weight_column_wins_over_the_type() -> None:
    rows = [("u1", "i1", "view", T0, 1.0), ("u1", "i1", "purchase", T0 + 1, 19.0), ("u1", "i2", "click", T0, 1.0),
            ("u2", "i2", "rating", T0, 2.0), ("u2", "i1", "view", T0, 1.0)]
    dataset = make_dataset(rows, ["i1", "i2"])
    dataset.events["weight"] = [0.5, 7.0, 0.0, 2.0, 3.25]
    matrix = dataset.interactions()
    assert cell(matrix, "u1", "i1") == 7.5 and cell(matrix, "u2", "i2") == 2.0 and cell(matrix, "u2", "i1") == 3.25
    # weight 0 says nothing about taste, whatever the type: neither in the matrix nor an interaction
    assert matrix.matrix[matrix.user_index["u1"], matrix.item_index["i2"]] == 0
    assert interaction_events(dataset.events)["weight"].tolist() == [0.5, 7.0, 2.0, 3.25]


def test_an_imported_file_trains_and_profiles_with_its_weights(tmp_path: Path) -> None:
    """weight, else the event's weight, as the import stores it (engine/data/interaction_rows.py); a rating is no weight."""
    interactions = write_csv(tmp_path / "events.csv", ["user_id", "item_id", "timestamp", "event", "rating", "weight"], [
        ["u1", "i1", 1_700_000_000, "view", None, 4],  # the weight column
        ["u1", "i2", 1_700_000_100, "rating", 5, None],  # no weight: a rating event's weight, not the rating
        ["u1", "i3", 1_700_000_200, "purchase", None, None],  # neither: the event's weight
        ["u2", "i1", 1_700_000_300, "liked", None, None],  # a label the engine does not know: 1
        ["u2", "i3", 1_700_000_400, "impression", None, None],  # nothing
    ])
    items = write_csv(tmp_path / "items.csv", ["item_id", "title", "category"],
                      [["i1", "One", "a"], ["i2", "Two", "b"], ["i3", "Three", "b"]])
    store = DatasetStore(tmp_path / "datasets")
    import_dataset(store, "weighted", interactions, items)
    dataset = store.load("weighted").dataset
    matrix = dataset.interactions()
    assert {(u, i): cell(matrix, u, i) for u, i in [("u1", "i1"), ("u1", "i2"), ("u1", "i3"), ("u2", "i1")]} == {
        ("u1", "i1"): 4.0, ("u1", "i2"): EVENT_WEIGHTS["rating"], ("u1", "i3"): EVENT_WEIGHTS["purchase"],
        ("u2", "i1"): 1.0}
    assert matrix.matrix.nnz == 4
    # category affinity in the feature store is a share of the same weights: u1 has a 4, b 1 + 5
    features = FeatureSource.from_dataset(dataset).merge("u1")
    assert features.category_affinity == {"b": round(6 / 10, 6), "a": round(4 / 10, 6)}


def test_a_missing_weight_reads_as_no_interaction() -> None:
    events = pd.DataFrame({"type": ["view", "view"], "weight": [np.nan, 2.0]})
    assert interaction_weights(events).tolist() == [0.0, 2.0]
