"""ALS fitted by Spark (``pyspark.ml.recommendation.ALS``), saved as the in-process ALS is.

``recops train --model als --engine spark`` fits the same ``ALSRecommender`` — same confidence
matrix, same saved format (``model.json`` + ``arrays.npz``), same fold-in for users it has not
seen — but its factor matrices come from Spark's ALS instead of ``implicit``'s.  The model drives
the fit as always (``ALSRecommender._fit``: the id index, BM25 weights, the confidence matrix
``C = 1 + alpha·w``), handing the matrix to ``SparkALS``, which writes its cells to Parquet, lets
Spark factorise them and collects the factors back.  Serving and experiments cannot tell the two
apart; the lineage says ``engine: "spark"``, the master, and the exact Spark parameters.

The objective, and how the parameters map:

* factors → ``rank``, iterations → ``maxIter``, random_state → ``seed``;
* confidence: Spark's implicit ALS reads a rating ``r`` as preference 1 with confidence
  ``1 + alpha·r``; it is given ``r = C − 1`` and ``alpha = 1``, so every cell carries the very
  confidence ``implicit`` sees (the model's alpha and BM25 weighting are already in ``C``);
* regularisation: ``implicit`` adds ``λ‖x_u‖²`` to every user's (and item's) least squares; Spark
  scales it by the row's number of ratings (ALS-WR, Zhou et al. 2008): ``regParam · n_u · ‖x_u‖²``.
  ``regParam = λ / mean ratings per user`` gives the average user the same ``λ``; users with more
  ratings than average (and popular items) are held tighter than ``implicit`` holds them, users
  with fewer looser.  The ranking quality of the two is compared by a test (within a tolerance),
  not expected to be equal: the initialisation differs too (Spark draws unit-norm random vectors).

Items no one interacted with get no Spark factor: their row is zeros, as ``implicit`` leaves them
(their least squares has no data, so the solution is 0).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import sparse

from engine.data.schema import InteractionMatrix
from engine.models.als import ALSRecommender
from engine.models.base import Recommender
from engine.models.spark_session import spark_failures, spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ENGINE = "spark"


class SparkModelError(ValueError):
    """A model Spark cannot fit: only ALS has a Spark engine."""


def reg_param(regularization: float, confidence: sparse.csr_matrix) -> float:
    """Spark's ``regParam`` for ``implicit``'s ``λ`` on this matrix (see the module docstring)."""
    ratings_per_user = confidence.nnz / max(confidence.shape[0], 1)
    return regularization / max(ratings_per_user, 1.0)


def factor_rows(table: pa.Table, n_rows: int, rank: int) -> np.ndarray:
    """Spark's factor table (``id``, ``features``) as a dense float32 matrix; rows it lacks are zeros."""
    out = np.zeros((n_rows, rank), dtype=np.float32)
    if table.num_rows:
        ids = table.column("id").to_numpy().astype(np.int64)
        features = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        out[ids] = features.reshape(len(ids), rank)
    return out


class SparkALS:
    """``implicit``'s ``AlternatingLeastSquares`` as ``ALSRecommender._fit`` drives it, fitted by Spark.

    ``session`` and ``work_dir`` are bound per run by ``SparkFit`` (``_fit`` constructs the class
    with the model's parameters only).
    """

    session: SparkSession
    work_dir: Path
    fits: list[dict[str, Any]]  # the Spark parameters of every fit of the run, in order

    def __init__(self, factors: int, regularization: float, alpha: float, iterations: int,
                 random_state: int) -> None:
        if alpha != 1.0:  # ALSRecommender hands over C itself, with alpha 1 (see its docstring)
            raise ValueError(f"SparkALS expects the confidence matrix itself (alpha 1), got alpha {alpha}")
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.spark_params: dict[str, Any] = {}
        self.user_factors = np.empty((0, factors), dtype=np.float32)
        self.item_factors = np.empty((0, factors), dtype=np.float32)

    def _cells(self, confidence: sparse.csr_matrix) -> DataFrame:
        """The matrix's cells as Spark reads them: a Parquet file of (user, item, rating = C − 1)."""
        coo = confidence.tocoo()
        table = pa.table({
            "user": pa.array(coo.row, type=pa.int32()),
            "item": pa.array(coo.col, type=pa.int32()),
            "rating": pa.array(coo.data.astype(np.float32) - np.float32(1.0), type=pa.float32()),
        })  # fmt: skip
        path = self.work_dir / f"cells-{uuid.uuid4().hex}.parquet"  # a new file per fit: Spark caches listings
        pq.write_table(table, path)
        return self.session.read.parquet(str(path))

    def fit(self, confidence: sparse.csr_matrix, show_progress: bool = False) -> SparkALS:
        from pyspark.ml.recommendation import ALS

        self.spark_params = {
            "rank": self.factors,
            "maxIter": self.iterations,
            "regParam": reg_param(self.regularization, confidence),
            "alpha": 1.0,
            "implicitPrefs": True,
            "seed": self.random_state,
        }
        # two blocks per core: Spark's default of 10 only adds shuffle overhead on small data
        blocks = max(2, 2 * self.session.sparkContext.defaultParallelism)
        als = ALS(userCol="user", itemCol="item", ratingCol="rating", numUserBlocks=blocks, numItemBlocks=blocks,
                  **self.spark_params)
        fitted = als.fit(self._cells(confidence))
        self.fits.append(self.spark_params)
        n_users, n_items = confidence.shape
        self.user_factors = factor_rows(fitted.userFactors.toArrow(), n_users, self.factors)
        self.item_factors = factor_rows(fitted.itemFactors.toArrow(), n_items, self.factors)
        return self


@dataclass
class SparkFit:
    """Fits ALS models on one Spark session (``fit``) and says how (``lineage``): the training engine
    ``recops train --engine spark`` hands ``engine.models.training``."""

    session: SparkSession
    work_dir: Path
    master: str
    log_path: Path | None = None
    last: dict[str, Any] | None = None

    def fit(self, model: Recommender, interactions: InteractionMatrix) -> Recommender:
        if not isinstance(model, ALSRecommender):
            raise SparkModelError(f"the Spark engine trains ALS only, not {model.name!r}")
        fits: list[dict[str, Any]] = []
        solver = type("BoundSparkALS", (SparkALS,), {"session": self.session, "work_dir": self.work_dir,
                                                      "fits": fits})
        with spark_failures(f"Spark ALS on {self.master}", self.log_path):
            model._fit(interactions, solver)  # the model's own fit, with Spark as its solver
        self.last = fits[-1]
        return model

    def lineage(self) -> dict[str, Any]:
        """What the lineage adds for a version fitted here: the engine, its master, Spark's ALS parameters."""
        return {"engine": ENGINE, "spark": {"master": self.master, "als": self.last}}


@contextmanager
def spark_fit(master: str, memory: str | None, work_root: Path, log_path: Path) -> Iterator[SparkFit]:
    """A ``SparkFit`` on a session of ``master`` with a scratch directory under ``work_root``, both
    gone afterwards.  Raises ``SparkJobError`` when Spark cannot start or a fit fails."""
    work_root.mkdir(parents=True, exist_ok=True)
    with spark_session(master, memory, log_path) as session, tempfile.TemporaryDirectory(dir=work_root) as work:
        yield SparkFit(session, Path(work), master, log_path)
