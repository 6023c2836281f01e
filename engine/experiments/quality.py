"""Recommendation quality per arm, from what the arms served: the readout's ``quality`` block (pure).

What is recorded, at exposure time (``ExposureRecorder.record_exposure`` through the EXPOSE script),
for each user's *first* list in the phase: per arm, counters of lists, cold-start lists and fallback
lists (hash ``experiment_quality``), and the list itself in a capped sample of the arm's most recent
``LIST_SAMPLE`` first-exposure lists (``experiment_lists``, ``<user>|<item>,<item>,...``).  Memory
stays bounded whatever the traffic; the shares are exact, the list metrics are over the sample.

The metrics are ``analysis.ranking``'s, one definition for offline evaluation and the readout:
catalog coverage (distinct items in the arm's sampled lists / catalogue size), intra-list diversity
by category (1 − mean pairwise same-category share), novelty (mean −log2 of the share of users who
interacted with the item).  Coverage grows with the number of lists, so the arms are compared on
samples of equal size (the smaller arm's).

Overlap between arms for the same users: each arm's sampled users also get the *other* arm's list,
computed at readout time through the serving engine (``counterfactual``: user, variant, list
length → item ids),
for at most ``OVERLAP_USERS`` users; the block gives the mean Jaccard of the two lists.  Without a
serving engine (the CLI reads Redis only) the overlap is ``None`` with a message saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd

from analysis.ranking import catalog_coverage, intra_list_diversity, jaccard, novelty

OVERLAP_USERS = 50  # counterfactual lists computed per arm at readout time
ENTRY_SEPARATOR = "|"
ITEM_SEPARATOR = ","

Counterfactual = Callable[[str, str, int], Sequence[str]]  # (user, variant, n) -> the list that arm would serve


@dataclass(frozen=True)
class ServedList:
    """What an exposure served: the item ids, and whether the list was a cold-start or fallback one."""

    items: tuple[str, ...]
    cold_start: bool = False
    fallback: bool = False

    @property
    def flags(self) -> str:
        return ("c" if self.cold_start else "") + ("f" if self.fallback else "")


@dataclass(frozen=True)
class Catalog:
    """What the list metrics are measured against: the catalogue's size, categories and popularity."""

    n_items: int
    categories: Mapping[str, str]
    popularity: Mapping[str, float]  # item -> share of users who interacted with it


def list_entry(user: str, items: Sequence[str]) -> str:
    return f"{user}{ENTRY_SEPARATOR}{ITEM_SEPARATOR.join(items)}"


def parse_entry(entry: str) -> tuple[str, list[str]]:
    user, _, items = entry.partition(ENTRY_SEPARATOR)
    return user, [i for i in items.split(ITEM_SEPARATOR) if i]


def popularity_shares(events: pd.DataFrame) -> dict[str, float]:
    """Share of users who interacted with each item (what novelty is measured against)."""
    users = max(int(events["user_id"].nunique()), 1)
    per_item = events.groupby("item_id", observed=True)["user_id"].nunique()
    return {str(k): float(v) / users for k, v in per_item.items()}


def catalog_of(items: pd.DataFrame, events: pd.DataFrame) -> Catalog:
    """A dataset's catalogue (``items`` with ``item_id`` and ``category``; ``events`` with users)."""
    categories = dict(zip(items["item_id"].astype(str), items["category"].astype(str), strict=True))
    return Catalog(len(categories), categories, popularity_shares(events))


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def arm_quality(
    variant: str,
    counts: Mapping[str, float],
    lists: Sequence[Sequence[str]],
    catalog: Catalog | None,
    coverage_lists: int | None = None,
) -> dict[str, Any]:
    """One arm's block: shares from the exact counters, list metrics from the sampled lists."""
    n_lists = counts.get("lists", 0.0)
    row: dict[str, Any] = {
        "variant": variant,
        "lists": int(n_lists),
        "sampled_lists": len(lists),
        "cold_start_share": _share(counts.get("cold", 0.0), n_lists),
        "fallback_share": _share(counts.get("fallback", 0.0), n_lists),
        "coverage": None,
        "diversity": None,
        "novelty": None,
        "message": None,
    }
    if not lists:
        row["message"] = "no list recorded for this arm yet"
        return row
    if catalog is None:
        row["message"] = "coverage, diversity and novelty need the dataset's catalogue"
        return row
    # analysis.ranking takes any hashable item id; a Mapping is invariant in its key type, hence the casts
    row["coverage"] = catalog_coverage(lists[: coverage_lists or len(lists)], catalog.n_items)
    row["diversity"] = intra_list_diversity(lists, categories=cast(Mapping[Hashable, Hashable], catalog.categories))
    row["novelty"] = novelty(lists, cast(Mapping[Hashable, float], catalog.popularity))
    return row


def overlap(
    samples: Mapping[str, Sequence[tuple[str, Sequence[str]]]],
    counterfactual: Counterfactual,
    limit: int = OVERLAP_USERS,
) -> list[dict[str, Any]]:
    """Mean Jaccard of the control's and each treatment's lists for the same users.

    ``samples`` maps each arm (control first) to its sampled (user, served list) pairs; for up to
    ``limit`` users of each of the two arms the other arm's list comes from ``counterfactual``.
    """
    names = list(samples)
    out = []
    for other in names[1:]:
        scores = [jaccard(items, counterfactual(user, other, len(items))) for user, items in samples[names[0]][:limit]]
        scores += [jaccard(items, counterfactual(user, names[0], len(items))) for user, items in samples[other][:limit]]
        out.append({
            "variants": [names[0], other],
            "users": len(scores),
            "jaccard": sum(scores) / len(scores) if scores else None,
        })
    return out


def quality_block(
    counts: Mapping[str, Mapping[str, float]],
    samples: Mapping[str, Sequence[tuple[str, Sequence[str]]]],
    catalog: Catalog | None,
    counterfactual: Counterfactual | None = None,
) -> dict[str, Any]:
    """The readout's ``quality``: ``arms`` (one row per arm, in variant order) and ``overlap``."""
    sizes = [len(s) for s in samples.values() if s]
    equal = min(sizes) if sizes else None
    arms = [
        arm_quality(v, counts.get(v, {}), [items for _, items in samples.get(v, ())], catalog, equal)
        for v in samples
    ]
    block: dict[str, Any] = {
        "arms": arms,
        "coverage_lists": equal,
        "overlap": None,
        "overlap_message": None,
    }
    if counterfactual is None:
        block["overlap_message"] = "overlap needs the serving engine to compute the other arm's lists (console, API)"
    elif len(samples) >= 2:
        try:
            block["overlap"] = overlap(samples, counterfactual)
        except Exception as exc:  # a model that cannot serve now must not take the readout down
            block["overlap_message"] = f"overlap not computed: {exc}"
    return block
