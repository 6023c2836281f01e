"""Stratified train/test split, exactly as Microsoft Recommenders' ``python_stratified_split``.

Recommenders (``recommenders/datasets/python_splitters.py``, ``_do_stratification``) does, for
``filter_by`` = user or item::

    np.random.seed(seed); data["random"] = np.random.rand(len(data))   # one draw per row, in row order
    data = data.sort_values([group, "random"])
    rank = groupby(group).cumcount() + 1;  count = group size
    train: rank <= round(ratio · count)      (pandas' round: half to even)

This module draws the same numbers (``RandomState(seed).rand``, the legacy generator behind
``np.random.seed``) in the same row order, so on data with one row per (user, item) pair — ml-100k
read in its file's order — the halves are the very rows Recommenders picks.  A group of one or two
keeps them all in train; from three on, every group has at least one test row.

Their published MovieLens table stratifies by **item** (``filter_by="item"``); the per-user variant
(``by="user"``, the default here) is what issue 14 and ``recops train`` call the per-user protocol.

Beyond Recommenders (which splits rows, and whose ``min_rating`` is a minimum group size, never
used in their benchmark):

* what counts as an interaction: an event whose weight (``interaction_weights``: the dataset's
  ``weight`` column, else ``EVENT_WEIGHTS`` of its type) is positive (an impression alone says
  nothing about taste), and with ``min_rating`` set, a ``rating`` event only when its
  value is at least ``min_rating`` (ml-100k's "4 and 5 stars are positive" convention);
* the split is decided on distinct (user, item) pairs, one random draw per pair in the order of
  the pair's first event, so an item is never in both halves of a user.  The test half has one row
  per pair — the latest event — since every test pair counts as one relevant item; the train half
  keeps all events of its pairs, so a model trains on the same confidence (views, clicks, purchases
  summed) it would see in production.  Without repeated pairs both are Recommenders' rows.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from engine.data.schema import interaction_weights

StratifyBy = Literal["user", "item"]
STRATIFY_BY: tuple[str, ...] = ("user", "item")


def interaction_events(events: pd.DataFrame, min_rating: float | None = None) -> pd.DataFrame:
    """The events that say a user liked an item (see the module docstring)."""
    keep = interaction_weights(events) > 0
    if min_rating is not None:
        keep &= ((events["type"] != "rating") | (events["value"] >= min_rating)).to_numpy()
    return events.loc[keep]


def stratified_ranks(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(0-based rank of each row within its group after the seeded shuffle, size of its group).

    Rows are drawn ``RandomState(seed).rand`` in the given order and ranked by that draw inside
    their group: Recommenders' ``sort_values([group, "random"])`` then ``cumcount``.
    """
    draws = np.random.RandomState(seed).rand(len(groups))
    codes, _ = pd.factorize(groups)
    order = np.lexsort((draws, codes))
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - np.repeat(starts, counts)
    return rank, counts[codes]


def _pair_codes(events: pd.DataFrame) -> np.ndarray:
    """One code per distinct (user, item) pair, numbered in the order of the pair's first row."""
    users, _ = pd.factorize(events["user_id"])
    items, item_ids = pd.factorize(events["item_id"])
    codes, _ = pd.factorize(users.astype(np.int64) * len(item_ids) + items)
    return codes


def stratified_split(
    events: pd.DataFrame,
    ratio: float = 0.75,
    seed: int = 42,
    min_rating: float | None = None,
    by: StratifyBy = "user",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) events, each user's (or item's, ``by="item"``) pairs split ``ratio`` : 1 − ``ratio``."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if by not in STRATIFY_BY:
        raise ValueError(f"by must be one of {STRATIFY_BY}, got {by!r}")
    ev = interaction_events(events, min_rating)
    if ev.empty:
        return ev.copy(), ev.copy()
    pair_codes = _pair_codes(ev)
    n_pairs = int(pair_codes.max()) + 1
    # the latest event of each pair stands for it in the test half (ties: the later row)
    order_by_time = np.argsort(ev["timestamp"].to_numpy(), kind="stable")
    time_rank = np.empty(len(ev), dtype=np.int64)
    time_rank[order_by_time] = np.arange(len(ev))
    latest_rank = np.full(n_pairs, -1, dtype=np.int64)
    np.maximum.at(latest_rank, pair_codes, time_rank)
    latest_row = order_by_time[latest_rank]
    first_row = np.full(n_pairs, len(ev), dtype=np.int64)
    np.minimum.at(first_row, pair_codes, np.arange(len(ev)))

    rank, counts = stratified_ranks(ev[f"{by}_id"].to_numpy()[first_row], seed)
    # numpy rounds half to even, as pandas' round does in Recommenders
    in_train_pair = rank < np.round(ratio * counts).astype(np.int64)

    train = ev.loc[in_train_pair[pair_codes]]
    test = ev.iloc[np.sort(latest_row[~in_train_pair])]
    return train.reset_index(drop=True), test.reset_index(drop=True)
