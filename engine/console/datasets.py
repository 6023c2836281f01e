"""What the Models page's Data section shows and does: the imported datasets, importing uploaded files,
and training models on a dataset — the console's ``recops import``, ``recops datasets list`` and ``recops train``.

Both writes run the engine's own code (``engine.data.dataset_import``, ``engine.models.training``) and
are written to the audit log; the audit log (Redis) must answer before anything is written, as for a
promotion.  Every failure the user can fix comes back as a one-line ``Notice``, never a traceback, and
leaves every stored dataset version and the model registry as they were.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import redis

from engine.console.notices import Notice
from engine.data.dataset_import import DEFAULT_MAX_REJECT_SHARE, ImportOptions, ImportRefused, Rejects, import_dataset
from engine.data.dataset_store import DEMO, DatasetStore, datasets_root
from engine.data.schema import DatasetError
from engine.models.registry import MODEL_CLASSES, PRODUCTION, ModelRegistry
from engine.models.training import ALL, TRAINING_REFUSALS, TrainingResult, plan_training
from engine.runtime import Engine

UPLOAD_TYPES = ["csv", "tsv", "parquet", "pq", "gz", "bz2", "zst"]  # what import_sources reads (by extension)
DATASET_COLUMNS = ["name", "current version", "versions", "interactions", "users", "items", "from", "to", "created"]
REJECT_COLUMNS = ["file", "row", "reason", "values"]
RESULT_COLUMNS = ["model", "version", "stage", "P@10 time", "NDCG@10 time", "P@10 per-user", "NDCG@10 per-user",
                  "fit s"]
_SAFE_FILE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Upload:
    """An uploaded file: the name it had on the operator's machine (its extension says its format) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Outcome:
    """What a write did (or why nothing was done) and the table that goes with it (may be empty)."""

    notice: Notice
    table: pd.DataFrame = field(default_factory=pd.DataFrame)


# ----------------------------------------------------------------------------- the datasets


def store(engine: Engine) -> DatasetStore:
    return DatasetStore(datasets_root(engine.settings))


def datasets_frame(engine: Engine) -> pd.DataFrame:
    """One row per imported dataset: its current version, sizes and time range."""
    rows = []
    for r in store(engine).listing():
        span = r["time_range"] or {}
        rows.append([r["name"], f"v{r['current_version']}", len(r["versions"]), r["interactions"], r["users"],
                     r["items"], span.get("min_utc"), span.get("max_utc"), r["created_at"]])
    return pd.DataFrame(rows, columns=DATASET_COLUMNS)


def training_choices(engine: Engine) -> list[str]:
    """Datasets models can be trained on: the served one first, then the demo world and every imported one."""
    names = [engine.dataset.name, DEMO, *store(engine).names()]
    return list(dict.fromkeys(names))


MODEL_CHOICES = [ALL, *MODEL_CLASSES]


# ----------------------------------------------------------------------------- import


def _audit_unreachable(engine: Engine) -> Notice | None:
    try:
        engine.redis.ping()
    except redis.RedisError as exc:
        return Notice("error", f"The audit log (Redis) does not answer ({exc}); nothing was changed.")
    return None


def _saved(folder: Path, role: str, upload: Upload) -> Path:
    """``upload`` written under ``folder`` with its own (sanitised) name, which keeps its extension."""
    name = _SAFE_FILE.sub("_", Path(upload.name).name).lstrip(".") or role
    path = folder / role / name
    path.parent.mkdir()
    path.write_bytes(upload.data)
    return path


def rejects_frame(files: Sequence[Rejects | None]) -> pd.DataFrame:
    """The first rejected rows of each file: which file, which row, why, and the values read."""
    rows = []
    for rejects in files:
        if rejects is None:
            continue
        for example in rejects.examples:
            values = " ".join(f"{k}={v!r}" for k, v in example.values.items())
            rows.append([rejects.source.name, example.row, example.reason, values])
    return pd.DataFrame(rows, columns=REJECT_COLUMNS)


def _rejected_text(rejects: Rejects | None) -> str:
    if rejects is None or not rejects.rejected:
        return ""
    return f" {rejects.rejected:,} of {rejects.read:,} rows of {rejects.source.name} rejected ({rejects.share:.2%})."


