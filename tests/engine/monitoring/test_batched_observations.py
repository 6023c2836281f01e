"""``observe_many`` against prometheus_client's own ``observe``, value by value."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from engine.monitoring.batched_observations import observe_many

BUCKETS = (0.001, 0.01, 0.1, 1.0)


def _pair() -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Histogram]:
    one, many = CollectorRegistry(), CollectorRegistry()
    return (one, Histogram("x_seconds", "x", ["tier"], buckets=BUCKETS, registry=one),
            many, Histogram("x_seconds", "x", ["tier"], buckets=BUCKETS, registry=many))


def _exposition(registry: CollectorRegistry) -> dict[str, float]:
    samples = (line.rsplit(" ", 1) for line in generate_latest(registry).decode().splitlines()
               if not line.startswith("#") and "_created" not in line)
    return {name: float(value) for name, value in samples}


def _same(a: dict[str, float], b: dict[str, float]) -> None:
    # bucket counts exactly; the sum up to the order of float additions
    assert a.keys() == b.keys()
    assert {k: v for k, v in a.items() if "_sum" not in k} == {k: v for k, v in b.items() if "_sum" not in k}
    assert [v for k, v in a.items() if "_sum" in k] == pytest.approx([v for k, v in b.items() if "_sum" in k],
                                                                      rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_a_batch_is_exposed_as_the_same_values_observed_one_by_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # bounds themselves (a bucket's bound is inclusive), values past the last bound, and zeros
    values = np.concatenate([rng.exponential(0.05, 200), BUCKETS, [0.0, 5.0, 1e9]])
    weights = rng.integers(1, 4, values.size)
    one, h_one, many, h_many = _pair()
    for v, w in zip(values, weights, strict=True):
        for _ in range(w):
            h_one.labels("l1").observe(float(v))
    observe_many(h_many.labels("l1"), values, weights)
    _same(_exposition(one), _exposition(many))


def test_unweighted_and_empty_batches() -> None:
    one, h_one, many, h_many = _pair()
    values = [0.0005, 0.002, 0.002, 0.5]
    for v in values:
        h_one.labels("a").observe(v)
    observe_many(h_many.labels("a"), values)
    observe_many(h_many.labels("a"), [])
    _same(_exposition(one), _exposition(many))


def test_bad_batches_are_refused_before_anything_is_counted() -> None:
    _, _, many, h_many = _pair()
    child = h_many.labels("a")
    before = _exposition(many)
    with pytest.raises(ValueError, match="2 values but 1 weights"):
        observe_many(child, [0.1, 0.2], [1])
    with pytest.raises(ValueError, match="finite"):
        observe_many(child, [0.1, float("nan")])
    assert _exposition(many) == before
