"""Row rules of an import, checked against Python's own parsers and pandas on generated values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from engine.data.interaction_rows import (
    BAD_RATING,
    BAD_TIMESTAMP,
    BAD_WEIGHT,
    EMPTY_ITEM,
    EMPTY_USER,
    MISSING_TIMESTAMP,
    RATING_WITHOUT_VALUE,
    TIMESTAMP_RANGE,
    UNKNOWN_ITEM,
    check_interactions,
    check_items,
    check_users,
    normalise_events,
    parse_timestamps,
)
from engine.data.interaction_stats import InteractionStats
from engine.data.schema import EVENT_WEIGHTS, DatasetError


def _random_times(rng: np.random.Generator, n: int) -> list[datetime]:
    seconds = rng.integers(0, 4_102_444_800, n)  # 1970 .. 2100
    offsets = rng.integers(-12 * 4, 14 * 4 + 1, n) * 15  # minutes, quarter hours like real zones
    return [
        datetime.fromtimestamp(int(s), tz=timezone(timedelta(minutes=int(m))))
        for s, m in zip(seconds, offsets, strict=True)
    ]


@pytest.mark.parametrize("form", ["offset", "zulu", "naive", "space", "mixed"])
def test_iso_timestamps_agree_with_python(form: str) -> None:
    rng = np.random.default_rng(7)
    times = _random_times(rng, 500)
    texts = {
        "offset": [t.isoformat() for t in times],
        "zulu": [t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for t in times],
        "naive": [t.astimezone(timezone.utc).replace(tzinfo=None).isoformat() for t in times],
        "space": [t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") for t in times],
    }
    texts["mixed"] = [texts[("offset", "zulu", "naive", "space")[k % 4]][k] for k in range(len(times))]
    seconds, unparsable, out_of_range = parse_timestamps(pa.array(texts[form]))
    assert seconds.to_pylist() == [int(t.timestamp()) for t in times]
    assert not any(unparsable.to_pylist()) and not any(out_of_range.to_pylist())


def test_unix_timestamps_units_and_bad_values() -> None:
    values = pa.array(["1700000000", " 1700000000.9 ", "", None, "soon", "-1", "1e11", "nan", "2024-02-30"])
    seconds, unparsable, out_of_range = parse_timestamps(values)
    assert seconds.to_pylist() == [1_700_000_000, 1_700_000_000, None, None, None, None, None, None, None]
    assert unparsable.to_pylist() == [False, False, False, False, True, False, False, True, True]
    assert out_of_range.to_pylist() == [False, False, False, False, False, True, True, False, False]
    millis = parse_timestamps(pa.array([1_700_000_000_999, 5]), unit="ms")[0]
    assert millis.to_pylist() == [1_700_000_000, 0]
    micros = parse_timestamps(pa.array(["1700000000999999"]), unit="us")[0]
    assert micros.to_pylist() == [1_700_000_000]


def test_event_labels() -> None:
    labels = pa.array(["View", " add to cart ", "Add-To-Cart", "PURCHASE", "wish  list", None, ""])
    assert normalise_events(labels).to_pylist() == [
        "view", "add_to_cart", "add_to_cart", "purchase", "wish_list", None, None,
    ]  # fmt: skip


def test_each_reason_and_the_weight_rule() -> None:
    batch = pa.RecordBatch.from_pydict({
        "user_id": ["a", "", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"],
        "item_id": ["x", "x", " ", "x", "x", "x", "x", "x", "zz", "x", "x", "x"],
        "timestamp": ["1", "1", "1", None, "later", "-5", "1", "1", "1", "1", "1", "1"],
        "event": ["click", "view", "view", "view", "view", "view", "view", "rating", "view", "view", None, "rating"],
        "rating": [None, None, None, None, None, None, "five", None, None, None, "3", "4"],
        "weight": [None, None, None, None, None, None, None, None, None, "-1", None, "0.25"],
    })  # fmt: skip
    checked = check_interactions(batch, known_items=pa.array(["x"]))
    assert checked.rejected.tolist() == list(range(1, 10))
    assert checked.reasons.to_pylist() == [
        EMPTY_USER, EMPTY_ITEM, MISSING_TIMESTAMP, BAD_TIMESTAMP, TIMESTAMP_RANGE, BAD_RATING,
        RATING_WITHOUT_VALUE, UNKNOWN_ITEM, BAD_WEIGHT,
    ]  # fmt: skip
    kept = checked.kept.to_pylist()
    assert [r["user_id"] for r in kept] == ["a", "j", "k"]
    assert [r["event"] for r in kept] == ["click", "rating", "rating"]
    assert [r["weight"] for r in kept] == [EVENT_WEIGHTS["click"], EVENT_WEIGHTS["rating"], 0.25]  # weight > event


def test_first_reason_wins() -> None:
    batch = pa.RecordBatch.from_pydict({"user_id": [""], "item_id": [""], "timestamp": ["never"]})
    assert check_interactions(batch).reasons.to_pylist() == [EMPTY_USER]


def test_items_defaults_duplicates_and_attribute_types() -> None:
    table = pa.table({
        "item_id": ["a", " b ", "a", None, "c"],
        "title": ["A", None, "A2", "x", ""],
        "price": ["1", "2.5", "3", "4", ""],
        "stock": ["1", "2", "3", "4", "5"],
        "popularity": ["hi", "lo", "hi", "lo", "hi"],
    })  # fmt: skip
    checked = check_items(table)
    assert checked.rejected.tolist() == [2, 3] and checked.reasons.to_pylist() == ["duplicate item_id", EMPTY_ITEM]
    out = checked.items
    assert out.column("item_id").to_pylist() == ["a", "b", "c"]
    assert out.column("title").to_pylist() == ["A", "b", "c"]
    assert out.column("category").to_pylist() == ["unknown"] * 3
    assert out.column("price").type == pa.float64() and out.column("price").to_pylist() == [1.0, 2.5, None]
    assert out.column("stock").type == pa.int64()
    assert "source_popularity" in out.schema.names and "popularity" not in out.schema.names


def test_users_keep_the_first_row_of_an_id_and_their_attributes_as_text() -> None:
    table = pa.table({
        "user_id": [" u1", "u2", "u1", "", "u3"],
        "zip": ["05201", " 94043 ", "1", "2", ""],
        "age": pa.array([24, None, 30, 40, 50], pa.int64()),
        "score": [0.5, 1.0, 2.0, 3.0, 4.0],
    })  # fmt: skip
    checked = check_users(table)
    assert checked.rejected.tolist() == [2, 3] and checked.reasons.to_pylist() == ["duplicate user_id", EMPTY_USER]
    assert checked.users.to_pydict() == {"user_id": ["u1", "u2", "u3"], "zip": ["05201", "94043", None],
                                         "age": ["24", None, "50"], "score": ["0.5", "1", "4"]}
    with pytest.raises(DatasetError, match="user attribute 'tags' holds list<item: string> values"):
        check_users(pa.table({"user_id": ["u1"], "tags": [["a", "b"]]}))


@pytest.mark.parametrize("compact_after", [1, 50, 10_000_000])
def test_stats_agree_with_pandas(compact_after: int) -> None:
    rng = np.random.default_rng(1)
    n = 5_000
    frame = pd.DataFrame({
        "user_id": np.char.add("u", rng.integers(0, 700, n).astype(str)),
        "item_id": np.char.add("i", rng.zipf(1.5, n).clip(max=900).astype(str)),
        "event": rng.choice(["view", "click", "purchase"], n),
        "timestamp": rng.integers(1_600_000_000, 1_700_000_000, n),
    })  # fmt: skip
    stats = InteractionStats(compact_after=compact_after)
    for start in range(0, n, 333):
        part = pa.Table.from_pandas(frame.iloc[start : start + 333], preserve_index=False)
        stats.add_table(part)
    summary = stats.summary()
    assert stats.rows == n
    assert summary["users"] == frame["user_id"].nunique()
    assert summary["items_with_interactions"] == frame["item_id"].nunique()
    assert summary["events"] == frame["event"].value_counts().to_dict()
    assert summary["time_range"]["min"] == frame["timestamp"].min()
    assert summary["time_range"]["max"] == frame["timestamp"].max()
    assert stats.item_ids().to_pylist() == list(pd.unique(frame["item_id"]))  # first-seen order
