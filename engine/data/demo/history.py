"""The demo world's past: sessions of ranked lists shown by a legacy system, and what users did.

Each session shows a list of ``LIST_LENGTH`` slots filled by a legacy mix of best-sellers, the
user's favourite categories and random picks; every event is a draw of the ground truth
(``GroundTruth.feedback``), so a model that learns the history well really does earn more clicks.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from engine.data.demo.generation import Latent
from engine.data.demo.ids import parse_ids
from engine.data.demo.truth import GroundTruth

END_EPOCH = datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp()
DAY = 86_400.0

LIST_LENGTH = 10
MEAN_SESSIONS = 15.0  # per user; lognormal, so a few users are far busier
ACTIVITY_SIGMA = 1.0
MAX_SESSIONS = 400

# Where the legacy system's list slots come from: best-sellers, the user's categories, anything.
EXPOSURE_MIX = (0.25, 0.55, 0.20)
# Category pages sort by popularity too, but users browse them deeper than a best-seller list.
CATEGORY_PAGE_SKEW = 0.5

RATING_PROBABILITY = 0.4


def _sample_groups(weights: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each entry of ``rows``, a column drawn with probability ∝ ``weights[row]``."""
    n_rows, n_cols = weights.shape
    flat = np.arange(weights.size) // n_cols
    counts = np.full(n_rows, n_cols)
    return _sample_ragged(weights.ravel(), flat, counts, rows, rng) - rows * n_cols


