"""One typed settings object, read from the environment.

Every tunable lives here so that the CLI, the API, the console and the tests agree on it.
``REDIS_URL`` and ``PROMETHEUS_URL`` keep their conventional names; the rest are ``RECOPS_*``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    # --- demo world --------------------------------------------------------
    demo_seed: int = 42
    demo_users: int = 10_000
    demo_items: int = 5_000

    # --- feature store and cache ------------------------------------------
    user_feature_ttl_seconds: int = 300
    item_feature_ttl_seconds: int = 3_600
    rec_cache_ttl_seconds: int = 600
    rec_cache_ttl_jitter: float = Field(default=0.10, ge=0.0, le=0.5)
    l1_max_entries: int = 50_000
    l1_ttl_seconds: float = 30.0
    xfetch_beta: float = 1.0
    compute_lock_seconds: float = 5.0

    # --- recommendation defaults ------------------------------------------
    default_n: int = 10
    candidate_pool: int = 300
    category_cap: int = 3
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0)
    history_length: int = 50

    # --- serving -----------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    console_port: int = 8501
    prometheus_port: int = 9090
    admin_token: SecretStr | None = Field(default=None, description="Bearer token for /admin; unset disables it")
    console_password: SecretStr | None = None

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests build their own ``Settings`` instead of using this."""
    return Settings()
