"""Why an item is on a list, in words a shopper understands.

The strongest true statement wins: the recent history item it is most like ("Because you liked
<title>"), else its rating ("Highly rated"), else its category's popularity.
"""

from __future__ import annotations

import numpy as np

from engine.data.catalog import ItemCatalog

POPULAR = "Popular"
HIGHLY_RATED = "Highly rated"
LIKE_THRESHOLD = 0.35  # cosine: below this the "because you liked" link is too weak to claim


def because_you_liked(title: str) -> str:
    return f"Because you liked {title}"


def popular_in(category: str) -> str:
    return f"Popular in {category}"


def explain(
    picked: np.ndarray,
    history: np.ndarray,
    catalog: ItemCatalog,
    vectors: np.ndarray | None = None,
) -> list[str]:
    """One reason per catalogue position in ``picked``; ``history`` is most recent first."""
    reasons: list[str] = []
    sims: np.ndarray | None = None
    if len(history) and vectors is not None:
        v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        sims = v[picked] @ v[history].T  # picked × history
    for row, pos in enumerate(picked):
        reason = None
        if sims is not None:
            best = int(np.argmax(sims[row]))
            if sims[row, best] >= LIKE_THRESHOLD:
                reason = because_you_liked(catalog.titles[history[best]])
        elif len(history):
            same = np.flatnonzero(catalog.categories[history] == catalog.categories[pos])
            if len(same):
                reason = because_you_liked(catalog.titles[history[same[0]]])
        if reason is None:
            reason = HIGHLY_RATED if catalog.is_highly_rated(int(pos)) else popular_in(catalog.categories[pos])
        reasons.append(reason)
    return reasons
