"""Model specs: the text an experiment's variant names what it serves with, and its resolution.

    als                       the production version of ALS on the served dataset
    als@production            the same, said explicitly
    als@candidate             the newest candidate
    als@7                     the 7th version of ALS on the served dataset (``recops models list``'s number)
    als@20261202T031500123456Z-1a2b3c4d   that version

``ModelSpec.parse`` checks the form only (no registry needed: an experiment config can be read
anywhere); ``ModelSpec.resolve`` says which version the spec names on one dataset now, or raises
``ModelSpecError`` naming the spec and what the registry has.  A stage resolves to different
versions over time (a promotion moves ``production``); a number or a version id never moves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.models.registry import CANDIDATE, MODEL_CLASSES, PRODUCTION, ModelRegistry, VersionRecord

# stages a spec may name: the ones that designate a single version (there are many archived ones)
SPEC_STAGES: tuple[str, ...] = (PRODUCTION, CANDIDATE)
VERSION_ID = re.compile(r"^[0-9]{8}T[0-9]{6,12}Z-[0-9a-f]{4,64}$")
# versions listed in an error message: the newest few are what someone meant
LISTED_VERSIONS = 8


class ModelSpecError(ValueError):
    """A spec that does not parse, or names nothing on the dataset; the message says which and why."""


@dataclass(frozen=True)
class ResolvedModel:
    """What a spec names on a dataset now: the model, its version, the version's number and stage."""

    name: str
    version: str
    number: int
    stage: str

    @property
    def label(self) -> str:
        """``name@version``: how serving keys the version's lists and exposures count it."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    stage: str | None = None  # production or candidate
    number: int | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        if not isinstance(text, str) or not text.strip():
            raise ModelSpecError("a model spec is a model name, optionally @stage, @number or @version")
        name, sep, selector = text.strip().partition("@")
        if name not in MODEL_CLASSES:
            raise ModelSpecError(f"{text!r}: unknown model {name!r}; known: {', '.join(sorted(MODEL_CLASSES))}")
        if not sep:
            return cls(name)
        if selector in SPEC_STAGES:
            return cls(name, stage=selector)
        if selector.isdecimal():
            number = int(selector)
            if number < 1:
                raise ModelSpecError(f"{text!r}: version numbers start at 1")
            return cls(name, number=number)
        if VERSION_ID.match(selector):
            return cls(name, version=selector)
        raise ModelSpecError(
            f"{text!r}: after '@' expected {' or '.join(SPEC_STAGES)}, a version number (as in "
            f"`recops models list`) or a full version id like 20261202T031500123456Z-1a2b3c4d, got {selector!r}"
        )

    def __str__(self) -> str:
        if self.stage is not None:
            return f"{self.name}@{self.stage}"
        if self.number is not None:
            return f"{self.name}@{self.number}"
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return self.name

    def resolve(self, registry: ModelRegistry, dataset: str) -> ResolvedModel:
        """The version this spec names on ``dataset`` now; ``ModelSpecError`` when there is none."""
        records = registry.records(dataset)
        return self.resolve_in(records, dataset)

    def resolve_in(self, records: Sequence[VersionRecord], dataset: str) -> ResolvedModel:
        """``resolve`` over ``records`` (``ModelRegistry.records(dataset)``, oldest first): pure."""
        mine = [r for r in records if r.model == self.name]
        if not mine:
            others = sorted({r.model for r in records})
            there = f"models there: {', '.join(others)}" if others else "no model is trained there"
            raise ModelSpecError(f"{self}: no version of {self.name!r} on dataset {dataset!r}; {there}")
        match = self._pick(mine)
        if match is None:
            raise ModelSpecError(f"{self}: {self._missing(dataset)}; {self.name} on {dataset!r} has {_listing(mine)}")
        return ResolvedModel(match.model, match.version, match.number or 0, match.stage)

    def _pick(self, mine: Sequence[VersionRecord]) -> VersionRecord | None:
        if self.number is not None:
            return next((r for r in mine if r.number == self.number), None)
        if self.version is not None:
            return next((r for r in mine if r.version == self.version), None)
        stage = self.stage or PRODUCTION
        staged = [r for r in mine if r.stage == stage]
        return staged[-1] if staged else None  # the newest: one production, the latest candidate

    def _missing(self, dataset: str) -> str:
        if self.number is not None:
            return f"no version {self.number}"
        if self.version is not None:
            return f"no version {self.version} (a version of another dataset cannot serve {dataset!r})"
        return f"no {self.stage or PRODUCTION} version"


def _listing(records: Sequence[VersionRecord]) -> str:
    shown = records[-LISTED_VERSIONS:]
    parts = [f"#{r.number} {r.version} ({r.stage})" for r in shown]
    more = f" and {len(records) - len(shown)} older" if len(records) > len(shown) else ""
    return f"{len(records)} version{'s' if len(records) != 1 else ''}: {', '.join(parts)}{more}"


SpecResolver = Callable[[str], ResolvedModel]


def spec_resolver(registry: ModelRegistry, dataset: str) -> SpecResolver:
    """Spec text → what it names on ``dataset``, read from the registry at each call (it changes)."""

    def resolve(text: str) -> ResolvedModel:
        return ModelSpec.parse(text).resolve(registry, dataset)

    return resolve
