"""The demo users' dimensions: deterministic, from their own stream, tied to the truth where it says so."""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.data.demo import DemoWorld
from engine.data.demo.attributes import COUNTRIES, DEVICES, DIMENSIONS


def test_attributes_are_deterministic_and_follow_the_truth() -> None:
    a = DemoWorld.generate(seed=3, n_users=600, n_items=120)
    b = DemoWorld.generate(seed=3, n_users=600, n_items=120)
    users = a.user_attributes()
    pd.testing.assert_frame_equal(users, b.user_attributes())
    assert not users.equals(DemoWorld.generate(seed=4, n_users=600, n_items=120).user_attributes())
    assert list(users.columns) == ["user_id", *DIMENSIONS] and users["user_id"].tolist() == list(a.user_ids)
    assert set(users["device"]) <= set(DEVICES) and set(users["country"]) <= set(COUNTRIES)
    # segment: price-sensitivity terciles (the truth's cart law reads it)
    ps = a.truth.price_sensitivity
    by_segment = {s: ps[(users["segment"] == s).to_numpy()] for s in ("premium", "regular", "bargain")}
    assert by_segment["premium"].max() <= by_segment["regular"].min() <= by_segment["regular"].max() \
        <= by_segment["bargain"].min()
    assert all(abs(len(v) - 200) <= 1 for v in by_segment.values())
    # tenure: new exactly when the user has no event in the history
    seen = set(a.events["user_id"])
    assert ((users["tenure"] == "returning") == users["user_id"].isin(seen)).all()
    # the dataset carries them, and its events are the world's as before
    assert a.dataset().users is not None and a.dataset().events is a.events
    assert np.array_equal(a.dataset().with_events(a.events.head(5)).users["user_id"], users["user_id"])
