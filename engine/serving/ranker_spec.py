"""Ranker specs: a model spec with optional serving parameters, as one command-line word.

    als                                   ALS's production version, the engine's serving defaults
    als@production:mmr_lambda=0.3         ... re-ranked with MMR λ 0.3
    als@candidate:mmr_lambda=0.3,n=10     the newest candidate, λ 0.3, lists of 10
    item_item@3:category_cap=2            version 3 of item-item, at most 2 items of one category

The part before ``:`` is a :class:`~engine.models.model_spec.ModelSpec`; after it come
``key=value`` pairs separated by commas, validated by :class:`ServingParams` (its keys, ranges and
messages), so a ranker spec serves exactly what an experiment variant with the same model and
``params`` would.  Values are read as numbers when they look like numbers; ``ServingParams`` says
which ones must be integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.models.model_spec import ModelSpec, ModelSpecError
from engine.serving.serving_params import ServingParams, ServingParamsError

SYNTAX = "MODEL[@STAGE|@NUMBER|@VERSION][:KEY=VALUE,...] with KEY one of " + ", ".join(ServingParams.allowed())


class RankerSpecError(ValueError):
    """A ranker spec that does not parse; the message names the spec and what is allowed."""


@dataclass(frozen=True)
class RankerSpec:
    model: ModelSpec
    serving: ServingParams

    @classmethod
    def parse(cls, text: str) -> RankerSpec:
        if not isinstance(text, str) or not text.strip():
            raise RankerSpecError(f"a ranker spec is {SYNTAX}")
        model_text, sep, params_text = text.strip().partition(":")
        try:
            model = ModelSpec.parse(model_text)
        except ModelSpecError as exc:
            raise RankerSpecError(str(exc)) from None
        if sep and not params_text.strip():
            raise RankerSpecError(f"{text!r}: nothing after ':'; expected KEY=VALUE pairs ({SYNTAX})")
        try:
            serving = ServingParams.parse(_pairs(text, params_text) if sep else None)
        except ServingParamsError as exc:
            raise RankerSpecError(f"{text!r}: {exc}") from None
        return cls(model, serving)

    def __str__(self) -> str:
        params = self.serving.non_default()
        if not params:
            return str(self.model)
        return f"{self.model}:" + ",".join(f"{key}={value}" for key, value in params.items())


def _pairs(text: str, params_text: str) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for part in params_text.split(","):
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not key or not value:
            raise RankerSpecError(f"{text!r}: {part.strip()!r} is not KEY=VALUE ({SYNTAX})")
        if key in pairs:
            raise RankerSpecError(f"{text!r}: {key!r} is given twice")
        pairs[key] = _number(value)
    return pairs


def _number(value: str) -> Any:
    """An int or float when the text is one, else the text (``ServingParams`` then says what it wants)."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value
