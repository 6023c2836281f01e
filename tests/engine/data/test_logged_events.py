"""Logged events merged into a dataset: weighted by type beside an imported ``weight`` column, unknown items
dropped and counted, new users learnt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.data.event_log import EventLog
from engine.data.logged_events import LoggedEvents, checked_events, read_logged_events, replay_id_prefix
from engine.data.schema import EVENT_COLUMNS, EVENT_WEIGHTS, interaction_weights
from tests.support.imported_data import import_small_dataset
from tests.support.synthetic_data import DAY, T0, make_dataset

LATER = T0 + 40 * DAY


def logged(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


def test_an_imported_dataset_keeps_its_weights_and_logged_rows_weigh_by_type(tmp_path: Path) -> None:
    dataset = import_small_dataset(tmp_path / "data").dataset
    assert "weight" in dataset.events.columns  # the imported layout: weight, event, rating
    before = interaction_weights(dataset.events)
    rows = [("a00", "A01", "purchase", LATER, 19.5), ("a00", "A02", "impression", LATER + 1, 1.0),
            ("zz-new", "B03", "rating", LATER + 2, 4.0), ("zz-new", "B04", "add_to_cart", LATER + 3, 1.0)]
    merged = checked_events(logged(rows), dataset).merged_into(dataset)

    assert len(merged.events) == len(dataset.events) + 4 and merged.items is dataset.items
    new = merged.events.iloc[len(dataset.events):]  # the newest rows, after every imported one
    assert new["weight"].tolist() == [EVENT_WEIGHTS[t] for _, _, t, _, _ in rows]
    assert new["event"].tolist() == [t for _, _, t, _, _ in rows]
    assert new["rating"].isna().tolist() == [True, True, False, True] and new["rating"].iloc[2] == 4.0
    # the imported rows weigh what they weighed: one weight column for both kinds of rows
    assert np.array_equal(interaction_weights(merged.events)[: len(dataset.events)], before)

    matrix = merged.interactions()
    assert "zz-new" in matrix.user_index and "zz-new" not in dataset.interactions().user_index
    assert matrix.matrix[matrix.user_index["zz-new"], matrix.item_index["B04"]] == EVENT_WEIGHTS["add_to_cart"]
    a00, a01 = matrix.user_index["a00"], matrix.item_index["A01"]
    old = dataset.interactions()
    assert matrix.matrix[a00, a01] == old.matrix[old.user_index["a00"], old.item_index["A01"]] + EVENT_WEIGHTS["purchase"]


def test_a_dataset_without_a_weight_column_weighs_everything_by_type() -> None:
    dataset = make_dataset([("u1", "i1", "view", T0, 1.0), ("u2", "i2", "click", T0, 1.0)], ["i1", "i2"])
    merged = checked_events(logged([("u3", "i1", "purchase", T0 + 5, 9.0)]), dataset).merged_into(dataset)
    assert list(merged.events.columns) == list(EVENT_COLUMNS)
    assert interaction_weights(merged.events).tolist() == [1.0, 2.0, 5.0]
    assert merged.events["user_id"].tolist() == ["u1", "u2", "u3"]


def test_events_of_items_outside_the_catalogue_are_dropped_and_counted() -> None:
    dataset = make_dataset([("u1", "i1", "view", T0, 1.0), ("u2", "i2", "click", T0, 1.0)], ["i1", "i2"])
    checked = checked_events(logged([("u1", "gone", "click", T0 + 3, 1.0), ("u3", "i2", "view", T0 + 2, 1.0),
                                     ("u3", "nope", "view", T0 + 1, 1.0)]), dataset, until=T0 + 10)
    assert (checked.count, checked.unknown_items, checked.users, checked.until) == (1, 2, 1, T0 + 10)
    assert (checked.first, checked.last) == (T0 + 2, T0 + 2)
    assert "gone" not in set(checked.merged_into(dataset).events["item_id"])


def test_no_logged_events_leave_the_dataset_as_it_is() -> None:
    dataset = make_dataset([("u1", "i1", "view", T0, 1.0), ("u2", "i2", "click", T0, 1.0)], ["i1", "i2"])
    none = LoggedEvents.none()
    assert (none.count, none.first, none.last, none.unknown_items) == (0, None, None, 0)
    assert none.merged_into(dataset) is dataset


def test_read_from_the_log_up_to_a_moment(tmp_path: Path) -> None:
    dataset = make_dataset([("u1", "i1", "view", T0, 1.0), ("u2", "i2", "click", T0, 1.0)], ["i1", "i2"])
    log = EventLog(tmp_path / "events")
    log.append([{"stream_id": f"{i}-0", "event_id": f"e{i}", "user_id": "u9", "item_id": "i1" if i % 2 else "x",
                 "type": "click", "timestamp": T0 + i * 60, "value": None} for i in range(10)], batch="b1")
    got = read_logged_events(log, dataset, until=T0 + 5 * 60)  # events 0..5; 0, 2, 4 of the unknown item x
    assert (got.count, got.unknown_items) == (3, 3)
    assert got.events["timestamp"].tolist() == [T0 + 60, T0 + 180, T0 + 300]
    assert got.events["value"].eq(1.0).all()


def test_replayed_rows_of_the_version_trained_on_are_left_out_and_counted(tmp_path: Path) -> None:
    """``recops replay`` sends a version's own rows as traffic: training on that version must not learn
    them twice; replays of another version or dataset, and live events, are learnt as any event."""
    dataset = make_dataset([("u1", "i1", "view", T0, 1.0), ("u2", "i2", "click", T0, 1.0)], ["i1", "i2"])
    log = EventLog(tmp_path / "shop")
    prefix = replay_id_prefix("shop", 1)
    rows = [(f"{prefix}0", "u1", "i1", "view"), (f"{prefix}1", "u2", "i2", "click"),
            (f"{prefix}2", "u2", "gone", "click"),  # replayed and outside the catalogue: counted once, replayed
            (f"{replay_id_prefix('shop', 10)}0", "u1", "i2", "click"),  # version 10: not this version's rows
            (f"{replay_id_prefix('other', 1)}0", "u2", "i1", "view"),  # another dataset's replay
            ("live-1", "u3", "i1", "purchase"), ("live-2", "u3", "nope", "view")]
    log.append([{"stream_id": f"1-{k}", "event_id": e, "user_id": u, "item_id": i, "type": t, "timestamp": LATER + k,
                 "value": 1.0}
                for k, (e, u, i, t) in enumerate(rows)], batch="b")

    checked = read_logged_events(log, dataset, until=LATER + 100, replayed_ids=prefix)
    assert (checked.count, checked.replayed, checked.unknown_items) == (3, 3, 1)
    assert checked.events[["user_id", "item_id"]].values.tolist() == [["u1", "i2"], ["u2", "i1"], ["u3", "i1"]]
    # without a prefix (a dataset never replayed) every event counts
    assert read_logged_events(log, dataset, until=LATER + 100).count == 5
    assert prefix == "replay:shop:v1:" and not replay_id_prefix("shop", 10).startswith(prefix)
