"""Drawing a new world from a seed: the catalogue (categories, titles, prices, a Zipf popularity
prior, item vectors) and the users' hidden tastes (category preferences, taste vectors, price
sensitivity).  The history is drawn afterwards, from the ground truth (``history``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.data.demo.vocabulary import draw_titles, median_prices

LATENT_DIM = 16
POPULARITY_EXPONENT = 1.1


def streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Catalogue, users, history: one stream each, so changing one stage leaves the others' draws alone."""
    items, users, history = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    return items, users, history


@dataclass(frozen=True)
class Latent:
    """Everything a world is drawn from except its history, by item and user index."""

    item_category: np.ndarray
    titles: np.ndarray
    price: np.ndarray
    pop_prior: np.ndarray
    item_vecs: np.ndarray
    user_vecs: np.ndarray
    user_theta: np.ndarray
    price_sensitivity: np.ndarray

    def numeric(self) -> dict[str, np.ndarray]:
        """The numeric arrays by name (the titles are text and travel in the item table)."""
        return {
            "item_category": self.item_category,
            "price": self.price,
            "pop_prior": self.pop_prior,
            "item_vecs": self.item_vecs,
            "user_vecs": self.user_vecs,
            "user_theta": self.user_theta,
            "price_sensitivity": self.price_sensitivity,
        }


def draw_latent(seed: int, n_users: int, n_items: int, n_categories: int) -> Latent:
    """The seed's catalogue and users (parameters checked by the caller)."""
    rng_items, rng_users, _ = streams(seed)
    k = n_categories
    centroids = rng_items.standard_normal((k, LATENT_DIM))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)

    # Every category gets at least one item; the rest follow uneven category sizes.
    cat_share = rng_items.dirichlet(np.full(k, 3.0))
    item_category = np.concatenate([np.arange(k), rng_items.choice(k, size=n_items - k, p=cat_share)])
    rng_items.shuffle(item_category)
    ranks = rng_items.permutation(n_items)
    pop_prior = 1.0 / (ranks + 1.0) ** POPULARITY_EXPONENT
    pop_prior /= pop_prior.sum()
    noise = rng_items.standard_normal((n_items, LATENT_DIM)) / math.sqrt(LATENT_DIM)
    item_vecs = 0.8 * centroids[item_category] + 0.6 * noise
    item_vecs /= np.linalg.norm(item_vecs, axis=1, keepdims=True)
    price = np.floor(median_prices(k)[item_category] * rng_items.lognormal(0.0, 0.5, n_items)) + 0.99
    titles = draw_titles(rng_items, item_category)

    # Users like a few categories; their taste vector leans towards those categories' centroids.
    global_share = np.bincount(item_category, minlength=k) / n_items
    user_theta = 0.85 * rng_users.dirichlet(np.full(k, 0.3), size=n_users) + 0.15 * global_share
    user_vecs = user_theta @ centroids
    user_vecs /= np.linalg.norm(user_vecs, axis=1, keepdims=True)
    user_vecs = 0.75 * user_vecs + 0.5 * rng_users.standard_normal((n_users, LATENT_DIM)) / math.sqrt(LATENT_DIM)
    price_sensitivity = rng_users.lognormal(0.0, 0.5, n_users)
    return Latent(
        item_category=item_category,
        titles=titles,
        price=price,
        pop_prior=pop_prior,
        item_vecs=item_vecs,
        user_vecs=user_vecs,
        user_theta=user_theta,
        price_sensitivity=price_sensitivity,
    )
