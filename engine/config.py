"""One typed settings object, read from the environment.

Every tunable lives here so that the CLI, the API, the console and the tests agree on it.
``REDIS_URL`` and ``PROMETHEUS_URL`` keep their conventional names; the rest are ``RECOPS_*``.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd])")


def parse_duration(text: str | float) -> float:
    """Seconds from a duration: a number of seconds (``90``) or numbers with units s, m, h, d
    (``30m``, ``6h``, ``1h30m``).  ``ValueError`` saying what is expected otherwise."""
    raw = str(text).strip().lower()
    try:
        seconds = float(raw)
    except ValueError:
        parts = _DURATION.findall(raw)
        if not parts or _DURATION.sub("", raw).strip():
            raise ValueError(f"{text!r} is not a duration: use seconds (90) or a number with s, m, h or d "
                             "(30m, 6h, 1h30m)") from None
        seconds = sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{text!r}: a duration must be a positive, finite number of seconds")
    return seconds


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECOPS_", extra="ignore", populate_by_name=True)

    # --- where things live -------------------------------------------------
    data_dir: Path = Field(default=Path("data"), description="Models, demo world, embedded Redis data")
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="External Redis; unset starts an embedded redis-server",
    )
    prometheus_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMETHEUS_URL", "prometheus_url"),
        description="External Prometheus; unset lets `recops up` start one if the binary exists",
    )
    key_prefix: str = Field(default="recops", description="Prefix of every Redis key")
    dataset: str = Field(
        default="demo",
        description="Dataset served (`recops up/serve --dataset`): demo (the demo world) or an imported one",
    )

    # --- demo world --------------------------------------------------------
    demo_seed: int = Field(default=42, description="Seed of the demo world")
    demo_users: int = Field(default=10_000, ge=10, description="Users in the demo world")
    demo_items: int = Field(default=5_000, ge=10, description="Items in the demo world")
    demo_experiment: bool = Field(
        default=True,
        description="`recops up` on the demo world (with its simulator) creates and starts a demo experiment "
        "on its first start (never again once offered, nor when experiments exist)",
    )

    # --- feature store and cache ------------------------------------------
    user_feature_ttl_seconds: int = Field(default=300, ge=1, description="TTL of a user's feature hash")
    item_feature_ttl_seconds: int = Field(default=3_600, ge=1, description="TTL of an item's feature hash")
    # Lists are invalidated by every event that must change them (cart, purchase, rating) and by
    # model reloads, so the TTL only bounds drift from softer signals (views, clicks, popularity).
    rec_cache_ttl_seconds: int = Field(default=1_800, ge=1, description="TTL of a cached list in Redis (L2)")
    rec_cache_ttl_jitter: float = Field(default=0.10, ge=0.0, le=0.5, description="± share of random TTL jitter")
    l1_max_entries: int = Field(default=50_000, ge=0, description="Bound of the in-process L1 (0 disables it)")
    l1_ttl_seconds: float = Field(default=30.0, gt=0, description="TTL of an L1 entry")
    xfetch_beta: float = Field(default=1.0, ge=0, description="XFetch early-refresh eagerness (0 = off)")
    refresh_after_invalidation: bool = Field(
        default=True, description="Recompute a user's list in the background after an event invalidated it"
    )
    compute_lock_seconds: float = Field(default=5.0, gt=0, description="Cross-process compute lock")
    cache_ledger_seconds: int = Field(
        default=86_400, ge=1,
        description="How long the cache remembers a user's list writes and invalidations (for miss causes)",
    )
    warm_on_start_users: int = Field(
        default=10_000, ge=0,
        description="Most active users whose lists a serving process warms in the background at start and after "
        "a model switch (0 = off)",
    )
    # a warmed user costs ~15 ms of CPU (the same compute as a miss): at 150 a second the demo's
    # 10,000 users are warm in about a minute and a half when the machine is free (50 a second
    # did not reach an 80% hit ratio within five minutes at 40 visits/s: README, Cache)
    warm_users_per_second: float = Field(
        default=150.0, gt=0, description="Rate limit of that background warming (users per second)"
    )

    # --- recommendation defaults ------------------------------------------
    default_n: int = Field(default=10, ge=1, le=100, description="List length when none is asked for")
    candidate_pool: int = Field(default=300, ge=1, description="Candidates scored before re-ranking")
    category_cap: int = Field(default=3, ge=1, description="At most this many items of one category")
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0, description="MMR relevance weight (1 = no diversity)")
    history_length: int = Field(default=50, ge=1, description="Recent items kept per user")

    # --- training and model lifecycle ---------------------------------------
    # EASE holds items × items matrices while it solves (about 20 bytes per cell at the peak, see
    # engine/models/ease.py): 10,000 items take ~2 GB; above the cap `recops train` refuses it.
    ease_max_items: int = Field(
        default=10_000, ge=1, description="Largest catalogue EASE trains on (its memory grows with items²)"
    )
    # Below this, scoring every item is exact and fast enough (~1 ms per 20,000 items); above it the
    # registry builds an ANN index at training time and factor models retrieve through it.
    ann_min_items: int = Field(
        default=50_000, ge=1,
        description="Catalogues with at least this many items get an ANN index for candidate retrieval (ALS)",
    )
    holdout_days: float = Field(
        default=7.0, gt=0, description="`recops train` evaluates on the last N days of interactions (time holdout)"
    )
    model_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often serving processes check the registry for a promotion"
    )
    # `recops train --engine spark` (engine/models/spark_als.py): the master Spark runs ALS on, and
    # the memory of its driver and executors (in local mode the executors live in the driver)
    spark_master: str = Field(
        default="local[2]",
        description="Spark master of `recops train --engine spark` (local[N], spark://host:7077, yarn...); "
        "with a remote master the data dir must be on storage every executor reads",
    )
    spark_memory: str | None = Field(
        default=None, description="spark.driver.memory and spark.executor.memory (e.g. 4g); unset = Spark's 1g"
    )
    retrain_every: float | None = Field(
        default=None,
        description="`recops up` retrains the served dataset's models this often when new events were logged, "
        "as candidates (seconds, or 30m, 6h, 1d); unset = off",
    )

    # --- event log ---------------------------------------------------------
    consumer_flush_seconds: float = Field(
        default=5.0, gt=0, le=60,
        description="`recops consume` writes tracked events to the event log (then acks them) at least this often",
    )

    # --- serving -----------------------------------------------------------
    max_body_bytes: int = Field(default=16 << 20, ge=1, description="Largest request body the API reads (413 above)")
    max_upload_bytes: int = Field(
        default=2 << 30, ge=1, description="Largest dataset upload (POST /admin/datasets/{name}/import; 413 above)"
    )
    api_host: str = Field(default="127.0.0.1", description="Address the API binds to")
    api_port: int = Field(default=8000, ge=0, description="API port (taken: `recops up` picks a free one)")
    console_port: int = Field(default=8501, ge=0, description="Console port")
    prometheus_port: int = Field(default=9090, ge=0, description="Port of the Prometheus `recops up` starts")
    admin_token: SecretStr | None = Field(default=None, description="Bearer token for /admin; unset disables it")
    console_password: SecretStr | None = Field(default=None, description="Console login for writes; unset = open")

    @field_validator("retrain_every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None  # unset, or set to nothing: off
        if not isinstance(value, str | int | float):
            raise ValueError(f"{value!r} is not a duration")
        return parse_duration(value)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"


def env_name(field: str) -> str:
    """The environment variable that sets ``Settings.<field>``."""
    alias = Settings.model_fields[field].validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"RECOPS_{field.upper()}"


def settings_error(exc: ValidationError) -> str:
    """A ``Settings`` validation error as one line naming the variables: what the CLI prints."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        env = env_name(field) if field in Settings.model_fields else field
        problems.append(f"{env}: {str(error['msg']).removeprefix('Value error, ')}")
    return "invalid setting " + "; ".join(problems)


def settings_table() -> str:
    """The README's configuration table, generated so that it cannot drift from the code."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        env = env_name(name)
        default = "unset" if info.default is None else f"`{info.default}`"
        rows.append(f"| `{env}` | {default} | {info.description or ''} |")
    return "\n".join(rows)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests build their own ``Settings`` instead of using this."""
    return Settings()
