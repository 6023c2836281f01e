"""Datasets: the list and a version's manifest (public reads), and an upload that imports a new
version (``POST /admin/datasets/{name}/import``, behind the admin token).

The routes only translate HTTP to ``engine.data`` calls: the rows are the ones ``recops datasets
list --json`` prints, and the upload goes through the same ``import_dataset`` as ``recops import``.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, UploadFile, status
from starlette.concurrency import run_in_threadpool

from engine.api.deps import EngineDep, require_admin
from engine.api.schemas import (
    DATASET_NAME_PATTERN,
    DatasetManifest,
    DatasetSummary,
    ErrorResponse,
    ImportResponse,
    RejectSummary,
)
from engine.data.dataset_import import DEFAULT_MAX_REJECT_SHARE, ImportOptions, import_dataset
from engine.data.dataset_store import (
    DEMO,
    DatasetNotFoundError,
    DatasetStore,
    datasets_root,
    read_manifest,
)
from engine.data.schema import DatasetError
from engine.runtime import Engine

log = logging.getLogger(__name__)

router = APIRouter(tags=["datasets"])
admin_router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

DatasetPath = Annotated[str, Path(pattern=DATASET_NAME_PATTERN, description="dataset name")]
_UPLOAD_CHUNK = 1 << 20
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def one_line(message: object) -> str:
    return " ".join(str(message).split())


@router.get("/datasets", response_model=list[DatasetSummary])
def list_datasets(engine: EngineDep) -> list[dict[str, Any]]:
    """Imported datasets with their current version's row counts (the demo world is always there besides)."""
    try:
        return DatasetStore(datasets_root(engine.settings)).listing()
    except DatasetError as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, one_line(exc)) from exc


@router.get("/datasets/{name}", response_model=DatasetManifest,
            responses={404: {"model": ErrorResponse}, 400: {"model": ErrorResponse}})
def show_dataset(
    engine: EngineDep, name: DatasetPath,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="default: the current version")] = None,
) -> dict[str, Any]:  # fmt: skip
    """The manifest of a dataset version: row counts, time range, source files and their checksums."""
    if name == DEMO == engine.stored.name and version in (None, 1):
        # served, so in memory; rebuilding it means loading the world.  (An imported dataset is read
        # from disk: a newer version than the one served may be current by now.)
        return engine.stored.manifest
    try:
        return read_manifest(engine.settings, name, version)
    except DatasetNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, one_line(exc)) from exc
    except DatasetError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, one_line(exc)) from exc


def _upload_path(folder: FilePath, role: str, upload: UploadFile) -> FilePath:
    """Where an upload is saved: under its own file name (the importer reads the type from its
    extension, and error messages name it), made safe for a path."""
    name = _UNSAFE_FILENAME.sub("_", FilePath(upload.filename or "").name)[-120:]
    if not name.strip("."):
        name = role  # no usable name: no extension either, which the importer refuses by name
    (folder / role).mkdir()
    return folder / role / name


def _save(upload: UploadFile, path: FilePath) -> None:
    upload.file.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out, _UPLOAD_CHUNK)


@admin_router.post("/datasets/{name}/import", response_model=ImportResponse, status_code=status.HTTP_201_CREATED,
                   responses={400: {"model": ErrorResponse}})
async def import_upload(
    engine: EngineDep,
    name: DatasetPath,
    interactions: Annotated[UploadFile, File(description="CSV/TSV (.gz too) or Parquet: user_id, item_id, ...")],
    items: Annotated[UploadFile | None, File(description="CSV/TSV or Parquet: item_id, title, ...")] = None,
    users: Annotated[UploadFile | None, File(description="CSV/TSV or Parquet: user_id, attributes...")] = None,
    max_reject_share: Annotated[float, Form(ge=0.0, le=1.0)] = DEFAULT_MAX_REJECT_SHARE,
) -> ImportResponse:
    """Import the uploaded files as the next version of ``name``, as ``recops import`` does.

    Bad files are a 400 with the importer's one-line message; no version is added or changed then.
    """
    store = DatasetStore(datasets_root(engine.settings))
    # the uploads are streamed to disk first: the importer streams files, never a request body
    with tempfile.TemporaryDirectory(prefix="recops-upload-") as tmp:
        folder = FilePath(tmp)
        uploads = {"interactions": interactions, "items": items, "users": users}
        files = {role: upload for role, upload in uploads.items() if upload is not None}
        paths = {role: _upload_path(folder, role, upload) for role, upload in files.items()}
        for role, upload in files.items():
            await run_in_threadpool(_save, upload, paths[role])
        try:
            result = await run_in_threadpool(
                functools.partial(import_dataset, users=paths.get("users")), store, name, paths["interactions"],
                paths.get("items"), ImportOptions(max_reject_share=max_reject_share),
            )  # fmt: skip
        except DatasetError as exc:
            # messages name the uploaded file, not the temporary directory it was saved in
            raise HTTPException(status.HTTP_400_BAD_REQUEST, one_line(str(exc).replace(f"{folder}/", ""))) from exc
        except OSError as exc:
            log.exception("import of %s failed", name)
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR,
                                f"import failed, nothing was stored: {type(exc).__name__}") from exc
    m = result.manifest
    audit_quietly(engine, "import_dataset", f"{name}:v{result.version}", m["rows"]["interactions"])
    return ImportResponse(
        name=result.name, version=result.version, interactions=m["rows"]["interactions"], users=m["users"],
        items=m["rows"]["items"], time_range=m["time_range"],
        rejects={role: RejectSummary.model_validate(r.summary()) if r is not None else None
                 for role, r in (("interactions", result.interactions), ("items", result.items),
                                 ("users", result.users))},
    )  # fmt: skip


def audit_quietly(engine: Engine, action: str, target: str, keys: int = 0, detail: str = "") -> None:
    """Audit a change that is already done (an import, a training): an unreachable audit log is
    logged, not turned into an error that would read as if nothing had been stored."""
    try:
        engine.audit.record("api-admin", action, target=target, keys=keys, detail=detail)
    except redis.RedisError as exc:
        log.warning("audit log unavailable, %s %s not recorded: %s", action, target, type(exc).__name__)
