"""Serving processes notice a promotion or rollback by themselves, within ``interval`` seconds.

Every process (each uvicorn worker) polls the registry: a ``stat`` of ``registry.json`` per tick,
which is a new file after every write, and only when that changed a read of what it serves — the
production version of each model on its dataset and the default model.  A change there calls
``on_change`` (the engine's ``reload_models``); a new candidate, or a change on another dataset,
does not.  Polling the shared models directory needs no Redis and works for any process that can
read the registry, which every serving process must anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from engine.models.registry import ModelRegistry

log = logging.getLogger(__name__)

Served = tuple[dict[str, str], str | None]  # model name → version, and the default model


class RegistryWatcher:
    """Polls ``registry`` every ``interval`` seconds; calls ``on_change`` when what it says ``dataset``
    should serve differs from what ``loaded()`` says the process serves."""

    def __init__(
        self,
        registry: ModelRegistry,
        dataset: str,
        loaded: Callable[[], Served],
        on_change: Callable[[], None],
        interval: float = 2.0,
    ) -> None:
        self.registry = registry
        self.dataset = dataset
        self.loaded = loaded
        self.on_change = on_change
        self.interval = interval
        # None: the first poll compares, so a promotion made while the process was loading counts
        self._generation: tuple[int, int, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wanted(self) -> Served:
        return self.registry.served(self.dataset), self.registry.default_model(self.dataset)

    def check(self) -> bool:
        """One poll; True when the served versions changed and ``on_change`` ran without error."""
        generation = self.registry.generation()
        if generation is not None and generation == self._generation:
            return False
        if self.wanted() == self.loaded():
            self._generation = generation
            return False
        self.on_change()  # if it raises, the generation is not recorded: the next poll tries again
        self._generation = generation
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.check():
                    log.info("registry changed: now serving %s on %s", self.loaded()[0], self.dataset)
            except Exception:  # a bad read or a failed reload must not kill the watcher
                log.exception("reloading models after a registry change failed; retrying")

    def start(self) -> RegistryWatcher:
        self._thread = threading.Thread(target=self._run, name="registry-watcher", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