def _sample_ragged(
    weights: np.ndarray, group: np.ndarray, counts: np.ndarray, wanted: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Flat indices drawn within group ``wanted[j]`` with probability ∝ ``weights``.

    ``weights`` is grouped contiguously (``group`` sorted, ``counts`` per group).  Normalised per
    group, the running sum of group g spans (g, g + 1], so one searchsorted serves every group.
    """
    totals = np.bincount(group, weights=weights, minlength=len(counts))
    cdf = np.cumsum(weights / totals[group])
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    idx = np.searchsorted(cdf, wanted + rng.random(wanted.size))
    # float round-off at a group's edge must not spill into the neighbour
    return np.clip(idx, first[wanted], first[wanted] + counts[wanted] - 1)


def _exposures(
    latent: Latent, n_categories: int, days: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sessions of legacy lists: (user, item, position, session start) per shown slot."""
    n_users, n_items, k = len(latent.user_vecs), len(latent.item_vecs), n_categories
    mu = math.log(MEAN_SESSIONS) - ACTIVITY_SIGMA**2 / 2
    sessions = np.clip(np.rint(rng.lognormal(mu, ACTIVITY_SIGMA, n_users)), 1, MAX_SESSIONS).astype(np.int64)
    session_user = np.repeat(np.arange(n_users), sessions)
    n_sessions = session_user.size
    # A daily rhythm: quiet nights, an evening peak.
    hourly = 1.0 + 0.9 * np.sin((np.arange(24) - 13.0) / 24.0 * 2 * np.pi)
    hour = rng.choice(24, size=n_sessions, p=hourly / hourly.sum())
    day = rng.integers(0, days, n_sessions)
    start = END_EPOCH - days * DAY + day * DAY + (hour + rng.random(n_sessions)) * 3600.0
    start = np.minimum(start, END_EPOCH - 3600.0)

    user = np.repeat(session_user, LIST_LENGTH)
    session = np.repeat(np.arange(n_sessions), LIST_LENGTH)
    position = np.tile(np.arange(LIST_LENGTH), n_sessions)
    n = user.size
    source = rng.choice(3, size=n, p=EXPOSURE_MIX)
    item = np.empty(n, dtype=np.int64)

    pop_cdf = np.cumsum(latent.pop_prior)
    pick = source == 0
    item[pick] = np.minimum(np.searchsorted(pop_cdf, rng.random(pick.sum()) * pop_cdf[-1]), n_items - 1)

    # Category slots: a category from the user's θ, then an item of it by popularity.
    pick = source == 1
    cat = _sample_groups(latent.user_theta, user[pick], rng)
    order = np.argsort(latent.item_category, kind="stable")
    counts = np.bincount(latent.item_category, minlength=k)
    sorted_cat = latent.item_category[order]
    # One ragged row per category, laid out as a flat (category-sorted) array.
    slot = _sample_ragged(latent.pop_prior[order] ** CATEGORY_PAGE_SKEW, sorted_cat, counts, cat, rng)
    item[pick] = order[slot]

    pick = source == 2
    item[pick] = rng.integers(0, n_items, pick.sum())

    # The same item twice in one list is a legacy-system bug we do not want in the data.
    _, keep = np.unique(session * n_items + item, return_index=True)
    keep.sort()
    return user[keep], item[keep], position[keep], start[session[keep]]


def sample_history(
    truth: GroundTruth,
    latent: Latent,
    n_categories: int,
    days: int,
    rng: np.random.Generator,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
) -> pd.DataFrame:
    """The events table of ``days`` days ending at ``END_EPOCH``, sorted by time."""
    user, item, position, start = _exposures(latent, n_categories, days, rng)
    logit = truth.logit(user, item)
    fb = truth.feedback(user, item, position, logit, rng)

    t_view = start + 2.0 + 1.5 * position + rng.exponential(4.0, user.size)
    t_click = t_view + rng.exponential(6.0, user.size)
    t_cart = t_click + 20.0 + rng.exponential(60.0, user.size)
    t_buy = t_cart + 30.0 + rng.exponential(300.0, user.size)
    t_rate = t_buy + DAY * (0.5 + rng.exponential(2.0, user.size))
    rated = fb.purchase & (rng.random(user.size) < RATING_PROBABILITY) & (t_rate < END_EPOCH)
    stars = truth.rating_value(logit, rng)

    parts = [
        ("view", fb.view, t_view, np.ones(user.size)),
        ("click", fb.click, t_click, np.ones(user.size)),
        ("add_to_cart", fb.add_to_cart, t_cart, np.ones(user.size)),
        ("purchase", fb.purchase, t_buy, latent.price[item]),
        ("rating", rated, t_rate, stars),
    ]
    ev_user = np.concatenate([user[m] for _, m, _, _ in parts])
    ev_item = np.concatenate([item[m] for _, m, _, _ in parts])
    ev_type = np.concatenate([np.full(int(m.sum()), name, dtype=object) for name, m, _, _ in parts])
    # an exponential tail must not push an event past the end of the world
    ev_time = np.minimum(np.concatenate([t[m] for _, m, t, _ in parts]), END_EPOCH - 1.0)
    ev_value = np.concatenate([v[m] for _, m, _, v in parts])
    order = np.lexsort((ev_user, ev_time))
    return pd.DataFrame(
        {
            "user_id": user_ids[ev_user[order]],
            "item_id": item_ids[ev_item[order]],
            "type": ev_type[order],
            "timestamp": np.round(ev_time[order], 3),
            "value": ev_value[order].astype(np.float64),
        }
    )


def item_table(events: pd.DataFrame, latent: Latent, categories: list[str], item_ids: np.ndarray) -> pd.DataFrame:
    """The catalogue with the history's popularity shares and average ratings."""
    n_items = len(item_ids)
    idx = parse_ids(events["item_id"].to_numpy(), "i", n_items)
    counts = np.bincount(idx, minlength=n_items)
    is_rating = (events["type"] == "rating").to_numpy()
    n_ratings = np.bincount(idx[is_rating], minlength=n_items)
    sum_ratings = np.bincount(idx[is_rating], weights=events["value"].to_numpy()[is_rating], minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(n_ratings > 0, sum_ratings / np.maximum(n_ratings, 1), np.nan)
    return pd.DataFrame(
        {
            "item_id": item_ids,
            "title": latent.titles,
            "category": np.array(categories, dtype=object)[latent.item_category],
            "popularity": counts / max(counts.sum(), 1),
            "avg_rating": avg,
            "price": latent.price,
        }
    )
