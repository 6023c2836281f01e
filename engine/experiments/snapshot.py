"""The running experiment configs as this process serves them: an in-process snapshot.

Serving reads the snapshot without I/O; it is swapped whole when the global config version in
Redis changes (``refresh``), so a request never sees half of a change.  Building it resolves each
running variant's model spec (``als@candidate`` → a version) with ``resolve``; as the registry can
move a stage without any config changing, the snapshot is also rebuilt when ``registry_generation``
(a cheap ``stat`` of the registry file) changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.experiments.assignment import Assignment, AssignmentTable
from engine.experiments.model import Experiment
from engine.experiments.store import ExperimentStore
from engine.models.model_spec import SpecResolver

_UNSET = object()


class ConfigSnapshot:
    def __init__(
        self,
        store: ExperimentStore,
        resolve: SpecResolver | None = None,
        registry_generation: Callable[[], object] | None = None,
    ) -> None:
        self.store = store
        self.resolve = resolve
        self.registry_generation = registry_generation
        self.table = AssignmentTable()
        self._configs: dict[str, Experiment] = {}
        self._version: object = _UNSET
        self._lock = threading.Lock()
        self._on_reload: list[Callable[[], object]] = []

    def assign(self, user_id: str) -> Assignment | None:
        """The user's experiment and variant (never any I/O)."""
        return self.table.assign(user_id)

    def configs(self) -> list[Experiment]:
        return list(self._configs.values())

    def on_reload(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on every reload, under the lock that swaps the snapshot."""
        self._on_reload.append(callback)

    def refresh(self, force: bool = False) -> bool:
        """Reload the configs when the global version changed (or ``force``); True when reloaded."""
        with self._lock:
            generation = self.registry_generation() if self.registry_generation is not None else None
            version = (self.store.version(), generation)
            if not force and version == self._version:
                return False
            configs = self.store.load_all()
            holdout = self.store.holdout()
            self._configs = {e.key: e for e in configs}
            self.table = AssignmentTable(configs, holdout, self.resolve)
            self._version = version
            for callback in self._on_reload:
                callback()
            return True
