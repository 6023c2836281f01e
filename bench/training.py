"""Model quality and training time on MovieLens-100k, Microsoft Recommenders' protocol.

    python -m bench training [--path data/ml-100k] [--repeat 3] [--seeds 0,1,2,3]

Per-user stratified 75/25 split with seed 42, k = 10, every test rating relevant, the user's
training items never recommended (``engine.models.evaluation``).  Each configuration is fitted
``--repeat`` times: the table shows the metrics (identical on every fit: all models are seeded) and
the median fit time, as a ratio to ALS's measured in the same run.  The last table times a whole
``recops train`` of the best model (two holdouts scored, then the fit on everything).

``--seeds`` adds how much the protocol itself moves the numbers: ALS and EASE on the splits of other
seeds (the split, not the model, is what changes).

The goal (issue 14): precision@10 >= 0.43 and NDCG@10 >= 0.49 from the best model, trained in
under 10 s on 2 cores.  Published best on this protocol: BiVAE 0.412 / 0.475.

Needs ml-100k on disk: ``recops fetch-movielens --to data/ml-100k`` (from the recbole wheel on PyPI).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import table
from engine.data.dataset_store import StoredDataset
from engine.data.fetch import DEFAULT_TARGET, has_ml100k
from engine.data.movielens import load_movielens
from engine.data.schema import Dataset
from engine.models.evaluation import EvaluationSplit, evaluate_model
from engine.models.registry import ModelRegistry
from engine.models.training import TrainingOptions, train_models

K = 10
GOAL_PRECISION, GOAL_NDCG, GOAL_SECONDS = 0.43, 0.49, 10.0
BASELINE = "als"
CONFIGURATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("popularity", {}),
    ("item_item", {}),
    ("als", {}),
    ("ease", {"regularization": 300.0, "dropout": 0.0}),  # Steck's plain EASE
    ("ease", {}),  # the defaults: dropout-emphasised regulariser (EDLAE)
)


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "defaults"


def measure(split: EvaluationSplit, repeat: int) -> list[dict[str, Any]]:
    rows = []
    for name, params in CONFIGURATIONS:
        reports = [evaluate_model(split, name, K, params) for _ in range(repeat)]
        rows.append({"model": name, "params": _params(params), "precision": reports[0].precision,
                     "ndcg": reports[0].ndcg, "seconds": statistics.median(r.train_seconds for r in reports)})
    return rows


def print_seed_spread(dataset: Dataset, seeds: list[int]) -> None:
    rows: list[list[object]] = []
    scores: dict[str, list[tuple[float, float]]] = {"als": [], "ease": []}
    for seed in [*seeds, 42]:
        split = EvaluationSplit.build(dataset, seed=seed)
        reports = {name: evaluate_model(split, name, K) for name in scores}
        for name, r in reports.items():
            scores[name].append((r.precision, r.ndcg))
        rows.append([seed, *(f"{r.precision:.4f} / {r.ndcg:.4f}" for r in reports.values())])
    rows.append(["mean", *(f"{statistics.mean(p for p, _ in v):.4f} / {statistics.mean(n for _, n in v):.4f}"
                           for v in scores.values())])
    print(table(["split seed", "als P@10 / NDCG@10", "ease P@10 / NDCG@10"], rows))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench training")
    parser.add_argument("--path", type=Path, default=DEFAULT_TARGET, help="ml-100k folder (u.data, u.item)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", default="", help="also score ALS and EASE on the splits of these seeds (0,1,2)")
    args = parser.parse_args(argv)
    if not has_ml100k(args.path):
        print(f"skipped: no MovieLens-100k in {args.path}; run `recops fetch-movielens --to {args.path}` first")
        return 0
    dataset = load_movielens(args.path)
    split = EvaluationSplit.build(dataset, seed=42)
    rows = measure(split, args.repeat)
    base = next(r["seconds"] for r in rows if r["model"] == BASELINE and r["params"] == "defaults")
    print(f"ml-100k, per-user 75/25 split (seed 42), k={K}, {len(split.test_users)} test users; "
          f"fit seconds: median of {args.repeat}")
    print(table(["model", "params", "P@10", "NDCG@10", "fit s", f"fit / {BASELINE}"],
                [[r["model"], r["params"], f"{r['precision']:.4f}", f"{r['ndcg']:.4f}", f"{r['seconds']:.2f}",
                  f"{r['seconds'] / base:.2f}"] for r in rows]))
    best = max(rows, key=lambda r: (r["ndcg"], r["precision"]))
    met = best["precision"] >= GOAL_PRECISION and best["ndcg"] >= GOAL_NDCG and best["seconds"] < GOAL_SECONDS
    print(f"goal P@10 >= {GOAL_PRECISION}, NDCG@10 >= {GOAL_NDCG}, fit < {GOAL_SECONDS:g} s: "
          f"{'met' if met else 'NOT met'} by the best row ({best['model']} {best['params']}: "
          f"{best['precision']:.4f} / {best['ndcg']:.4f})")

    if args.seeds:
        print_seed_spread(dataset, [int(s) for s in args.seeds.split(",")])

    # the whole `recops train` of the best model: both holdouts, then the fit on everything
    with tempfile.TemporaryDirectory(prefix="recops-bench-train-") as tmp:
        stored = StoredDataset(name="ml-100k", version=1, path=args.path, manifest={}, dataset=dataset)
        started = time.perf_counter()
        result = train_models(stored, ModelRegistry(Path(tmp)), [best["model"]], {}, TrainingOptions())[0]
        total = time.perf_counter() - started
    metrics = result.lineage["metrics"]
    print(table(["recops train", "time P@10", "time NDCG@10", "time users", "per-user P@10", "final fit s", "total s"],
                [[result.model, f"{metrics['time']['precision_at_10']:.4f}", f"{metrics['time']['ndcg_at_10']:.4f}",
                  metrics["time"]["users"], f"{metrics['per_user']['precision_at_10']:.4f}",
                  f"{result.lineage['train_seconds']:.2f}", f"{total:.2f}"]]))
    return 0
