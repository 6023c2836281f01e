"""``DemoWorld``: a synthetic shop whose ground truth is known, addressed by user and item ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data.demo.attributes import user_attributes
from engine.data.demo.generation import Latent, draw_latent, streams
from engine.data.demo.history import item_table, sample_history
from engine.data.demo.ids import format_ids, parse_ids
from engine.data.demo.persistence import SavedWorld, TableFormat, read_world, saved_with, write_world
from engine.data.demo.truth import Feedback, GroundTruth, sigmoid
from engine.data.demo.vocabulary import MAX_CATEGORIES, category_names
from engine.data.schema import Dataset


class DemoWorld:
    """A synthetic shop: catalogue, users, ground-truth behaviour and the history sampled from it."""

    def __init__(
        self,
        *,
        params: dict[str, int],
        categories: list[str],
        latent: Latent,
        items: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
    ) -> None:
        self.params = dict(params)
        self.categories = list(categories)
        self.latent = latent
        # the latent arrays the simulator, evaluation and tests read by name
        self.price = latent.price
        self.pop_prior = latent.pop_prior
        self.item_vecs = latent.item_vecs
        self.user_vecs = latent.user_vecs
        self.user_ids = format_ids("u", len(latent.user_vecs))
        self.item_ids = format_ids("i", len(latent.item_vecs))
        self.truth = GroundTruth(
            n_categories=len(self.categories),
            item_category=latent.item_category,
            price=latent.price,
            pop_prior=latent.pop_prior,
            item_vecs=latent.item_vecs,
            user_vecs=latent.user_vecs,
            user_theta=latent.user_theta,
            price_sensitivity=latent.price_sensitivity,
        )
        if events is None:
            rng = streams(self.params["seed"])[2]
            events = sample_history(
                self.truth, latent, len(self.categories), self.params["days"], rng, self.user_ids, self.item_ids
            )
        if items is None:
            items = item_table(events, latent, self.categories, self.item_ids)
        self.items = items
        self.events = events
        self._dataset: Dataset | None = None
        self._users: pd.DataFrame | None = None

    # ---- construction ---------------------------------------------------------
    @classmethod
    def generate(
        cls,
        seed: int = 42,
        n_users: int = 10_000,
        n_items: int = 5_000,
        n_categories: int = 24,
        days: int = 60,
    ) -> DemoWorld:
        if not 1 <= n_categories <= MAX_CATEGORIES:
            raise ValueError(f"n_categories must be within 1..{MAX_CATEGORIES}")
        if n_items < n_categories or n_users < 1 or days < 1:
            raise ValueError("need n_items >= n_categories, n_users >= 1 and days >= 1")
        params = {"seed": seed, "n_users": n_users, "n_items": n_items, "n_categories": n_categories, "days": days}
        return cls(
            params=params,
            categories=category_names(n_categories),
            latent=draw_latent(seed, n_users, n_items, n_categories),
        )

    # ---- ids ------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_vecs)

    @property
    def n_items(self) -> int:
        return len(self.item_vecs)

    def user_index(self, user_ids: Any) -> np.ndarray:
        return parse_ids(user_ids, "u", self.n_users)

    def item_index(self, item_ids: Any) -> np.ndarray:
        return parse_ids(item_ids, "i", self.n_items)

    def _pairs(self, user_ids: Any, item_ids: Any, positions: Any = None) -> tuple[np.ndarray, ...]:
        arrays = [self.user_index(user_ids), self.item_index(item_ids)]
        if positions is not None:
            arrays.append(np.asarray(positions, dtype=np.int64))
        return tuple(np.broadcast_arrays(*arrays))

    # ---- ground truth (see ``engine.data.demo.truth``) -------------------------
    def attractiveness(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """P(click | the user examined the item), position-free; broadcasts like numpy."""
        u, i = self._pairs(user_ids, item_ids)
        return sigmoid(self.truth.logit(u, i))

    def relevance(self, user_id: str | int) -> np.ndarray:
        """Attractiveness of every item (in item index order) for one user: the ideal ranking's key."""
        return self.truth.relevance(int(self.user_index(user_id)))

    def click_probability(self, user_ids: Any, item_ids: Any, positions: Any) -> np.ndarray:
        """P(click) of showing ``item_ids`` to ``user_ids`` at ``positions``; broadcasts."""
        return self.truth.click_probability(*self._pairs(user_ids, item_ids, positions))

    def purchase_probability(self, user_ids: Any, item_ids: Any, positions: Any) -> np.ndarray:
        """P(click and purchase) of a shown item; ``click_probability · P(buy | click)``."""
        return self.truth.purchase_probability(*self._pairs(user_ids, item_ids, positions))

    def sample_feedback(self, user_ids: Any, item_ids: Any, positions: Any, rng: np.random.Generator) -> Feedback:
        """One random draw of what users do with shown items — the same law the history came from."""
        u, i, p = self._pairs(user_ids, item_ids, positions)
        return self.truth.feedback(u.ravel(), i.ravel(), p.ravel(), self.truth.logit(u, i).ravel(), rng)

    def user_attributes(self) -> pd.DataFrame:
        """Each user's device, country, segment and tenure (``engine.data.demo.attributes``)."""
        if self._users is None:
            self._users = user_attributes(self.params["seed"], self.user_ids, self.latent.price_sensitivity,
                                          self.events["user_id"])
        return self._users

    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = Dataset(items=self.items, events=self.events, name="demo", users=self.user_attributes())
        return self._dataset

    # ---- persistence (see ``engine.data.demo.persistence``) -------------------
    def save(self, directory: Path, table_format: TableFormat | None = None) -> Path:
        """Write the world to ``directory``: meta.json, latent.npz and the two tables."""
        saved = SavedWorld(self.params, self.categories, self.latent, self.items, self.events)
        return write_world(directory, saved, table_format)

    @classmethod
    def load(cls, directory: Path) -> DemoWorld:
        saved = read_world(directory)
        return cls(
            params=saved.params, categories=saved.categories, latent=saved.latent, items=saved.items,
            events=saved.events,
        )

    @classmethod
    def load_or_generate(
        cls,
        directory: Path,
        seed: int = 42,
        n_users: int = 10_000,
        n_items: int = 5_000,
        n_categories: int = 24,
        days: int = 60,
    ) -> DemoWorld:
        """The world saved in ``directory`` when it was made with these parameters, else a new one (saved)."""
        wanted = {"seed": seed, "n_users": n_users, "n_items": n_items, "n_categories": n_categories, "days": days}
        try:
            if saved_with(directory, wanted):
                return cls.load(directory)
        except (OSError, ValueError):
            pass  # nothing usable saved: generate below
        world = cls.generate(**wanted)
        world.save(directory)
        return world
