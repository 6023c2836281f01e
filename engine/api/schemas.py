"""Request and response bodies of the API, with the validation rules in one place."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
UserId = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN, examples=["u00042"])]
ListSize = Annotated[int, Field(ge=1, le=100, description="How many items to return (1-100)")]


class RecommendationBody(BaseModel):
    user_id: UserId
    n: ListSize = 10


class RecommendationQuery(BaseModel):
    """The query-string form of a recommendation request; either field may come from the body."""

    user_id: UserId | None = None
    n: ListSize | None = None


class Item(BaseModel):
    item_id: str
    title: str
    category: str
    score: float
    reason: str


class RecommendationResponse(BaseModel):
    user_id: str
    items: list[Item]
    cached: bool
    cache_tier: Literal["l1", "l2", "miss", "fallback"]
    model: str
    experiment: str | None = None
    variant: str | None = None
    fallback: bool
    request_id: str


class EventResponse(BaseModel):
    accepted: bool
    duplicate: bool
    event_id: str


class ErrorResponse(BaseModel):
    detail: str | list[dict[str, object]]


class ComponentHealth(BaseModel):
    status: Literal["ok", "down", "degraded"]
    detail: str = ""


class ServedDataset(BaseModel):
    """The dataset this API serves: its name and version, and the size of what it loaded."""

    name: str
    version: int
    interactions: int
    users: int
    items: int
    data_from: str | None = None
    data_to: str | None = None


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded"]
    redis: ComponentHealth
    models: ComponentHealth
    feature_store: ComponentHealth
    dataset: ServedDataset


class InvalidationResponse(BaseModel):
    removed_keys: int
    scope: str


class WarmBody(BaseModel):
    user_ids: list[UserId] | None = Field(default=None, max_length=10_000)
    top_n: int | None = Field(default=None, ge=1, le=100_000)
    n: ListSize = 10


class WarmResponse(BaseModel):
    users: int
    keys_written: int
    seconds: float


class ReloadResponse(BaseModel):
    models: list[str]
    default: str
