"""Demo users' attributes — device, country, segment, new vs returning — for dimension breakdowns.

Drawn from their own random stream (``ATTRIBUTE_STREAM`` mixed into the world's seed), after and
apart from everything else, so adding them changed none of the world's other numbers.  Two of them
carry effects the ground truth knows:

- ``segment`` is the user's price sensitivity (``truth.GroundTruth.price_sensitivity``) in terciles:
  ``bargain`` users (the top third) add expensive items to their carts far less often
  (``CART_PRICE``), so a ranking that pushes pricier items loses carts there and not elsewhere;
- ``tenure`` is ``new`` for users without any event in the history, ``returning`` otherwise: a
  personalised model has nothing to learn from for a new user.

``device`` and ``country`` are independent of behaviour (no effect: a breakdown by them should find
none beyond chance).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

ATTRIBUTE_STREAM = 0xA77  # the attributes' own stream: np.random.default_rng([seed, ATTRIBUTE_STREAM])
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARES = (0.6, 0.32, 0.08)
COUNTRIES = ("DE", "FR", "NL", "PL", "ES", "IT")
COUNTRY_SHARES = (0.3, 0.2, 0.15, 0.13, 0.12, 0.1)
SEGMENTS = ("premium", "regular", "bargain")  # price sensitivity terciles, lowest first
DIMENSIONS = ("device", "country", "segment", "tenure")


def user_attributes(seed: int, user_ids: Iterable[str], price_sensitivity: np.ndarray,
                    history_users: Iterable[str]) -> pd.DataFrame:
    """One row per user: user_id and the four dimensions (strings)."""
    rng = np.random.default_rng([seed, ATTRIBUTE_STREAM])
    user_ids = [str(u) for u in user_ids]
    n = len(user_ids)
    device = rng.choice(len(DEVICES), size=n, p=DEVICE_SHARES)
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_SHARES)
    cuts = np.quantile(price_sensitivity, [1 / 3, 2 / 3]) if n else np.zeros(2)
    segment = np.searchsorted(cuts, price_sensitivity, side="right")
    seen = set(pd.Series(history_users).astype(str).unique())
    return pd.DataFrame({
        "user_id": user_ids,
        "device": np.asarray(DEVICES)[device],
        "country": np.asarray(COUNTRIES)[country],
        "segment": np.asarray(SEGMENTS)[segment],
        "tenure": ["returning" if u in seen else "new" for u in user_ids],
    })
