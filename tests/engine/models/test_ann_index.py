"""ANN candidate retrieval: agrees with exact scoring, respects exclusions, travels with its version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.synthetic_factors import synthetic_als
from engine.models import ALSRecommender, ModelRegistry
from engine.models.ann_index import MANIFEST_FILE, AnnIndex, IndexMismatchError
from tests.support.synthetic_data import two_taste_dataset

N_ITEMS = 20_000
K = 50


@pytest.fixture(scope="module")
def exact() -> ALSRecommender:
    return synthetic_als(N_ITEMS, 300)


@pytest.fixture(scope="module")
def indexed() -> ALSRecommender:
    model = synthetic_als(N_ITEMS, 300)
    model.attach_index(AnnIndex.build(model.item_factors))
    return model


def test_ann_recommend_agrees_with_exact_scoring(exact: ALSRecommender, indexed: ALSRecommender) -> None:
    users = [f"u{u:07d}" for u in range(200)]
    recalls = []
    for user in users:
        truth = exact.recommend(user, n=K)
        got = indexed.recommend(user, n=K)
        assert len(got) == K
        recalls.append(len({i for i, _ in truth} & {i for i, _ in got}) / K)
        # the scores served are the exact ones, best first
        ids = [i for i, _ in got]
        assert [s for _, s in got] == pytest.approx(exact.score(user, ids).tolist(), rel=1e-5)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    assert np.mean(recalls) >= 0.95
    # and it did not just score every item: the index retrieves a small share of the catalogue
    assert len(indexed.ann.search(indexed.user_factors[0], K)) == K  # type: ignore[union-attr]


def test_ann_respects_exclude_and_history(exact: ALSRecommender, indexed: ALSRecommender) -> None:
    user = "u0000003"
    best = [i for i, _ in exact.recommend(user, n=30)]
    excluded = set(best[:15])
    history = best[15:25]
    got = [i for i, _ in indexed.recommend(user, n=K, exclude=excluded, history=history)]
    assert len(got) == K
    assert not (set(got) & excluded) and not (set(got) & set(history))
    # the user's own history (no history given) is filtered too
    seen = {str(indexed.item_ids[i]) for i in indexed.user_items[3]}  # type: ignore[index]
    assert not seen & {i for i, _ in indexed.recommend(user, n=K)}
    # a user with no history gets nothing from the model (the service's cold start takes over)
    assert indexed.recommend("nobody", n=K) == []


def _registry_model(tmp_path: Path, min_items: int) -> tuple[ModelRegistry, str, ALSRecommender]:
    registry = ModelRegistry(tmp_path / "models")
    model = synthetic_als(N_ITEMS, 50)
    version = registry.save("als", model, ann_min_items=min_items)
    return registry, version, model


def test_save_load_round_trip_keeps_the_index(tmp_path: Path) -> None:
    registry, version, model = _registry_model(tmp_path, min_items=10_000)
    manifest = json.loads((tmp_path / "models" / "als" / version / MANIFEST_FILE).read_text())
    assert manifest["model_version"] == version and manifest["items"] == N_ITEMS
    loaded = registry.load("als", version)
    assert isinstance(loaded, ALSRecommender) and loaded.ann is not None
    assert (loaded.ann.n_items, loaded.ann.probe) == (N_ITEMS, manifest["probe"])
    # the reloaded index retrieves what exact scoring of the saved model finds
    users = [f"u{u:07d}" for u in range(30)]
    overlap = [len({i for i, _ in loaded.recommend(u, n=K)} & {i for i, _ in model.recommend(u, n=K)}) / K
               for u in users]
    assert model.ann is None and np.mean(overlap) >= 0.95


def test_an_index_built_for_another_version_is_refused(tmp_path: Path) -> None:
    registry, first, _ = _registry_model(tmp_path, min_items=10_000)
    second = registry.save("als", synthetic_als(N_ITEMS, 50, seed=8), ann_min_items=10_000)
    models = tmp_path / "models" / "als"
    # the first version's index copied over the second's
    for name in (MANIFEST_FILE, "ann.index"):
        shutil.copy(models / first / name, models / second / name)
    with pytest.raises(IndexMismatchError, match=f"built for model version {first}, not {second}"):
        registry.load("als", second)
    # the same files relabelled for the second version: the vectors still give it away
    manifest = json.loads((models / second / MANIFEST_FILE).read_text())
    (models / second / MANIFEST_FILE).write_text(json.dumps({**manifest, "model_version": second}))
    with pytest.raises(IndexMismatchError, match="other item vectors"):
        registry.load("als", second)
    # a damaged index file is refused by its checksum
    with (models / first / "ann.index").open("r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\0" * 8)
    with pytest.raises(IndexMismatchError, match="checksum"):
        registry.load("als", first)


def test_small_catalogues_stay_exact(tmp_path: Path) -> None:
    registry, version, _ = _registry_model(tmp_path, min_items=N_ITEMS + 1)
    assert not (tmp_path / "models" / "als" / version / MANIFEST_FILE).exists()
    assert registry.load("als", version).ann is None
    # training through the registry: the demo-sized two-taste world is far below any threshold
    trained = registry.train_all(two_taste_dataset(), names=["als", "item_item"], ann_min_items=50_000)
    assert all(registry.load(name, v).ann is None for name, v in trained.items())
    # models without vectors never get an index, whatever the threshold
    item_item = registry.train_all(two_taste_dataset(), names=["item_item"], ann_min_items=1)
    assert registry.load("item_item", item_item["item_item"]).ann is None
    assert not (tmp_path / "models" / "item_item" / item_item["item_item"] / MANIFEST_FILE).exists()
