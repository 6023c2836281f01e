"""FastAPI dependencies: the engine built at start-up and the admin guard."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.runtime import Engine

_bearer = HTTPBearer(auto_error=False, description="RECOPS_ADMIN_TOKEN")


async def get_engine(request: Request) -> Engine:
    # async on purpose: FastAPI runs a plain ``def`` dependency in the thread pool, and that hop
    # cost more than the whole cache-hit request
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def require_admin(
    engine: EngineDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Admin routes: disabled (403) with no token configured, 401 without the right bearer token."""
    token = engine.settings.admin_token
    if token is None or not token.get_secret_value():
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin endpoints are disabled: RECOPS_ADMIN_TOKEN is not set")
    supplied = credentials.credentials if credentials else ""
    # constant-time comparison so response timing does not reveal how much of a guess was right
    if not hmac.compare_digest(supplied.encode(), token.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"}
        )
