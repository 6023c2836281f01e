"""The model spec an experiment variant serves, as the console offers and shows it: ``als`` (its
production version), ``als@production``, ``als@candidate`` (the newest candidate), ``als@7`` (the
7th version of als on the served dataset, in creation order) or ``als@<version id>``.

Resolving a spec to the version it serves is the engine's (``engine.experiments`` at save and serve
time); here are only the choices an editor lists, their labels, and the version numbers they use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from engine.models.registry import CANDIDATE, PRODUCTION, VersionRecord

SEPARATOR = "@"


def spec(model: str, selector: str | int) -> str:
    """``als@production``, ``als@candidate``, ``als@7``, ``als@<version id>``."""
    return f"{model}{SEPARATOR}{selector}"


def version_numbers(records: Iterable[VersionRecord]) -> dict[str, int]:
    """Each record's version → its number, as the registry numbers it (``ModelRegistry.version_number``:
    1-based creation order of its model's versions on its dataset), the number ``als@7`` names."""
    return {r.version: r.number for r in records if r.number is not None}


def choices(records: Sequence[VersionRecord], numbers: Mapping[str, int]) -> list[str]:
    """The specs an editor offers for the models trained on the served dataset: per model its plain
    name (its production version), ``@production``, ``@candidate`` (when it has one) and every version
    by number, newest first."""
    out: list[str] = []
    for model in sorted({r.model for r in records}):
        mine = sorted((r for r in records if r.model == model), key=lambda r: numbers[r.version], reverse=True)
        out += [model, spec(model, PRODUCTION)]
        if any(r.stage == CANDIDATE for r in mine):
            out.append(spec(model, CANDIDATE))
        out += [spec(model, numbers[r.version]) for r in mine]
    return out


def labels(records: Sequence[VersionRecord], numbers: Mapping[str, int]) -> dict[str, str]:
    """What a numbered spec is, for a select box: ``als@7 · candidate, trained 2026-12-02 01:45``."""
    out = {}
    for r in records:
        trained = (r.trained_at or "")[:16].replace("T", " ")
        out[spec(r.model, numbers[r.version])] = f"{spec(r.model, numbers[r.version])} · {r.stage}" + (
            f", trained {trained}" if trained else "")
    return out


def label(model_spec: str, known: Mapping[str, str]) -> str:
    """``known``'s label of a spec, or the spec itself (plain names, stages, typed ones)."""
    return known.get(model_spec, model_spec)

