"""A tiny two-taste world for model and evaluation tests, small enough to reason about by hand.

Users ``a00..`` like items ``A00..`` and users ``b00..`` like items ``B00..``; each user touches a
seeded random subset of their own group's items (views, some clicks and purchases) and rarely one
item of the other group, so a collaborative model must learn the two blocks to score well.
Also the genre columns of hand-written MovieLens (ml-100k) files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.data.movielens import ML100K_GENRES
from engine.data.schema import Dataset

DAY = 86_400.0
T0 = 1_700_000_000.0


def two_taste_dataset(
    n_users_per_group: int = 30, n_items_per_group: int = 12, items_per_user: int = 6, seed: int = 0
) -> Dataset:
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, str, float, float]] = []
    for group, other in (("a", "B"), ("b", "A")):
        own = group.upper()
        for u in range(n_users_per_group):
            user = f"{group}{u:02d}"
            picks = rng.choice(n_items_per_group, size=items_per_user, replace=False)
            for j, item in enumerate(picks):
                t = T0 + DAY * float(rng.uniform(0, 30)) + j
                rows.append((user, f"{own}{item:02d}", "view", t, 1.0))
                if rng.random() < 0.5:
                    rows.append((user, f"{own}{item:02d}", "click", t + 10, 1.0))
                if rng.random() < 0.2:
                    rows.append((user, f"{own}{item:02d}", "purchase", t + 60, 20.0))
            if rng.random() < 0.1:
                stray = int(rng.integers(n_items_per_group))
                rows.append((user, f"{other}{stray:02d}", "view", T0 + DAY * 31, 1.0))
            rows.append((user, f"{own}00", "impression", T0, 1.0))  # impressions must not count
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "timestamp", "value"])
    item_ids = [f"{g}{i:02d}" for g in ("A", "B") for i in range(n_items_per_group)]
    counts = events[events["type"] != "impression"]["item_id"].value_counts()
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "title": [f"Item {i}" for i in item_ids],
            "category": [f"cat-{i[0]}" for i in item_ids],
            "popularity": [counts.get(i, 0) / counts.sum() for i in item_ids],
            "avg_rating": np.nan,
        }
    )
    return Dataset(items=items, events=events, name="two-taste")


def make_dataset(events: list[tuple[str, str, str, float, float]], item_ids: list[str]) -> Dataset:
    """A Dataset from literal event rows (user, item, type, timestamp, value)."""
    frame = pd.DataFrame(events, columns=["user_id", "item_id", "type", "timestamp", "value"])
    items = pd.DataFrame(
        {"item_id": item_ids, "title": item_ids, "category": "c", "popularity": 0.0, "avg_rating": np.nan}
    )
    return Dataset(items=items, events=frame, name="literal")


def ml100k_genre_flags(*genres: str) -> str:
    """The 19 genre columns of an ml-100k ``u.item`` line: 1 for each of ``genres``, 0 elsewhere."""
    return "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
