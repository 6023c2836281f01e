"""Serving parameters an experiment arm applies at serve time, over the engine's defaults.

    >>> arm = ServingParams.parse({"mmr_lambda": 0.3, "candidate_pool": 500})
    >>> arm.over(ListSettings(candidate_pool=300, diversity=DiversitySettings()))
    ListSettings(candidate_pool=500, diversity=DiversitySettings(category_cap=3, mmr_lambda=0.3))

``ServingParams`` is what an arm *overrides* (None = the engine's default); ``ListSettings`` is what
a list is computed with, and its ``signature`` goes into the list's cache key, so lists computed
differently are cached apart.  A new serving setting is added in these two classes only: a field
in each and a line in ``ServingParams.over`` — validation, the experiment's ``params`` check, the
cache key and the readout's ``serving`` block follow.

``n`` (the list length) is not a ``ListSettings`` field: the length is already part of the list's
key, and an arm's ``n`` replaces the request's (see ``length``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.serving.diversity import DiversitySettings
from engine.serving.exploring_lists import ExplorationPolicy

MAX_LIST_LENGTH = 100  # the API's own bound on ``n``
MAX_CANDIDATE_POOL = 10_000


class ServingParamsError(ValueError):
    """Parameters that are unknown or out of range; the message lists what is allowed."""


@dataclass(frozen=True)
class ListSettings:
    """Everything besides the model, the user and the length that a list is computed with."""

    candidate_pool: int
    diversity: DiversitySettings
    exploration: ExplorationPolicy | None = None  # sample the shown list (engine.serving.exploring_lists)

    @cached_property
    def signature(self) -> str:
        """Short stable text for cache keys: the re-ranking's and the pool's (and an exploring arm's policy:
        what it caches is its candidate pool, not a list)."""
        explore = self.exploration.signature if self.exploration is not None else ""
        return f"{self.diversity.signature}p{self.candidate_pool}{explore}"


class Exploration(BaseModel):
    """An exploring arm's policy: ``{"method": "plackett_luce", "temperature": 0.5}`` or
    ``{"method": "epsilon_greedy", "epsilon": 0.1}``, over the model's top ``pool`` candidates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["plackett_luce", "epsilon_greedy"]
    temperature: float = Field(default=1.0, gt=0, le=100, allow_inf_nan=False,
                               description="Plackett-Luce temperature over scores scaled to [0, 1]")
    epsilon: float = Field(default=0.1, ge=0, le=1, description="ε-greedy: chance a slot is filled at random")
    pool: int = Field(default=50, ge=1, le=1_000, description="Top candidates the list is drawn from")

    def policy(self) -> ExplorationPolicy:
        return ExplorationPolicy(self.method, self.temperature, self.epsilon, self.pool)


class ServingParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int | None = Field(default=None, ge=1, le=MAX_LIST_LENGTH, description="List length (replaces the request's)")
    candidate_pool: int | None = Field(default=None, ge=1, le=MAX_CANDIDATE_POOL,
                                       description="Candidates the model scores before re-ranking")
    mmr_lambda: float | None = Field(default=None, ge=0, le=1, description="MMR trade-off: 1 relevance, 0 spread")
    category_cap: int | None = Field(default=None, ge=1, description="At most this many items of one category")
    exploration: Exploration | None = Field(
        default=None, description="Sample the shown list from the scores, logging propensities (off by default)")

    @classmethod
    def allowed(cls) -> list[str]:
        return list(cls.model_fields)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> ServingParams:
        """From untrusted input; every problem in one ``ServingParamsError`` naming the allowed keys."""
        if isinstance(data, ServingParams):
            return data
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ServingParamsError(f"serving parameters are an object of {', '.join(cls.allowed())}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_url=False):
                where = ".".join(str(p) for p in error["loc"])
                if error["type"] == "extra_forbidden":
                    problems.append(f"unknown serving parameter {where!r}")
                else:
                    problems.append(f"{where}: {error['msg']}")
            raise ServingParamsError(f"{'; '.join(problems)} (allowed: {', '.join(cls.allowed())})") from None

    def non_default(self) -> dict[str, Any]:
        """The parameters this arm sets (the rest are the engine's defaults)."""
        return self.model_dump(exclude_none=True)

    def length(self, requested: int) -> int:
        """The list length served: the arm's ``n`` when it sets one (it is the treatment), else the request's."""
        return self.n if self.n is not None else requested

    def over(self, base: ListSettings) -> ListSettings:
        """``base`` with this arm's settings in place of the defaults."""
        diversity = base.diversity
        if self.mmr_lambda is not None or self.category_cap is not None:
            diversity = replace(
                diversity,
                mmr_lambda=diversity.mmr_lambda if self.mmr_lambda is None else self.mmr_lambda,
                category_cap=diversity.category_cap if self.category_cap is None else self.category_cap,
            )
        pool = base.candidate_pool if self.candidate_pool is None else self.candidate_pool
        exploration = base.exploration if self.exploration is None else self.exploration.policy()
        return ListSettings(candidate_pool=pool, diversity=diversity, exploration=exploration)


DEFAULT_SERVING = ServingParams()
