"""engine.console.resource_keys: what the console's process-wide caches are keyed by."""

from __future__ import annotations

from pathlib import Path

from engine.config import Settings
from engine.console.resource_keys import engine_fingerprint, settings_environment


def test_settings_environment_keeps_what_settings_reads_sorted() -> None:
    env = {"PATH": "/bin", "recops_demo_seed": "3", "REDIS_URL": "redis://x", "RECOPS_DATA_DIR": "/d",
           "PROMETHEUS_URL": "http://p", "HOME": "/root"}
    assert settings_environment(env) == (("PROMETHEUS_URL", "http://p"), ("RECOPS_DATA_DIR", "/d"),
                                         ("REDIS_URL", "redis://x"), ("recops_demo_seed", "3"))
    assert settings_environment({"PATH": "/usr/bin"}) == ()


def test_engine_fingerprint_tells_engines_apart(tmp_path: Path) -> None:
    base = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0")
    assert engine_fingerprint(base) == engine_fingerprint(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0"))
    for other in (Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:2/0"),
                  Settings(data_dir=tmp_path / "other", redis_url="redis://127.0.0.1:1/0"),
                  Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", demo_seed=base.demo_seed + 1),
                  Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", dataset="ml-100k")):
        assert engine_fingerprint(other) != engine_fingerprint(base)