def import_upload(engine: Engine, actor: str, name: str, interactions: Upload | None, items: Upload | None,
                  max_reject_share: float = DEFAULT_MAX_REJECT_SHARE) -> Outcome:
    """Import the uploaded files as the next version of dataset ``name``, as ``actor``; audited."""
    if interactions is None:
        return Outcome(Notice("error", "Choose an interactions file to import; nothing was changed."))
    unreachable = _audit_unreachable(engine)
    if unreachable is not None:
        return Outcome(unreachable)
    with tempfile.TemporaryDirectory(prefix="recops-upload-") as tmp:
        folder = Path(tmp)
        try:
            options = ImportOptions(max_reject_share=max_reject_share)
            result = import_dataset(store(engine), name.strip(), _saved(folder, "interactions", interactions),
                                    None if items is None else _saved(folder, "items", items), options)
        except ImportRefused as exc:
            return Outcome(Notice("error", f"{_readable(exc, folder)}. Nothing was imported."),
                           rejects_frame(exc.rejects))
        except DatasetError as exc:
            return Outcome(Notice("error", f"{_readable(exc, folder)}. Nothing was imported."))
        except OSError as exc:
            return Outcome(Notice("error", f"The import failed, nothing was stored: {_readable(exc, folder)}."))
    m = result.manifest
    span = m["time_range"]
    when = f", {span['min_utc']} … {span['max_utc']}" if span else ", no timestamps"
    text = (f"Imported **{result.name}** v{result.version}: {m['rows']['interactions']:,} interactions, "
            f"{m['users']:,} users, {m['rows']['items']:,} items{when}.")
    text += _rejected_text(result.items) + _rejected_text(result.interactions)
    engine.audit.record(actor, "import_dataset", target=f"{result.name}:v{result.version}",
                        detail=f"{m['rows']['interactions']} interactions, {m['rows']['items']} items")
    return Outcome(Notice("success", text), rejects_frame([result.items, result.interactions]))


def _readable(exc: BaseException, folder: Path) -> str:
    """The error's one line, naming uploaded files as the operator knows them (not by their temporary path)."""
    text = " ".join(str(exc).split()).rstrip(".")
    return re.sub(re.escape(str(folder)) + r"/(interactions|items)/", "", text)


# ----------------------------------------------------------------------------- training


def param_lines(text: str) -> list[str]:
    """``key=value`` lines (blank lines and ``#`` comments skipped) as ``parse_params`` takes them."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _score(result: TrainingResult, holdout: str, key: str) -> float | None:
    value = result.lineage.get("metrics", {}).get(holdout, {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def results_frame(results: Sequence[TrainingResult]) -> pd.DataFrame:
    rows: list[list[Any]] = [
        [r.model, r.version, r.stage, _score(r, "time", "precision_at_10"), _score(r, "time", "ndcg_at_10"),
         _score(r, "per_user", "precision_at_10"), _score(r, "per_user", "ndcg_at_10"),
         r.lineage.get("train_seconds")]
        for r in results
    ]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def train(engine: Engine, actor: str, dataset: str, model: str, params_text: str) -> Outcome:
    """Train ``model`` (or ``all``) on the current version of ``dataset`` as ``recops train`` does, as
    ``actor``; the new versions are registered with their lineage and the run is audited."""
    unreachable = _audit_unreachable(engine)
    if unreachable is not None:
        return Outcome(unreachable)
    settings = engine.settings
    try:
        plan = plan_training(settings, dataset, model=model, param_pairs=param_lines(params_text))
        results = plan.run(ModelRegistry(settings.models_dir))
    except TRAINING_REFUSALS as exc:
        return Outcome(Notice("error", f"{' '.join(str(exc).split()).rstrip('.')}. Nothing was trained."))
    stored, logged = plan.stored, plan.logged
    versions = ", ".join(f"{r.model} {r.version} ({r.stage})" for r in results)
    engine.audit.record(actor, "train_models", target=f"{stored.name}:v{stored.version}", keys=0, detail=versions)
    if stored.name == engine.dataset.name and any(r.stage == PRODUCTION for r in results):
        engine.reload_models()  # a model's first version serves at once here; serving processes watch the registry
    learnt = f" and {logged.count:,} logged events" if logged.count else ""
    text = f"Trained on **{stored.name}** v{stored.version}{learnt}: {versions}."
    if plan.notes:
        text += " " + "; ".join(plan.notes) + "."
    return Outcome(Notice("success", text), results_frame(results))
