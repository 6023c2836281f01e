"""Operator endpoints under /admin, behind the bearer token; every call is audited."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from starlette.concurrency import run_in_threadpool

from engine.api.deps import EngineDep, require_admin
from engine.api.schemas import ID_PATTERN, InvalidationResponse, ReloadResponse, WarmBody, WarmResponse

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/cache/invalidate/user/{user_id}", response_model=InvalidationResponse)
def invalidate_user(
    engine: EngineDep, user_id: str = Path(min_length=1, max_length=128, pattern=ID_PATTERN)
) -> InvalidationResponse:
    removed = engine.service.invalidate_user(user_id, reason="admin")
    engine.audit.record("api-admin", "invalidate_user", target=user_id, keys=removed)
    return InvalidationResponse(removed_keys=removed, scope=f"user:{user_id}")


@router.post("/cache/invalidate/all", response_model=InvalidationResponse)
def invalidate_all(engine: EngineDep) -> InvalidationResponse:
    removed = engine.cache.invalidate_all(reason="admin")
    engine.audit.record("api-admin", "invalidate_all", target="all", keys=removed)
    return InvalidationResponse(removed_keys=removed, scope="all")


@router.post("/cache/warm", response_model=WarmResponse)
async def warm(engine: EngineDep, body: WarmBody) -> WarmResponse:
    # duplicates dropped: each id would otherwise be computed and written again
    users = list(dict.fromkeys(body.user_ids)) if body.user_ids else await run_in_threadpool(
        engine.features.top_active_users, body.top_n or 100
    )
    # the lists each user is served: their experiment arm's (both rankers' when interleaved), else the defaults
    report = await run_in_threadpool(engine.warm_now, list(users), body.n)
    engine.audit.record("api-admin", "warm", target=f"{len(users)} users", keys=report.keys_written)
    return WarmResponse(users=report.users, keys_written=report.keys_written, seconds=report.seconds,
                        lists=report.lists)


@router.post("/models/reload", response_model=ReloadResponse)
def reload_models(engine: EngineDep) -> ReloadResponse:
    engine.reload_models()
    engine.audit.record("api-admin", "reload_models", target=engine.service.default_model)
    return ReloadResponse(models=sorted(engine.service.models), default=engine.service.default_model)
