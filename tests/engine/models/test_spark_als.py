"""ALS trained on Spark (``local[2]``): as good as the in-process ALS within a tolerance, saved and
served like any version, and a failing job that leaves the registry as it was.

One Spark session serves the module (``spark``; starting one costs ~9 s).  The failing job runs
first, before that session exists: a JVM holds one SparkContext at a time, and ``spark_session``
reuses a running session only when it runs on the master asked for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy import sparse

from engine.data.dataset_store import StoredDataset
from engine.models.als import ALSRecommender
from engine.models.registry import ModelRegistry
from engine.models.spark_als import SparkFit, factor_rows, reg_param, spark_fit
from engine.models.training import TrainingOptions, TrainingResult, train_models
from tests.conftest import require_binary
from tests.support.cli import Recops
from tests.support.imported_data import NAME, import_small_dataset
from tests.support.synthetic_data import two_taste_dataset

MASTER = "local[2]"
# small enough for a few seconds per Spark fit on two cores; the same for both engines
PARAMS = {"factors": 16, "iterations": 6}
OPTIONS = TrainingOptions(holdout_days=7.0)
# Spark's ALS regularises each row by λ·(its number of ratings) (ALS-WR) where implicit uses one λ,
# and starts from other random factors (engine/models/spark_als.py): the two are not equal, only
# close — on ml-100k with the defaults, per-user P@10 0.408 against 0.430, NDCG@10 0.456 against
# 0.496; on a 400-user demo world NDCG@10 0.84 of implicit's.  The bound leaves room for that gap
# and no more.  On this world, where taste is two blocks, the in-process ALS scores P@10 0.089 /
# NDCG@10 0.194 on the per-user holdout, popularity 0.038 / 0.080, and ALS with its user factors
# shuffled among users 0.045 / 0.099: a Spark fit that lost the id mapping or learnt nothing stays
# near half of ALS's score and fails the bound.  (The demo world would not tell them apart:
# popularity nearly matches ALS there.)
TOLERANCE = 0.75
HOLDOUT = "per_user"  # the time holdout of so small a world has too few users to compare engines on
WORLD = {"n_users_per_group": 150, "n_items_per_group": 40, "items_per_user": 12}


@pytest.fixture(autouse=True, scope="module")
def java() -> None:
    """Spark runs on the JVM (pyspark itself is the ``spark`` extra, which ``make test`` installs)."""
    require_binary("java")


def registry_files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()} if path.exists() else {}


@pytest.fixture
def shop(tmp_path: Path, recops: Recops) -> Path:
    """The two-taste shop imported into a data dir that ``recops`` uses; no models yet."""
    data = tmp_path / "data"
    import_small_dataset(data)
    recops.env(RECOPS_DATA_DIR=str(data), RECOPS_DATASET=NAME)
    return data


def test_a_spark_job_that_fails_leaves_the_registry_unchanged(shop: Path, recops: Recops) -> None:
    code, _, err = recops(["train", "--dataset", NAME, "--model", "als", "--json"])  # in process: production
    assert code == 0, err
    before = registry_files(shop / "models")
    recops.env(RECOPS_SPARK_MASTER="nowhere://at-all")
    code, out, err = recops(["train", "--dataset", NAME, "--model", "als", "--engine", "spark", "--json"])
    assert (code, out) == (1, "")
    assert len(err.strip().splitlines()) == 1 and "Spark on nowhere://at-all failed" in err, err
    assert "nothing was registered" in err and "Traceback" not in err
    assert registry_files(shop / "models") == before
    # its scratch files are gone too; what Spark said is in its log
    assert not any((shop / "spark").iterdir())
    assert (shop / "logs" / "spark.log").exists()


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkFit]:
    folder = tmp_path_factory.mktemp("spark")
    with spark_fit(MASTER, None, folder / "work", folder / "spark.log") as fit:
        yield fit


@pytest.fixture(scope="module")
def world() -> StoredDataset:
    return StoredDataset(name="world", version=2, path=None, manifest={}, dataset=two_taste_dataset(**WORLD))


@pytest.fixture(scope="module")
def trained(spark: SparkFit, world: StoredDataset, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[ModelRegistry, TrainingResult, TrainingResult]:
    """ALS trained on the same world in process, then on Spark, into one registry."""
    registry = ModelRegistry(tmp_path_factory.mktemp("models"))
    [local] = train_models(world, registry, ["als"], {"als": PARAMS}, OPTIONS)
    [on_spark] = train_models(world, registry, ["als"], {"als": PARAMS}, OPTIONS, engine=spark)
    return registry, local, on_spark


def test_ranking_quality_is_within_a_tolerance_of_the_in_process_als(
        trained: tuple[ModelRegistry, TrainingResult, TrainingResult]) -> None:
    _, local, on_spark = trained
    here, there = local.lineage["metrics"][HOLDOUT], on_spark.lineage["metrics"][HOLDOUT]
    assert here["users"] == there["users"] == 300  # the same split, scored for the same users
    for metric in ("precision_at_10", "ndcg_at_10"):
        assert there[metric] >= TOLERANCE * here[metric], (metric, there[metric], here[metric])
    # both holdouts were scored on Spark fits, not copied from the in-process run
    assert there["ndcg_at_10"] != here["ndcg_at_10"]
    assert on_spark.lineage["metrics"]["time"]["users"] == local.lineage["metrics"]["time"]["users"]


def test_the_lineage_is_the_in_process_one_plus_the_engine(
        trained: tuple[ModelRegistry, TrainingResult, TrainingResult], world: StoredDataset) -> None:
    registry, local, on_spark = trained
    lineage = registry.record("als", on_spark.version).lineage
    assert set(lineage) - set(local.lineage) == {"engine", "spark"}
    assert set(local.lineage) <= set(lineage)
    same = ("dataset", "dataset_version", "interactions", "data_from", "data_to", "events", "params")
    assert {k: lineage[k] for k in same} == {k: local.lineage[k] for k in same}
    assert lineage["engine"] == "spark" and lineage["spark"]["master"] == MASTER
    als = lineage["spark"]["als"]
    assert (als["rank"], als["maxIter"], als["implicitPrefs"], als["alpha"]) == (16, 6, True, 1.0)
    # regParam gives the average user implicit's λ (30 by default): λ / mean ratings per user
    matrix = world.dataset.interactions().matrix
    assert als["regParam"] == pytest.approx(30.0 / (matrix.nnz / matrix.shape[0]))
    assert on_spark.stage == "candidate" and local.stage == "production"


def test_the_spark_version_loads_and_serves_like_any_version(
        trained: tuple[ModelRegistry, TrainingResult, TrainingResult], world: StoredDataset) -> None:
    registry, local, on_spark = trained
    model = registry.load("als", on_spark.version, dataset="world")
    reference = registry.load("als", local.version, dataset="world")
    assert isinstance(model, ALSRecommender) and model.version == on_spark.version
    assert model.params() == reference.params()
    assert model.item_factors.shape == reference.item_factors.shape and model.item_factors.dtype == np.float32
    assert list(model.item_ids) == list(reference.item_ids) and model.user_index == reference.user_index
    np.testing.assert_array_equal(model.idf, reference.idf)  # the same BM25 weights: one definition
    user = next(iter(model.user_index))
    top = model.recommend(user, n=10)
    assert len(top) == 10 and not set(dict(top)) & set(model.item_ids[model.user_items[model.user_index[user]]])
    # a user it never saw is folded in from their history, as with any ALS version
    history = [item for item, _ in top[:3]]
    assert model.recommend("newcomer", n=5, history=history)
    # the registry serves it once promoted
    registry.promote("als", on_spark.version)
    assert registry.load("als", dataset="world").version == on_spark.version


def test_recops_train_engine_spark(shop: Path, recops: Recops, spark: SparkFit) -> None:
    code, out, err = recops(["train", "--dataset", NAME, "--model", "als", "--engine", "spark", "--json"])
    assert code == 0 and err == "", err
    [row] = json.loads(out)
    assert row["stage"] == "production" and row["lineage"]["engine"] == "spark"
    assert row["lineage"]["spark"]["master"] == MASTER  # the default RECOPS_SPARK_MASTER
    assert row["lineage"]["metrics"]["per_user"]["precision_at_10"] > 0
    model = ModelRegistry(shop / "models").load("als", dataset=NAME)
    top = [item for item, _ in model.recommend("a00", n=5)]
    assert sum(item.startswith("A") for item in top) >= 4, top  # it learnt the shop's two tastes
    assert not any((shop / "spark").iterdir())  # the scratch Parquet is gone

    before = registry_files(shop / "models")
    for argv, message in [
        (["--model", "popularity"], "--engine spark trains als only, not popularity"),
        ([], "--engine spark trains als only"),  # --model all
        (["--model", "als", "--tune", "3"], "--engine spark does not tune"),
    ]:
        code, out, err = recops(["train", "--dataset", NAME, "--engine", "spark", *argv])
        assert (code, out) == (2, "") and len(err.strip().splitlines()) == 1 and message in err, err
    assert registry_files(shop / "models") == before


def test_factor_rows_put_each_spark_row_at_its_index_and_zeros_where_spark_has_none() -> None:
    table = pa.table({"id": pa.array([2, 0], type=pa.int32()),
                      "features": pa.array([[1.0, 2.0], [3.0, 4.0]], type=pa.list_(pa.float32()))})
    np.testing.assert_array_equal(factor_rows(table, 4, 2), [[3, 4], [0, 0], [1, 2], [0, 0]])
    assert factor_rows(table.slice(0, 0), 2, 3).shape == (2, 3)


def test_reg_param_gives_the_average_user_implicits_lambda() -> None:
    confidence = sparse.csr_matrix(np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]]))  # 3 ratings, 2 users
    assert reg_param(30.0, confidence) == pytest.approx(30.0 / 1.5)
