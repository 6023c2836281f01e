"""Request and response bodies of the API, with the validation rules in one place."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
UserId = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN, examples=["u00042"])]
LIST_SIZE_MIN, LIST_SIZE_MAX = 1, 100
ListSize = Annotated[int, Field(ge=LIST_SIZE_MIN, le=LIST_SIZE_MAX,
                                description=f"How many items to return ({LIST_SIZE_MIN}-{LIST_SIZE_MAX})")]


IncludeTeams = Annotated[bool, Field(
    description="For a user in an interleaving experiment: also answer which ranker (A = control, "
                "B = treatment) contributed each item, as `teams` (hidden by default: clients must not "
                "show or act on it)")]


class RecommendationBody(BaseModel):
    user_id: UserId
    n: ListSize = 10
    include_teams: IncludeTeams = False


class RecommendationQuery(BaseModel):
    """The query-string form of a recommendation request; either field may come from the body."""

    user_id: UserId | None = None
    n: ListSize | None = None
    include_teams: IncludeTeams | None = None


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
    teams: list[Literal["A", "B"]] | None = Field(
        default=None, description="Only with include_teams, for an interleaved list: the ranker of each item")


class EventResponse(BaseModel):
    accepted: bool
    duplicate: bool
    event_id: str
    spooled: bool = Field(
        default=False,
        description="Redis was unreachable: the event is kept in the server's local spool (answered 202) "
        "and reaches Redis, in order, once it is back",
    )


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
    # lists computed per arm: "default" for users in no experiment, else "experiment/variant"
    lists: dict[str, int] = {}


class ReloadResponse(BaseModel):
    models: list[str]
    default: str


# ---- datasets and models ------------------------------------------------------------------------

DATASET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MODEL_NAME_PATTERN = r"^[a-z_]{1,32}$"
VERSION_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
DatasetName = Annotated[str, Field(pattern=DATASET_NAME_PATTERN, examples=["ml-100k"])]


class TimeRange(BaseModel, extra="allow"):
    min_utc: str
    max_utc: str


class DatasetSummary(BaseModel):
    """An imported dataset as ``recops datasets list --json`` shows it (its current version's counts)."""

    name: str
    current_version: int
    versions: list[int]
    interactions: int
    users: int
    items: int
    time_range: TimeRange | None = None
    created_at: str | None = None


class RowCounts(BaseModel):
    interactions: int
    items: int


class DatasetManifest(BaseModel, extra="allow"):
    """A dataset version's manifest (``engine/data/dataset_store.py``); fields beyond these are kept as written."""

    name: str
    version: int
    rows: RowCounts
    users: int
    time_range: TimeRange | None = None


class ModelVersion(BaseModel, extra="allow"):
    """One saved model version as ``recops models list --json`` gives it; further lineage fields are kept."""

    model: str
    version: str
    number: int | None = Field(default=None, description="1-based among the model's versions on its dataset (als@7)")
    dataset: str
    stage: Literal["production", "candidate", "archived"]
    trained_at: str | None = None
    interactions: int | None = None
    events: int | None = None
    params: dict[str, object] = Field(default_factory=dict)
    metrics: dict[str, object] = Field(default_factory=dict)


class PromoteBody(BaseModel):
    version: str = Field(pattern=VERSION_PATTERN, examples=["20260101T000000000000Z-abcdef12"])
    dataset: DatasetName | None = Field(default=None, description="refuse unless the version was trained on it")


class RollbackBody(BaseModel):
    dataset: DatasetName | None = Field(default=None, description="default: the dataset this API serves")


class StageChangeResponse(BaseModel):
    action: Literal["promote", "rollback"]
    model: str
    dataset: str
    version: str = Field(description="production after the change")
    previous: str | None = Field(description="production before it (now archived)")
    served: dict[str, str] = Field(description="model → version this process serves after the change")


class RejectSummary(BaseModel):
    read: int
    rejected: int
    share: float
    by_reason: dict[str, int]


class ImportResponse(BaseModel):
    name: str
    version: int
    interactions: int
    users: int
    items: int
    time_range: TimeRange | None = None
    rejects: dict[str, RejectSummary | None]


TrainParam = str | int | float | bool | None


class TrainBody(BaseModel):
    dataset: DatasetName
    dataset_version: int | None = Field(default=None, ge=1, description="default: the current version")
    model: str = Field(default="all", pattern=r"^[a-z_]{1,32}$", description="a model name or all")
    params: dict[str, TrainParam] = Field(
        default_factory=dict, max_length=50,
        description="hyper-parameters as recops train --param: key or model.key → value",
    )  # fmt: skip
    tune: int = Field(default=0, ge=0, le=200, description="trials of hyper-parameter search (Optuna TPE)")
    holdout_days: float | None = Field(default=None, gt=0, le=36_500, description="default RECOPS_HOLDOUT_DAYS")
    events: bool = Field(default=True, description="learn from the events logged for the dataset too "
                                                   "(false: the dataset alone, as recops train --no-events)")
    engine: Literal["local", "spark"] = Field(
        default="local", description="fit in the API process, or (ALS only) on Spark at RECOPS_SPARK_MASTER"
    )


class TrainedVersion(BaseModel):
    model: str
    version: str
    stage: Literal["production", "candidate", "archived"]
    total_seconds: float
    lineage: dict[str, object]


class TrainResponse(BaseModel):
    dataset: str
    dataset_version: int
    versions: list[TrainedVersion]
    notes: list[str]
