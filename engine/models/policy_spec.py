"""Policy specs: a model spec with optional serving parameters, as the command line writes them.

    als                                  production ALS with the engine's serving defaults
    als@candidate:mmr_lambda=0.3,n=10    the newest candidate, MMR λ 0.3, lists of 10

``PolicySpec.parse`` checks the form (the model part with ``ModelSpec.parse``, the parameters with
``ServingParams.parse``) and raises ``ModelSpecError`` with one readable message.  Nested settings
(``exploration``) are not written this way: a spec names a deterministic policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.models.model_spec import ModelSpec, ModelSpecError
from engine.serving.serving_params import ServingParams, ServingParamsError


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


@dataclass(frozen=True)
class PolicySpec:
    model: ModelSpec
    serving: ServingParams

    @classmethod
    def parse(cls, text: str) -> PolicySpec:
        if not isinstance(text, str) or not text.strip():
            raise ModelSpecError("a policy spec is a model spec, optionally followed by :name=value,...")
        model_text, _, params_text = text.strip().partition(":")
        model = ModelSpec.parse(model_text)
        params: dict[str, int | float] = {}
        for part in filter(None, (p.strip() for p in params_text.split(","))):
            name, sep, value = part.partition("=")
            try:
                params[name.strip()] = _number(value.strip())
            except ValueError:
                raise ModelSpecError(f"{text!r}: {part!r} is not name=number") from None
            if not sep:
                raise ModelSpecError(f"{text!r}: {part!r} is not name=number")
        try:
            serving = ServingParams.parse(params)
        except ServingParamsError as exc:
            raise ModelSpecError(f"{text!r}: {exc}") from None
        return cls(model, serving)

    def __str__(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.serving.non_default().items())
        return f"{self.model}:{params}" if params else str(self.model)
