"""The three recommenders and the model registry, on tiny worlds whose right answers are known."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from engine.data.schema import InteractionMatrix
from engine.models import (
    MODEL_CLASSES,
    ALSRecommender,
    ItemItemRecommender,
    ModelRegistry,
    NotFittedError,
    PopularityRecommender,
    Recommender,
    UnknownModelError,
)
from engine.models.item_item import item_similarity
from engine.models.registry import STARTUP_MODELS
from tests.support.synthetic_data import DAY, T0, make_dataset, two_taste_dataset


@pytest.fixture(scope="module")
def two_taste() -> InteractionMatrix:
    return two_taste_dataset().interactions()


def _fit(name: str, interactions: InteractionMatrix, **params: object) -> Recommender:
    return MODEL_CLASSES[name](**params).fit(interactions)  # type: ignore[arg-type]


# ---- popularity ---------------------------------------------------------------------------------


def test_popularity_decays_with_age() -> None:
    # "old" has two users 28 days before the newest event, "new" one user at the newest event.
    ds = make_dataset(
        [
            ("u1", "old", "view", T0, 1.0),
            ("u2", "old", "view", T0, 1.0),
            ("u3", "new", "view", T0 + 28 * DAY, 1.0),
        ],
        ["old", "new", "never"],
    )
    inter = ds.interactions()
    decayed = PopularityRecommender(half_life_days=14.0).fit(inter)
    # old: 2 × 0.5^(28/14) = 0.5; new: 1
    assert decayed.score("anyone", ["old", "new", "never"]).tolist() == pytest.approx([0.5, 1.0, 0.0])
    plain = PopularityRecommender(half_life_days=None).fit(inter)
    assert plain.score("anyone", ["old", "new"]).tolist() == pytest.approx([2.0, 1.0])
    assert [i for i, _ in plain.recommend("someone-new", n=2)] == ["old", "new"]


def test_popularity_is_the_same_for_everyone_and_skips_seen(two_taste: InteractionMatrix) -> None:
    model = _fit("popularity", two_taste)
    a = model.score("a00", ["A01", "B01"])
    assert np.array_equal(a, model.score("b00", ["A01", "B01"]))
    seen = set(two_taste.item_ids[model.user_items[two_taste.user_index["a00"]]])
    assert not seen & {i for i, _ in model.recommend("a00", n=24)}
    similar = model.similar_items("A01", n=5)
    assert "A01" not in [i for i, _ in similar]
    assert [s for _, s in similar] == sorted((s for _, s in similar), reverse=True)


# ---- item-item ----------------------------------------------------------------------------------


def test_similarity_values_by_hand() -> None:
    # 3 users × 3 items.  item counts c = (3, 2, 1); co-occurrence c01 = 2, c02 = 1, c12 = 1
    binary = sparse.csr_matrix(np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=np.float32))
    cos = item_similarity(binary, "cosine", top_k=5).toarray()
    assert cos[0, 1] == pytest.approx(2 / np.sqrt(6))
    assert cos[1, 2] == pytest.approx(1 / np.sqrt(2))
    jac = item_similarity(binary, "jaccard", top_k=5).toarray()
    assert jac[0, 1] == pytest.approx(2 / (3 + 2 - 2))
    assert jac[0, 2] == pytest.approx(1 / 3)
    lift = item_similarity(binary, "lift", top_k=5).toarray()
    assert lift[0, 1] == pytest.approx(2 / 6)
    assert lift[1, 2] == pytest.approx(1 / 2)
    assert np.all(np.diag(cos) == 0) and np.allclose(cos, cos.T)


def test_similarity_blocks_and_pruning_change_nothing_but_size() -> None:
    rng = np.random.default_rng(3)
    binary = sparse.csr_matrix((rng.random((60, 40)) < 0.15).astype(np.float32))
    whole = item_similarity(binary, "jaccard", top_k=40, block_cells=10**9).toarray()
    blocked = item_similarity(binary, "jaccard", top_k=40, block_cells=1).toarray()
    assert np.allclose(whole, blocked)
    pruned = item_similarity(binary, "jaccard", top_k=3, block_cells=50)
    assert np.diff(pruned.indptr).max() <= 3
    dense = pruned.toarray()
    for i in range(40):
        kept = dense[i][dense[i] > 0]
        if len(kept):
            # the kept neighbours are the row's best ones
            assert kept.min() >= np.sort(whole[i])[::-1][min(3, len(kept)) - 1] - 1e-6


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
def test_item_item_learns_the_two_tastes(two_taste: InteractionMatrix, similarity: str) -> None:
    model = _fit("item_item", two_taste, similarity=similarity)
    for user, own in (("a01", "A"), ("b03", "B")):
        recs = [i for i, _ in model.recommend(user, n=4)]
        assert len(recs) == 4 and all(i.startswith(own) for i in recs)
    similar = [i for i, _ in model.similar_items("A03", n=5)]
    assert "A03" not in similar and all(i.startswith("A") for i in similar)


def test_item_item_scores_a_new_user_from_history(two_taste: InteractionMatrix) -> None:
    model = _fit("item_item", two_taste)
    assert model.recommend("nobody", n=5) == []  # cold start is the service's job
    assert model.score("nobody", ["B01"])[0] == -np.inf
    recs = [i for i, _ in model.recommend("nobody", n=5, history=["B01", "B02"])]
    assert all(i.startswith("B") for i in recs) and not {"B01", "B02"} & set(recs)
    # a known user given an explicit history is scored from that history
    steered = [i for i, _ in model.recommend("a01", n=3, history=["B05"])]
    assert all(i.startswith("B") for i in steered)


def test_item_item_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        ItemItemRecommender(similarity="euclid")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ItemItemRecommender(top_k_neighbours=0)


# ---- ALS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def als(two_taste: InteractionMatrix) -> ALSRecommender:
    # λ = 20 is tuned for thousands of users; this world has 60 and needs less shrinkage
    return ALSRecommender(regularization=5.0).fit(two_taste)


def test_als_learns_the_two_tastes(als: ALSRecommender) -> None:
    for user, own in (("a02", "A"), ("b04", "B")):
        recs = [i for i, _ in als.recommend(user, n=4)]
        assert all(i.startswith(own) for i in recs)
    similar = [i for i, _ in als.similar_items("B02", n=5)]
    assert "B02" not in similar and all(i.startswith("B") for i in similar)


def test_als_fold_in_matches_implicit_recalculate_user(two_taste: InteractionMatrix, als: ALSRecommender) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    u = two_taste.user_index["a05"]
    row = two_taste.matrix[u]
    ours = als.fold_in(row.indices, row.data)
    reference = AlternatingLeastSquares(factors=als.factors, regularization=als.regularization, alpha=1.0)
    reference.item_factors = als.item_factors
    reference.user_factors = als.user_factors
    theirs = reference.recalculate_user(0, als._confidence(sparse.csr_matrix(row)))
    assert np.allclose(ours, theirs, atol=1e-3)
    # folding a fitted user back in lands next to the factor training gave them
    cos = ours @ als.user_factors[u] / (np.linalg.norm(ours) * np.linalg.norm(als.user_factors[u]))
    assert cos > 0.9


def test_als_new_user_with_history(als: ALSRecommender) -> None:
    recs = [i for i, _ in als.recommend("stranger", n=4, history=["A01", "A02", "A03"])]
    assert all(i.startswith("A") for i in recs) and not {"A01", "A02", "A03"} & set(recs)
    assert als.recommend("stranger", n=4) == []  # cold start is the service's job
    assert np.all(als.score("stranger", ["A01"]) == -np.inf)


@pytest.mark.parametrize("weighting", ["none", "bm25"])
def test_als_is_reproducible(two_taste: InteractionMatrix, weighting: str) -> None:
    a = ALSRecommender(factors=4, iterations=3, weighting=weighting).fit(two_taste)  # type: ignore[arg-type]
    b = ALSRecommender(factors=4, iterations=3, weighting=weighting).fit(two_taste)  # type: ignore[arg-type]
    assert np.array_equal(a.item_factors, b.item_factors)


def test_als_rejects_unknown_weighting() -> None:
    with pytest.raises(ValueError):
        ALSRecommender(weighting="tfidf")  # type: ignore[arg-type]


# ---- all models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_save_and_load_give_the_same_answers(two_taste: InteractionMatrix, name: str, tmp_path: Path) -> None:
    model = _fit(name, two_taste)
    model.save(tmp_path / name)
    loaded = MODEL_CLASSES[name].load(tmp_path / name)
    assert loaded.params() == model.params()
    items = list(two_taste.item_ids)
    for user, history in (("a00", None), ("b07", None), ("newcomer", ["A01", "A04"])):
        assert np.allclose(loaded.score(user, items, history=history), model.score(user, items, history=history))
        assert loaded.recommend(user, n=5, history=history) == model.recommend(user, n=5, history=history)
    assert loaded.similar_items("A02", n=3) == model.similar_items("A02", n=3)
    files = sorted(p.name for p in (tmp_path / name).iterdir())
    assert files == ["arrays.npz", "model.json"]


@pytest.mark.parametrize("name", sorted(MODEL_CLASSES))
def test_unknown_items_and_unfitted_models(two_taste: InteractionMatrix, name: str) -> None:
    with pytest.raises(NotFittedError):
        MODEL_CLASSES[name]().recommend("a00")
    model = _fit(name, two_taste)
    assert model.score("a00", ["no-such-item"])[0] == -np.inf
    assert model.similar_items("no-such-item") == []
    recs = model.recommend("a00", n=3, exclude=["A01", "A02"])
    assert len(recs) == 3 and not {"A01", "A02"} & {i for i, _ in recs}


# ---- registry -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, dict[str, str]]:
    registry = ModelRegistry(tmp_path_factory.mktemp("models"))
    return registry, registry.train_all(two_taste_dataset())


def test_train_all_saves_every_model(trained_registry: tuple[ModelRegistry, dict[str, str]]) -> None:
    registry, versions = trained_registry
    assert sorted(versions) == sorted(STARTUP_MODELS) == registry.names("two-taste")
    assert registry.names() == []  # served for the dataset they learnt from, not for the demo world
    for name, version in versions.items():
        assert registry.versions(name) == [version] and registry.current_version(name, "two-taste") == version
        assert (registry.models_dir / name / version / "arrays.npz").exists()
        loaded = registry.load(name, dataset="two-taste")
        assert isinstance(loaded, MODEL_CLASSES[name]) and loaded.version == version
        record = registry.record(name, version)
        assert (record.dataset, record.stage) == ("two-taste", "production")
        events = two_taste_dataset().events
        assert record.lineage["interactions"] == int((events["type"] != "impression").sum())
        assert record.lineage["params"] == loaded.params() and record.lineage["events"] == 0
    data = json.loads((registry.models_dir / "registry.json").read_text())
    assert data["default"] == registry.default_model("two-taste") == "als"
    assert not [p for p in registry.models_dir.iterdir() if p.name.endswith(".tmp")]


def test_loaded_model_serves_without_retraining(trained_registry: tuple[ModelRegistry, dict[str, str]]) -> None:
    registry, _ = trained_registry
    fresh = ModelRegistry(registry.models_dir)  # another process, same directory
    model = fresh.load("item_item", dataset="two-taste")
    assert all(i.startswith("A") for i, _ in model.recommend("a00", n=3))


def test_versions_stages_promote_and_rollback(tmp_path: Path, two_taste: InteractionMatrix) -> None:
    registry = ModelRegistry(tmp_path)
    first = registry.save("popularity", PopularityRecommender(half_life_days=None).fit(two_taste))
    second = registry.save("popularity", PopularityRecommender(half_life_days=1.0).fit(two_taste))
    assert registry.versions("popularity") == [first, second] and first < second
    # the first version on a dataset serves; a later one waits for a promotion
    assert registry.current_version("popularity") == first
    assert [r.stage for r in registry.records()] == ["production", "candidate"]
    assert registry.load("popularity").params() == {"half_life_days": None}
    assert registry.load("popularity", second).params() == {"half_life_days": 1.0}
    registry.set_current("popularity", second)
    assert ModelRegistry(tmp_path).load("popularity").params() == {"half_life_days": 1.0}
    assert [r.stage for r in registry.records()] == ["archived", "production"]


def test_concurrent_saves_keep_every_version(tmp_path: Path, two_taste: InteractionMatrix) -> None:
    model = PopularityRecommender().fit(two_taste)
    registry = ModelRegistry(tmp_path)
    with ThreadPoolExecutor(max_workers=6) as pool:
        versions = list(pool.map(lambda _: ModelRegistry(tmp_path).save("popularity", model), range(12)))
    assert len(set(versions)) == 12  # the same model saved in the same instant still gets its own version
    assert registry.versions("popularity") == sorted(versions)
    assert registry.current_version("popularity") in versions
    assert sorted(p.name for p in (tmp_path / "popularity").iterdir()) == sorted(versions)  # no staging left


def test_default_model(tmp_path: Path, two_taste: InteractionMatrix) -> None:
    registry = ModelRegistry(tmp_path)
    assert registry.default is None and registry.names() == []
    registry.save("popularity", PopularityRecommender().fit(two_taste))
    assert registry.default == "popularity"  # the only one there is
    registry.save("als", ALSRecommender(factors=4, iterations=2).fit(two_taste))
    assert registry.default == "als"
    registry.set_default("popularity")
    registry.save("item_item", ItemItemRecommender().fit(two_taste))
    assert ModelRegistry(tmp_path).default == "popularity"  # a chosen default sticks
    assert json.loads((tmp_path / "registry.json").read_text())["default"] == "popularity"


def test_registry_errors(tmp_path: Path, two_taste: InteractionMatrix) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(UnknownModelError, match="known"):
        registry.train_all(two_taste_dataset(), names=["popularity", "deep_magic"])
    assert registry.names() == []  # nothing trained before the bad name was caught
    with pytest.raises(UnknownModelError, match="no saved model"):
        registry.load("als")
    with pytest.raises(UnknownModelError):
        registry.load("deep_magic")
    with pytest.raises(UnknownModelError):
        registry.set_default("als")
    version = registry.save("popularity", PopularityRecommender().fit(two_taste))
    with pytest.raises(UnknownModelError, match=version):
        registry.load("popularity", "19990101T000000000000Z-deadbeef")
    with pytest.raises(ValueError):
        registry.save("als", PopularityRecommender().fit(two_taste))
