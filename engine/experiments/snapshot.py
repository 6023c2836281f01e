"""The running experiment configs as this process serves them: an in-process snapshot.

Serving reads the snapshot without I/O; it is swapped whole when the global config version in
Redis changes (``refresh``), so a request never sees half of a change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.experiments.assignment import Assignment, AssignmentTable
from engine.experiments.model import Experiment
from engine.experiments.store import ExperimentStore

_UNSET = object()


class ConfigSnapshot:
    def __init__(self, store: ExperimentStore) -> None:
        self.store = store
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
            version = self.store.version()
            if not force and version == self._version:
                return False
            configs = self.store.load_all()
            holdout = self.store.holdout()
            self._configs = {e.key: e for e in configs}
            self.table = AssignmentTable(configs, holdout)
            self._version = version
            for callback in self._on_reload:
                callback()
            return True
