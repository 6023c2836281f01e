"""`recops demo` in process: its warm caches the lists each user is served, experiments included."""

from __future__ import annotations

import pytest

from engine.runtime import Engine
from tests.support.cli import Recops
from tests.support.engine_fixtures import small_world_env
from tests.support.experiment_users import first_request_tier, served_list_keys, start_arm_experiments


@pytest.fixture
def env(recops: Recops, engine: Engine) -> Recops:
    """``recops`` on the test engine's world and Redis (models trained, nothing cached)."""
    recops.env(RECOPS_DATA_DIR=str(engine.settings.data_dir), REDIS_URL=engine.settings.redis_url,
               **small_world_env())
    return recops


def test_demo_warms_the_lists_of_users_in_experiments_so_their_first_request_hits(
    env: Recops, engine: Engine
) -> None:
    users = start_arm_experiments(engine)  # the top 3 active users: an A/B arm, an exploring arm, interleaved
    n = 5
    keys = [k for user in users.all for k in served_list_keys(engine, user, n)]
    assert len(keys) == 4 and not any(engine.redis.exists(k) for k in keys)
    code, out, err = env(["demo", "--warm", "10", "--n", str(n)])
    assert code == 0, err
    # the 8 other users are interleaved too (ilv covers everyone): both rankers' lists each
    assert "warmed 10 users" in out.splitlines()[0]
    assert "(lists per arm: ab/explore 1, ab/treatment 1, ilv/control 8, ilv/treatment 8)" in out.splitlines()[0]
    assert all(engine.redis.exists(k) for k in keys)
    # another process (this test's engine): its L1 is empty, so each first request is an L2 hit
    assert {user: first_request_tier(engine, user, n) for user in users.all} == dict.fromkeys(users.all, "l2")


def test_demo_without_experiments_warms_the_default_lists(env: Recops, engine: Engine) -> None:
    code, out, err = env(["demo", "--warm", "6", "--n", "5"])
    assert code == 0, err
    assert out.splitlines()[0].startswith("warmed 6 users in ") and "per arm" not in out.splitlines()[0]
    top = engine.features.top_active_users(6)
    assert all(engine.redis.exists(engine.service.list_key(u, engine.service.default_model, 5)) for u in top)
    assert engine.service.recommend(top[0], n=5).cache_tier == "l2"
