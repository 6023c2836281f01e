"""Promotion and rollback as an operator does them: switched in the registry and written to the audit log.

A switch that cannot be audited does not stand: the registry is switched (atomically, under its
lock), then the audit entry is written; if that write fails the switch is reverted and
``AuditUnavailableError`` raised.  Callers check the audit store answers before calling, so the
revert is the rare path (the store failing between the check and the write).
"""

from __future__ import annotations

from typing import Protocol

from engine.models.registry import DEMO_DATASET, ModelRegistry, StageChange


class AuditSink(Protocol):
    """What the lifecycle needs of ``engine.storage.audit.AuditLog``."""

    def record(self, actor: str, action: str, target: str = "", keys: int = 0, detail: str = "") -> None: ...


class AuditUnavailableError(RuntimeError):
    """The audit log could not be written, so the switch was undone."""


def _audited(registry: ModelRegistry, audit: AuditSink, actor: str, change: StageChange) -> StageChange:
    was = change.previous or "none"
    try:
        audit.record(actor, f"{change.action}_model", target=f"{change.model}:{change.dataset}",
                     detail=f"{change.version} (was {was})")
    except Exception as exc:  # whatever the store raised, an unaudited switch must not stand
        registry.revert(change)
        raise AuditUnavailableError(
            f"the audit log could not be written ({exc}); the {change.action} of {change.model} was undone"
        ) from exc
    return change


def promote(
    registry: ModelRegistry, audit: AuditSink, actor: str, model: str, version: str, dataset: str | None = None
) -> StageChange:
    """Make ``version`` production for its dataset (the previous production is archived), audited."""
    return _audited(registry, audit, actor, registry.promote(model, version, dataset))


def rollback(
    registry: ModelRegistry, audit: AuditSink, actor: str, model: str, dataset: str = DEMO_DATASET
) -> StageChange:
    """Serve the previous production version of ``model`` on ``dataset`` again, audited."""
    return _audited(registry, audit, actor, registry.rollback(model, dataset))
