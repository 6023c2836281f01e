"""Training on a small synthetic dataset: lineage, stages, tuning, and bad input that changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data.dataset_store import StoredDataset
from engine.data.schema import Dataset
from engine.models.registry import ModelRegistry
from engine.models.training import TrainingError, TrainingOptions, parse_params, train_models
from engine.models.tuning import SEARCH_SPACES, tune
from tests.support.synthetic_data import DAY, T0, make_dataset, two_taste_dataset

OPTIONS = TrainingOptions(holdout_days=5.0)


def stored(dataset: Dataset, name: str = "shop", version: int = 3) -> StoredDataset:
    return StoredDataset(name=name, version=version, path=None, manifest={}, dataset=dataset)


def registry_files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()} if path.exists() else {}


def test_parse_params_types_targets_and_errors() -> None:
    got = parse_params(["factors=8", "regularization=2.5", "weighting=none", "item_item.similarity=jaccard",
                        "time_decay_half_life_days=none"], ["als", "item_item"])
    assert got == {"als": {"factors": 8, "regularization": 2.5, "weighting": "none"},
                   "item_item": {"similarity": "jaccard", "time_decay_half_life_days": None}}
    # an unqualified key goes to every chosen model that has it
    assert parse_params(["regularization=50"], ["als", "ease"]) == {"als": {"regularization": 50.0},
                                                                     "ease": {"regularization": 50.0}}
    for bad, message in [
        (["factors"], "expected key=value"),
        (["factors=eight"], "als needs int"),
        (["depth=3"], "not a parameter of als"),
        (["ease.dropout=0.1"], "not among the models trained"),
        (["factors=0"], "at least 1"),
        (["weighting=tfidf"], "weighting must be one of"),
    ]:
        with pytest.raises(TrainingError, match=message):
            parse_params(bad, ["als"])


def test_training_registers_versions_with_lineage_and_stages(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    dataset = two_taste_dataset()
    results = train_models(stored(dataset), registry, ["popularity", "ease"], {"ease": {"regularization": 3.0}},
                           OPTIONS)
    assert [(r.model, r.stage) for r in results] == [("popularity", "production"), ("ease", "production")]
    lineage = registry.record("ease", results[1].version).lineage
    events = dataset.events
    interactions = events[events["type"] != "impression"]
    assert lineage["dataset"] == "shop" and lineage["dataset_version"] == 3
    assert lineage["interactions"] == len(interactions)
    assert (lineage["events"], lineage["events_from"], lineage["events_to"]) == (0, None, None)
    assert lineage["data_from"] < lineage["data_to"] and lineage["trained_at"] >= lineage["data_to"]
    assert lineage["params"] == {"regularization": 3.0, "dropout": 0.5}
    assert lineage["code_version"] and lineage["train_seconds"] >= 0
    time_metrics, per_user = lineage["metrics"]["time"], lineage["metrics"]["per_user"]
    assert time_metrics["days"] == 5.0 and per_user["seed"] == 42 and per_user["users"] == 60
    # the time holdout scores the users active before the cut on items new to them after it
    cutoff = float(interactions["timestamp"].max()) - 5 * DAY
    after = interactions[interactions["timestamp"] > cutoff]
    known = set(interactions.loc[interactions["timestamp"] <= cutoff, "user_id"])
    assert time_metrics["cutoff"] == cutoff and 0 < time_metrics["users"] <= len(known & set(after["user_id"]))
    for scores in (time_metrics, per_user):
        assert set(scores) >= {"precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10", "coverage", "novelty"}
        assert 0.0 <= scores["precision_at_10"] <= scores["recall_at_10"] * 10 and 0 < scores["ndcg_at_10"] <= 1
    # the model that serves learnt from everything
    assert registry.load("ease", dataset="shop").recommend("a00", n=3)
    # a second training of the same model waits as a candidate
    again = train_models(stored(dataset), registry, ["ease"], {}, OPTIONS)
    assert again[0].stage == "candidate" and registry.current_version("ease", "shop") == results[1].version


def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    one_user = make_dataset([("solo", "i1", "view", T0, 1.0), ("solo", "i2", "view", T0 + DAY, 1.0),
                             ("ghost", "i1", "impression", T0, 1.0)], ["i1", "i2"])
    with pytest.raises(TrainingError, match="1 user with interactions"):
        train_models(stored(one_user), registry, ["popularity"], {}, OPTIONS)
    with pytest.raises(ValueError, match="RECOPS_EASE_MAX_ITEMS"):
        train_models(stored(two_taste_dataset()), registry, ["popularity", "ease"], {},
                     TrainingOptions(ease_max_items=10))
    no_time = two_taste_dataset()
    no_time.events["timestamp"] = T0
    with pytest.raises(TrainingError, match="time holdout"):
        train_models(stored(no_time), registry, ["popularity"], {}, TrainingOptions(tune_trials=3))
    assert registry_files(registry.models_dir) == {}


def test_tuning_searches_on_the_time_holdout_and_never_does_worse_than_defaults(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    results = train_models(stored(two_taste_dataset()), registry, ["item_item"], {"item_item": {"top_k_neighbours": 5}},
                           TrainingOptions(holdout_days=5.0, tune_trials=6))
    report = results[0].tuning
    assert report is not None and len(report.trials) == 6 and report.sampler.startswith("optuna TPE")
    first_params, first_value = report.trials[0]
    assert first_params == {"top_k_neighbours": 5, "similarity": "cosine", "time_decay_half_life_days": 30.0}
    assert all(p["top_k_neighbours"] == 5 for p, _ in report.trials)  # --param values are held fixed
    assert report.best_value == max(v for _, v in report.trials) >= first_value
    lineage = registry.record("item_item", results[0].version).lineage
    assert lineage["params"] == report.best_params
    assert lineage["tuning"]["trials"] == 6 and lineage["tuning"]["objective"] == "time holdout"
    # each search space only names real parameters of its model
    for name, space in SEARCH_SPACES.items():
        parse_params([f"{p}={spec[1] if spec[0] != 'choice' else spec[1][0]}" for p, spec in space.items()], [name])


def test_tune_is_reproducible() -> None:
    from engine.models.holdout import time_holdout

    split = time_holdout(two_taste_dataset(), 5.0).split
    assert split is not None
    first = tune(split, "ease", 4)
    second = tune(split, "ease", 4)
    assert first.trials == second.trials
