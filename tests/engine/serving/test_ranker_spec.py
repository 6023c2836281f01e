"""Ranker specs: a model spec with serving parameters after ':'; ServingParams validates them."""

from __future__ import annotations

import pytest

from engine.models.model_spec import ModelSpec
from engine.serving.ranker_spec import RankerSpec, RankerSpecError
from engine.serving.serving_params import ServingParams


@pytest.mark.parametrize(("text", "model", "serving"), [
    ("als", ModelSpec("als"), ServingParams()),
    ("als@production", ModelSpec("als", stage="production"), ServingParams()),
    (" item_item@3:category_cap=2 ", ModelSpec("item_item", number=3), ServingParams(category_cap=2)),
    ("als@candidate:mmr_lambda=0.3, n=10", ModelSpec("als", stage="candidate"), ServingParams(mmr_lambda=0.3, n=10)),
    ("popularity:candidate_pool=500,mmr_lambda=1", ModelSpec("popularity"),
     ServingParams(candidate_pool=500, mmr_lambda=1.0)),
])
def test_parses_model_and_serving_params(text: str, model: ModelSpec, serving: ServingParams) -> None:
    spec = RankerSpec.parse(text)
    assert (spec.model, spec.serving) == (model, serving)
    assert RankerSpec.parse(str(spec)) == spec  # the printed form reads back


def test_printed_form() -> None:
    assert str(RankerSpec.parse("als@production:n=10,mmr_lambda=0.3")) == "als@production:n=10,mmr_lambda=0.3"
    assert str(RankerSpec.parse("als")) == "als"


@pytest.mark.parametrize(("text", "says"), [
    ("", "a ranker spec is MODEL"),
    ("nope:n=3", "unknown model 'nope'"),
    ("als@latest", "after '@' expected"),
    ("als:", "nothing after ':'"),
    ("als:mmr_lambda", "'mmr_lambda' is not KEY=VALUE"),
    ("als:mmr_lambda=0.3,", "'' is not KEY=VALUE"),
    ("als:n=3,n=4", "'n' is given twice"),
    ("als:depth=3", "unknown serving parameter 'depth'"),
    ("als:mmr_lambda=2", "mmr_lambda: Input should be less than or equal to 1"),
    ("als:n=2.5", "n: Input should be a valid integer"),
    ("als:category_cap=many", "category_cap: Input should be a valid integer"),
])
def test_errors_name_the_spec_and_what_is_allowed(text: str, says: str) -> None:
    with pytest.raises(RankerSpecError) as caught:
        RankerSpec.parse(text)
    assert says in str(caught.value)
    if "serving parameter" in says or "Input should" in says:
        assert "allowed: n, candidate_pool, mmr_lambda, category_cap" in str(caught.value)
