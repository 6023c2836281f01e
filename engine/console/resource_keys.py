"""What identifies the console's process-wide resources: the settings of an environment, and the
engine built from them (one engine per distinct Redis, data dir, dataset and demo world)."""

from __future__ import annotations

from collections.abc import Mapping

from engine.config import Settings

SETTINGS_ENV_PREFIX = "RECOPS_"  # what Settings reads (engine/config.py), matched case-insensitively as it does
SETTINGS_ENV_NAMES = ("REDIS_URL", "PROMETHEUS_URL")


def settings_environment(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The variables ``Settings`` reads, sorted: equal tuples build equal settings."""
    return tuple(sorted((k, v) for k, v in environ.items()
                        if k.upper().startswith(SETTINGS_ENV_PREFIX) or k.upper() in SETTINGS_ENV_NAMES))


def engine_fingerprint(settings: Settings) -> tuple[str, ...]:
    """What makes two engines different: Redis, the data dir, the dataset served and the demo world's shape."""
    return (str(settings.redis_url), str(settings.data_dir.resolve()), str(settings.demo_users),
            str(settings.demo_items), str(settings.demo_seed), settings.key_prefix, settings.dataset)
