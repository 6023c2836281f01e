"""Serving parameters of an experiment arm: validated, applied over the engine's defaults, keyed."""

from __future__ import annotations

import pytest

from engine.serving.diversity import DiversitySettings
from engine.serving.serving_params import ListSettings, ServingParams, ServingParamsError

BASE = ListSettings(candidate_pool=300, diversity=DiversitySettings(category_cap=3, mmr_lambda=0.7))


def test_unset_parameters_keep_the_defaults() -> None:
    assert ServingParams.parse({}).over(BASE) == BASE
    assert ServingParams.parse(None).non_default() == {}
    assert ServingParams().length(10) == 10


def test_each_parameter_replaces_its_default_only() -> None:
    arm = ServingParams.parse({"mmr_lambda": 0.2, "candidate_pool": 50, "n": 5})
    settings = arm.over(BASE)
    assert settings == ListSettings(candidate_pool=50, diversity=DiversitySettings(category_cap=3, mmr_lambda=0.2))
    assert arm.length(10) == 5  # the arm's length is the treatment
    assert arm.non_default() == {"n": 5, "candidate_pool": 50, "mmr_lambda": 0.2}
    assert ServingParams(category_cap=1).over(BASE).diversity == DiversitySettings(category_cap=1, mmr_lambda=0.7)


def test_signatures_differ_by_every_list_setting() -> None:
    variants = [BASE, ServingParams(candidate_pool=50).over(BASE), ServingParams(mmr_lambda=0.2).over(BASE),
                ServingParams(category_cap=1).over(BASE)]
    assert len({s.signature for s in variants}) == len(variants)
    assert BASE.signature == "c3l0.7p300"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"factors": 8},
         "unknown serving parameter 'factors' (allowed: n, candidate_pool, mmr_lambda, category_cap, exploration)"),
        ({"mmr_lambda": 1.5}, "mmr_lambda: Input should be less than or equal to 1"),
        ({"mmr_lambda": -0.1}, "mmr_lambda: Input should be greater than or equal to 0"),
        ({"category_cap": 0}, "category_cap: Input should be greater than or equal to 1"),
        ({"n": 101}, "n: Input should be less than or equal to 100"),
        ({"candidate_pool": "many"}, "candidate_pool: Input should be a valid integer"),
        ({"exploration": {"method": "softmax"}}, "exploration.method: Input should be 'plackett_luce' or"),
        ({"exploration": {"method": "plackett_luce", "temperature": 0}},
         "exploration.temperature: Input should be greater than 0"),
        ({"exploration": {"method": "epsilon_greedy", "epsilon": 2}},
         "exploration.epsilon: Input should be less than or equal to 1"),
        ({"exploration": {"method": "plackett_luce", "tau": 1}}, "unknown serving parameter 'exploration.tau'"),
        (["n"], "serving parameters are an object of n, candidate_pool, mmr_lambda, category_cap, exploration"),
    ],
)
def test_bad_parameters_are_refused_with_the_allowed_list(data: object, message: str) -> None:
    with pytest.raises(ServingParamsError) as caught:
        ServingParams.parse(data)  # type: ignore[arg-type]
    assert message in str(caught.value)
    allowed = "allowed: n, candidate_pool, mmr_lambda, category_cap, exploration"
    assert allowed in str(caught.value) or "object of" in message


def test_exploration_is_off_by_default_and_keys_its_own_cached_pool() -> None:
    assert BASE.exploration is None and ServingParams().over(BASE).exploration is None
    exploring = ServingParams.parse({"exploration": {"method": "plackett_luce", "temperature": 0.5}})
    settings = exploring.over(BASE)
    assert settings.exploration is not None
    assert (settings.exploration.method, settings.exploration.temperature, settings.exploration.pool) == (
        "plackett_luce", 0.5, 50)
    greedy = ServingParams.parse({"exploration": {"method": "epsilon_greedy", "epsilon": 0.1}}).over(BASE)
    hotter = ServingParams.parse({"exploration": {"method": "plackett_luce", "temperature": 1}}).over(BASE)
    signatures = {BASE.signature, settings.signature, greedy.signature, hotter.signature}
    assert len(signatures) == 4
    assert exploring.non_default() == {"exploration": {"method": "plackett_luce", "temperature": 0.5,
                                                       "epsilon": 0.1, "pool": 50}}
