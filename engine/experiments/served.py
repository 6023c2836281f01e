"""What each arm of an experiment served: the readout's ``served`` block (pure; no I/O).

Exposures are counted per arm and per model version at exposure time (``ExposureRecorder``, hash
``experiment_served`` with fields ``<variant>|<model>@<version>``), so a readout says which version
an arm actually served even when its spec is a stage that moved during the phase (a promotion
turns ``als@candidate`` into production).  The block, one entry per variant, in variant order::

    {"variant": "treatment", "spec": "als@candidate", "model": "als",
     "version": "20261202T...Z-1a2b3c4d", "number": 2, "stage": "candidate",   # what the spec names now
     "serving": {"mmr_lambda": 0.3},                                           # the params it sets
     "exposures_by_version": {"20261202T...Z-1a2b3c4d": 41}}

``version``, ``number`` and ``stage`` are None when the spec names nothing on the dataset now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.experiments.model import Variant
from engine.models.model_spec import ModelSpecError, ResolvedModel, SpecResolver

FIELD_SEPARATOR = "|"
UNRESOLVED = "unresolved"  # an exposure served while the spec named no version (its model's default)


def served_field(variant: str, label: str) -> str:
    """The hash field an exposure of ``variant`` served by ``label`` (``model@version``) counts under."""
    return f"{variant}{FIELD_SEPARATOR}{label}"


def exposures_by_variant(counts: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """``{<variant>|<model>@<version>: n}`` → ``{variant: {version: n}}``."""
    out: dict[str, dict[str, int]] = {}
    for field, count in counts.items():
        variant, _, label = field.partition(FIELD_SEPARATOR)
        version = label.partition("@")[2] or UNRESOLVED
        per = out.setdefault(variant, {})
        per[version] = per.get(version, 0) + int(count)
    return out


def _resolved(resolve: SpecResolver | None, spec: str) -> ResolvedModel | None:
    if resolve is None:
        return None
    try:
        return resolve(spec)
    except ModelSpecError:
        return None


def served_block(
    variants: Sequence[Variant], counts: Mapping[str, int], resolve: SpecResolver | None
) -> list[dict[str, Any]]:
    """The readout's ``served`` list (see the module docstring)."""
    by_variant = exposures_by_variant(counts)
    out = []
    for v in variants:
        now = _resolved(resolve, v.model)
        out.append({
            "variant": v.name,
            "spec": v.model,
            "model": v.spec.name,
            "version": now.version if now else None,
            "number": now.number if now else None,
            "stage": now.stage if now else None,
            "serving": v.serving.non_default(),
            "exposures_by_version": dict(sorted(by_variant.get(v.name, {}).items())),
        })
    return out
