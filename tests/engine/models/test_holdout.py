"""The time holdout on literal events whose split can be worked out by hand."""

from __future__ import annotations

import pytest

from engine.data.schema import Dataset
from engine.models.holdout import per_user_holdout, time_holdout, time_split
from tests.support.synthetic_data import DAY, T0, make_dataset, two_taste_dataset

ITEMS = ["i1", "i2", "i3", "i4", "i5"]


def literal_dataset() -> Dataset:
    # newest event at T0 + 10 days; a 3-day holdout cuts at T0 + 7 days
    return make_dataset(
        [
            ("u1", "i1", "view", T0, 1.0),
            ("u1", "i2", "click", T0 + 1 * DAY, 1.0),
            ("u1", "i3", "view", T0 + 8 * DAY, 1.0),  # new item after the cut: relevant
            ("u1", "i3", "purchase", T0 + 9 * DAY, 5.0),  # same pair again: still one relevant item
            ("u1", "i1", "view", T0 + 9 * DAY, 1.0),  # had it in training: never recommended, not counted
            ("u2", "i2", "view", T0 + 2 * DAY, 1.0),
            ("u2", "i4", "impression", T0 + 8 * DAY, 1.0),  # an impression says nothing
            ("u3", "i5", "view", T0 + 10 * DAY, 1.0),  # unknown before the cut: cannot be scored
            ("u4", "i1", "view", T0 + 3 * DAY, 1.0),
            ("u4", "i4", "view", T0 + 7 * DAY, 1.0),  # exactly at the cut: training
        ],
        ITEMS,
    )


def test_time_split_cuts_at_the_newest_event_minus_the_days() -> None:
    train, test, cutoff = time_split(literal_dataset().events, days=3)
    assert cutoff == T0 + 7 * DAY
    assert (train["timestamp"] <= cutoff).all() and len(train) == 5
    assert sorted(zip(test["user_id"], test["item_id"], strict=True)) == [("u1", "i1"), ("u1", "i3"), ("u3", "i5")]
    assert test.set_index("item_id").loc["i3", "type"] == "purchase"  # the latest event of the pair
    with pytest.raises(ValueError, match="positive"):
        time_split(literal_dataset().events, days=0)


def test_time_holdout_scores_known_users_on_new_items() -> None:
    holdout = time_holdout(literal_dataset(), days=3)
    assert holdout.unavailable is None and holdout.split is not None
    assert holdout.split.test_users == ["u1"] and holdout.split.relevant == [{"i3"}]
    assert holdout.definition == {"days": 3, "cutoff": T0 + 7 * DAY}


def test_unavailable_holdouts_say_why() -> None:
    ds = literal_dataset()
    assert time_holdout(ds, days=30).unavailable == "every interaction is in the last 30 days: none to train on"
    again = make_dataset([("u1", "i1", "view", T0, 1.0), ("u1", "i1", "click", T0 + 5 * DAY, 1.0)], ITEMS)
    assert "no user known in training" in str(time_holdout(again, days=1).unavailable)
    one_each = make_dataset([("u1", "i1", "view", T0, 1.0), ("u2", "i2", "view", T0, 1.0)], ITEMS)
    assert per_user_holdout(one_each).split is None and "too few" in str(per_user_holdout(one_each).unavailable)


def test_per_user_holdout_is_the_stratified_split() -> None:
    holdout = per_user_holdout(two_taste_dataset())
    assert holdout.split is not None and holdout.definition == {"seed": 42, "ratio": 0.75}
    # six items per user: round(0.75 · 6) = 4 in training (5 for the users with a stray view), the rest tested
    assert all(len(r) in (1, 2) for r in holdout.split.relevant) and len(holdout.split.test_users) == 60
