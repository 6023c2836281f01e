"""After an experiment ships a treatment: which arm shipped, what version it served, and whether the
Readout page offers to promote that version to production (one confirmed click, through the Models
page's audited promotion, ``engine.console.models.run_confirmed``).

The verdict itself is ``analysis.decision``'s, carried by the readout (``readout.decision``): it is
read here, never re-derived.  Stopping an experiment names no winner by itself; its decision does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.console import models as mv
from engine.console.notices import Notice
from engine.experiments import ExperimentReadout


@dataclass(frozen=True)
class PromoteOffer:
    """Promote the version the shipped arm served."""

    variant: str
    model: str
    version: str
    number: int | None  # its number on the served dataset, when the readout gives it
    dataset: str
    current: str | None  # production now (archived by the promotion)

    @property
    def label(self) -> str:
        return f"Promote {self.model} {f'v{self.number}' if self.number else self.version} to production"

    @property
    def action(self) -> dict[str, Any]:
        return mv.promote_action(self.model, self.version, self.dataset)


def shipped_treatment(readout: ExperimentReadout) -> str | None:
    """The treatment arm the readout's decision ships; None when it ships nothing or keeps the control."""
    d = readout.decision
    if d.action != "ship" or d.variant is None or d.variant == readout.control:
        return None
    return d.variant


def promote_offer(
    readout: ExperimentReadout, deciding_engine: str, served: Sequence[Mapping[str, Any]] | None,
    production: Mapping[str, str], dataset: str,
) -> PromoteOffer | Notice | None:
    """The promotion the Readout offers, a notice saying why there is none, or None (nothing to say).

    Offered when the experiment's own deciding engine, on its current phase, ships a treatment whose arm
    served one version that is not production now (``production``: model → its production version on
    ``dataset``, read afresh from the registry; the readout's ``stage`` may be older).  ``served`` is
    the readout's list of what each arm served (None from an engine without it: nothing is offered).
    """
    winner = shipped_treatment(readout)
    if served is None or winner is None:
        return None
    if readout.engine != deciding_engine:
        return Notice("caption", f"The {readout.engine} view ships `{winner}`; this experiment decides with the "
                                 f"{deciding_engine} engine: read that one to promote what it ships.")
    if readout.phase != readout.phases:
        return Notice("caption", f"Phase {readout.phase} shipped `{winner}`; only the current phase "
                                 f"({readout.phases}) can promote what it served.")
    arm = next((s for s in served if s.get("variant") == winner), None)
    if arm is None or not arm.get("model") or not arm.get("version"):
        return None
    model = str(arm["model"])
    exposed = [str(v) for v in (arm.get("exposures_by_version") or {})]
    if len(exposed) > 1:
        return Notice("warning", f"`{winner}` ships, but its arm served {len(exposed)} versions of {model} "
                                 f"({', '.join(exposed)}): promote the one you mean on the Models page.")
    version = exposed[0] if exposed else str(arm["version"])
    number = arm.get("number") if version == arm["version"] else None
    shown = f"v{number}" if number else version
    if production.get(model) == version:
        return Notice("info", f"`{winner}` ships {model} {shown}, which is already production: nothing to promote.",
                      ":material/check_circle:")
    return PromoteOffer(winner, model, version, int(number) if number else None, dataset, production.get(model))
