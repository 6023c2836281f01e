"""Many observations of a Prometheus histogram in one pass.

prometheus_client observes one value at a time: a lock, a sum increment and a bucket search per
value.  A path that answers tens of thousands of requests a second counts its answers in plain
Python and hands them over in batches (``engine.api.l1_fast_path``); this adds such a batch with
one increment per touched bucket.  The exposition is the same as observing each value in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def observe_many(histogram: Any, values: Sequence[float] | np.ndarray,
                 weights: Sequence[float] | np.ndarray | None = None) -> None:
    """Observe each of ``values`` (``weights[i]`` times, when given) on a labelled histogram child.

    Reads prometheus_client's ``_upper_bounds``, ``_buckets`` and ``_sum``: the library has no
    public way to add a batch, and a test pins this against ``observe`` called value by value.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    if v.shape != w.shape:
        raise ValueError(f"{v.size} values but {w.size} weights")
    if not np.isfinite(v).all():
        raise ValueError("histogram observations must be finite")
    bounds = histogram._upper_bounds
    # the first bound >= the value: ``observe`` puts a value in the first bucket with amount <= bound
    counts = np.bincount(np.searchsorted(bounds, v, side="left"), weights=w, minlength=len(bounds))
    histogram._sum.inc(float(v @ w))
    for i in np.flatnonzero(counts):
        histogram._buckets[i].inc(float(counts[i]))
