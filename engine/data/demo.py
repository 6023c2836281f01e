"""A seeded, fully synthetic shop whose ground truth is known.

``DemoWorld.generate(seed)`` draws a catalogue (categories, titles, prices, a Zipf popularity
prior), users with latent tastes, and a history of events sampled from the very ground truth the
world exposes — ``click_probability``, ``purchase_probability``, ``relevance`` — so a simulator can
score any ranking against the truth and a model that learns the history well really does earn more
clicks.

The ground truth, for user u, item i at list position p (0 = top):

    attractiveness(u, i) = sigmoid(b + w_q·q_i + w_t·<x_u, y_i> + w_c·log(K·θ_u[cat(i)]))
    P(view)     = bias(p) · attractiveness^½          (the user looked at the tile)
    P(click)    = bias(p) · attractiveness            (examined, then opened)
    P(purchase) = P(click) · P(cart | click) · P(checkout | cart)

where ``bias(p) = 1 / log2(p + 2)`` is the examination probability, q_i the standardised log of
the popularity prior, x_u / y_i latent vectors and θ_u the user's category preferences.  History is
made of sessions of ranked lists (10 slots) filled by a legacy mix of best-sellers, the user's
favourite categories and random picks; every event in it is a draw of ``sample_feedback``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import ndtri

from engine.data.schema import Dataset, DatasetError

FORMAT_VERSION = 1
END_EPOCH = datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp()
DAY = 86_400.0

LATENT_DIM = 16
POPULARITY_EXPONENT = 1.1
LIST_LENGTH = 10
MEAN_SESSIONS = 15.0  # per user; lognormal, so a few users are far busier
ACTIVITY_SIGMA = 1.0
MAX_SESSIONS = 400

# Where the legacy system's list slots come from: best-sellers, the user's categories, anything.
EXPOSURE_MIX = (0.25, 0.55, 0.20)
# Category pages sort by popularity too, but users browse them deeper than a best-seller list.
CATEGORY_PAGE_SKEW = 0.5

# Attractiveness logit weights (see the module docstring); tuned so that history lists draw about
# 7% clicks per slot and the ideal personal top 10 earns ~2.6x the clicks of the best-sellers.
ATTR_BIAS = -3.2
ATTR_QUALITY = 0.6
ATTR_TASTE = 1.8
ATTR_CATEGORY = 0.8
CATEGORY_LOG_FLOOR = -3.0
# A typical logit of a shown item; cart and rating models are centred on it.
LOGIT_REF = -2.5

CART_BIAS = -1.8
CART_ATTR = 0.6
CART_PRICE = 0.5
CHECKOUT_PROBABILITY = 0.55
RATING_PROBABILITY = 0.4

TableFormat = Literal["parquet", "csv.gz"]

# name, median price, category-specific modifiers, nouns
# fmt: off
_CATALOGUE: tuple[tuple[str, float, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Kitchen", 35.0, ("Steel", "Cast Iron", "Ceramic", "Bamboo", "Copper", "Non-Stick"),
     ("Frying Pan", "Chef's Knife", "Cutting Board", "Saucepan", "Mixing Bowl", "Kettle", "Spatula",
      "Colander", "Stockpot", "Whisk", "Grater", "Teapot")),
    ("Outdoor", 80.0, ("Nylon", "Aluminium", "Ripstop", "Canvas", "Titanium", "Waterproof"),
     ("Tent", "Sleeping Bag", "Camping Chair", "Lantern", "Hammock", "Backpack", "Cooler Box",
      "Hiking Poles", "Camp Stove", "Water Filter")),
    ("Books", 16.0, ("Illustrated", "Paperback", "Hardcover", "Annotated", "Collector's", "Pocket"),
     ("Cookbook", "Thriller", "Mystery Novel", "Biography", "Atlas", "Poetry Collection", "Field Guide",
      "Graphic Novel", "Travel Guide", "History of Europe")),
    ("Electronics", 90.0, ("Wireless", "Noise-Cancelling", "Portable", "Smart", "Fast-Charge", "USB-C"),
     ("Headphones", "Bluetooth Speaker", "Power Bank", "Charger", "Smartwatch", "Webcam", "Keyboard",
      "Mouse", "USB Hub", "E-Reader")),
    ("Garden", 30.0, ("Terracotta", "Galvanised", "Recycled", "Ergonomic", "Stainless", "Wooden"),
     ("Watering Can", "Pruning Shears", "Planter", "Garden Hose", "Trowel", "Rake", "Bird Feeder",
      "Seed Tray", "Compost Bin", "Wheelbarrow")),
    ("Toys", 25.0, ("Wooden", "Magnetic", "Musical", "Glow-in-the-Dark", "Soft", "Remote-Control"),
     ("Puzzle", "Building Set", "Plush Bear", "Toy Car", "Kite", "Doll House", "Yo-Yo", "Train Set",
      "Marble Run", "Spinning Top")),
    ("Sports", 40.0, ("Non-Slip", "Adjustable", "Carbon", "Neoprene", "Foldable", "Reflective"),
     ("Yoga Mat", "Dumbbell Set", "Jump Rope", "Tennis Racket", "Football", "Resistance Band",
      "Water Bottle", "Gym Bag", "Foam Roller", "Cycling Gloves")),
    ("Beauty", 22.0, ("Hydrating", "Vegan", "Fragrance-Free", "Herbal", "Travel-Size", "Matte"),
     ("Face Serum", "Lip Balm", "Hair Dryer", "Makeup Brush Set", "Hand Cream", "Shampoo", "Nail Kit",
      "Perfume", "Sunscreen", "Face Mask")),
    ("Home Decor", 35.0, ("Linen", "Marble", "Rattan", "Brass", "Velvet", "Hand-Painted"),
     ("Table Lamp", "Wall Clock", "Vase", "Throw Pillow", "Picture Frame", "Scented Candle", "Mirror",
      "Rug", "Curtains", "Bookends")),
    ("Furniture", 220.0, ("Oak", "Walnut", "Upholstered", "Metal", "Extendable", "Stackable"),
     ("Armchair", "Bookshelf", "Coffee Table", "Desk", "Bar Stool", "Bed Frame", "Side Table",
      "Wardrobe", "Sofa", "Dining Chair")),
    ("Clothing", 35.0, ("Cotton", "Merino", "Denim", "Fleece", "Organic", "Slim-Fit"),
     ("T-Shirt", "Hoodie", "Jeans", "Rain Jacket", "Sweater", "Scarf", "Chinos", "Dress", "Cardigan",
      "Polo Shirt")),
    ("Shoes", 75.0, ("Leather", "Suede", "Mesh", "Waterproof", "Cushioned", "Canvas"),
     ("Running Shoes", "Sneakers", "Hiking Boots", "Sandals", "Loafers", "Slippers", "Chelsea Boots",
      "Trainers")),
    ("Jewelry", 60.0, ("Silver", "Gold-Plated", "Pearl", "Rose Gold", "Gemstone", "Engraved"),
     ("Necklace", "Bracelet", "Ring", "Earrings", "Pendant", "Anklet", "Brooch", "Cufflinks")),
    ("Pet Supplies", 28.0, ("Orthopedic", "Chew-Proof", "Washable", "Self-Cleaning", "Padded", "Reflective"),
     ("Dog Bed", "Cat Tree", "Leash", "Pet Bowl", "Chew Toy", "Litter Box", "Scratching Post",
      "Pet Carrier")),
    ("Baby", 45.0, ("Organic", "Anti-Colic", "Foldable", "Hypoallergenic", "Muslin", "Convertible"),
     ("Stroller", "Baby Monitor", "High Chair", "Bottle Set", "Changing Mat", "Teether", "Baby Blanket",
      "Play Mat")),
    ("Office", 18.0, ("Leather-Bound", "Refillable", "Recycled", "Magnetic", "Dotted", "Desktop"),
     ("Notebook", "Fountain Pen", "Desk Organiser", "Stapler", "Planner", "Whiteboard", "Desk Lamp",
      "File Folder")),
    ("Music", 95.0, ("Acoustic", "Electric", "Beginner", "Studio", "Rosewood", "Handmade"),
     ("Guitar", "Ukulele", "Drum Pad", "Harmonica", "Guitar Strings", "Metronome", "Microphone",
      "Digital Piano")),
    ("Games", 30.0, ("Strategy", "Family", "Two-Player", "Cooperative", "Retro", "Deluxe Edition"),
     ("Board Game", "Game Controller", "Card Game", "Chess Set", "Dice Set", "Gaming Headset",
      "Video Game", "Party Game")),
    ("Grocery", 9.0, ("Organic", "Fair-Trade", "Artisan", "Roasted", "Spiced", "Single-Origin"),
     ("Coffee Beans", "Green Tea", "Olive Oil", "Dark Chocolate", "Honey", "Pasta", "Granola",
      "Hot Sauce")),
    ("Health", 30.0, ("Rechargeable", "Sugar-Free", "Digital", "Portable", "Plant-Based", "Clinical"),
     ("Vitamin D", "Protein Powder", "First Aid Kit", "Thermometer", "Massage Gun", "Heating Pad",
      "Pill Organiser", "Fitness Tracker")),
    ("Automotive", 40.0, ("Cordless", "Heavy-Duty", "Universal", "All-Weather", "Magnetic", "Digital"),
     ("Car Vacuum", "Dash Cam", "Phone Mount", "Jump Starter", "Tyre Inflator", "Seat Cover",
      "Floor Mats", "Car Charger")),
    ("Tools", 55.0, ("Cordless", "Magnetic", "Chrome", "Insulated", "Laser", "Folding"),
     ("Drill", "Hammer", "Screwdriver Set", "Tape Measure", "Socket Set", "Spirit Level",
      "Utility Knife", "Workbench")),
    ("Bath", 25.0, ("Cotton", "Bamboo", "Quick-Dry", "Stainless", "Teak", "Waffle"),
     ("Bath Towel", "Shower Curtain", "Bath Mat", "Soap Dispenser", "Toothbrush Holder", "Bathrobe",
      "Shower Head", "Towel Rail")),
    ("Bedding", 60.0, ("Linen", "Percale", "Down", "Cooling", "Flannel", "Silk"),
     ("Duvet", "Pillow", "Fitted Sheet", "Blanket", "Mattress Topper", "Pillowcase Set", "Quilt",
      "Weighted Blanket")),
    ("Art Supplies", 20.0, ("Watercolour", "Acrylic", "Artist-Grade", "Pastel", "Archival", "Student"),
     ("Sketchbook", "Paint Set", "Easel", "Brush Set", "Coloured Pencils", "Canvas Board", "Clay Kit",
      "Palette")),
    ("Travel", 50.0, ("Carry-On", "Hard-Shell", "Packable", "RFID-Blocking", "Expandable", "Compact"),
     ("Suitcase", "Travel Pillow", "Packing Cubes", "Passport Holder", "Duffel Bag", "Luggage Tag",
      "Toiletry Bag", "Travel Adapter")),
    ("Photography", 70.0, ("Carbon", "Magnetic", "LED", "Weatherproof", "Professional", "Mini"),
     ("Tripod", "Camera Bag", "Lens Filter", "Ring Light", "Memory Card", "Camera Strap", "Gimbal",
      "Light Stand")),
    ("Lighting", 40.0, ("Dimmable", "Solar", "Smart", "Industrial", "Paper", "Crystal"),
     ("Pendant Light", "Floor Lamp", "String Lights", "Night Light", "Spotlight", "Wall Sconce",
      "Reading Light", "Light Bulb Set")),
)

_ADJECTIVES = (
    "Compact", "Classic", "Deluxe", "Essential", "Premium", "Modern", "Vintage", "Lightweight",
    "Everyday", "Sturdy", "Minimalist", "Rustic", "Sleek", "Handcrafted", "Eco", "Pro", "Mini",
    "Large", "Cozy", "Bold", "Nordic", "Urban", "Signature", "Family", "Elegant", "Durable",
)
# fmt: on

MAX_CATEGORIES = len(_CATALOGUE)

_ITEM_TABLE = "items"
_EVENT_TABLE = "events"
_LATENT_FILE = "latent.npz"
_META_FILE = "meta.json"


def position_bias(positions: np.ndarray | Sequence[int] | int) -> np.ndarray:
    """Probability that a user examines list position ``p`` (0 = top): ``1 / log2(p + 2)``."""
    p = np.asarray(positions, dtype=np.float64)
    if np.any(p < 0):
        raise ValueError("positions start at 0")
    return 1.0 / np.log2(p + 2.0)


def _streams(seed: int) -> tuple[np.random.Generator, ...]:
    """Catalogue, users, history: one stream each, so changing one stage leaves the others' draws alone."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _format_ids(prefix: str, n: int) -> np.ndarray:
    width = max(5, len(str(max(n - 1, 0))))
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width)).astype(object)


def _parse_ids(ids: Any, prefix: str, n: int) -> np.ndarray:
    """Indices of ``"u00042"``-style ids (a scalar, a sequence or an array); integers pass through."""
    arr = np.asarray(ids)
    if arr.dtype.kind in "iu":
        idx = arr.astype(np.int64)
    else:
        text = arr.astype(str)
        if not np.all(np.char.startswith(text, prefix)):
            raise KeyError(f"ids must look like {prefix}00000")
        try:
            idx = np.char.lstrip(text, prefix).astype(np.int64)
        except ValueError as exc:
            raise KeyError(f"malformed id in {text.ravel()[:5].tolist()}") from exc
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise KeyError(f"id out of range: this world has {n} {'users' if prefix == 'u' else 'items'}")
    return idx


def _sample_groups(weights: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each entry of ``rows``, a column drawn with probability ∝ ``weights[row]``."""
    n_rows, n_cols = weights.shape
    flat = np.arange(weights.size) // n_cols
    counts = np.full(n_rows, n_cols)
    return _sample_ragged(weights.ravel(), flat, counts, rows, rng) - rows * n_cols


def _sample_ragged(
    weights: np.ndarray, group: np.ndarray, counts: np.ndarray, wanted: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Flat indices drawn within group ``wanted[j]`` with probability ∝ ``weights``.

    ``weights`` is grouped contiguously (``group`` sorted, ``counts`` per group).  Normalised per
    group, the running sum of group g spans (g, g + 1], so one searchsorted serves every group.
    """
    totals = np.bincount(group, weights=weights, minlength=len(counts))
    cdf = np.cumsum(weights / totals[group])
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    idx = np.searchsorted(cdf, wanted + rng.random(wanted.size))
    # float round-off at a group's edge must not spill into the neighbour
    return np.clip(idx, first[wanted], first[wanted] + counts[wanted] - 1)


@dataclass
class Feedback:
    """One draw of user behaviour on shown (user, item, position) triples; boolean arrays."""

    view: np.ndarray
    click: np.ndarray
    add_to_cart: np.ndarray
    purchase: np.ndarray


class DemoWorld:
    """A synthetic shop: catalogue, users, ground-truth behaviour and the history sampled from it."""

    def __init__(
        self,
        *,
        params: dict[str, int],
        categories: list[str],
        item_category: np.ndarray,
        titles: np.ndarray,
        price: np.ndarray,
        pop_prior: np.ndarray,
        item_vecs: np.ndarray,
        user_vecs: np.ndarray,
        user_theta: np.ndarray,
        price_sensitivity: np.ndarray,
        items: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
    ) -> None:
        self.params = dict(params)
        self.categories = list(categories)
        self.item_category = item_category
        self.titles = titles
        self.price = price
        self.pop_prior = pop_prior
        self.item_vecs = item_vecs
        self.user_vecs = user_vecs
        self.user_theta = user_theta
        self.price_sensitivity = price_sensitivity
        self.user_ids = _format_ids("u", len(user_vecs))
        self.item_ids = _format_ids("i", len(item_vecs))
        # Quality is the popularity rank mapped onto a standard normal: the prior's Zipf tail
        # would otherwise hand the top items an unbounded logit.
        rank = np.argsort(np.argsort(-pop_prior, kind="stable"), kind="stable")
        self._quality = ndtri((len(pop_prior) - rank - 0.5) / len(pop_prior))
        self._log_theta = np.maximum(np.log(len(categories) * user_theta), CATEGORY_LOG_FLOOR)
        medians = np.array([_CATALOGUE[c][1] for c in range(len(categories))])
        self._log_rel_price = np.log(price / medians[item_category])
        if events is None:
            events = self._sample_history()
        if items is None:
            items = self._item_table(events)
        self.items = items
        self.events = events
        self._dataset: Dataset | None = None

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
        rng_items, rng_users, _ = _streams(seed)
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
        medians = np.array([_CATALOGUE[c][1] for c in range(k)])
        price = np.floor(medians[item_category] * rng_items.lognormal(0.0, 0.5, n_items)) + 0.99
        titles = cls._titles(rng_items, item_category)

        # Users like a few categories; their taste vector leans towards those categories' centroids.
        global_share = np.bincount(item_category, minlength=k) / n_items
        user_theta = 0.85 * rng_users.dirichlet(np.full(k, 0.3), size=n_users) + 0.15 * global_share
        user_vecs = user_theta @ centroids
        user_vecs /= np.linalg.norm(user_vecs, axis=1, keepdims=True)
        user_vecs = 0.75 * user_vecs + 0.5 * rng_users.standard_normal((n_users, LATENT_DIM)) / math.sqrt(LATENT_DIM)
        price_sensitivity = rng_users.lognormal(0.0, 0.5, n_users)
        return cls(
            params=params,
            categories=[_CATALOGUE[c][0] for c in range(k)],
            item_category=item_category,
            titles=titles,
            price=price,
            pop_prior=pop_prior,
            item_vecs=item_vecs,
            user_vecs=user_vecs,
            user_theta=user_theta,
            price_sensitivity=price_sensitivity,
        )

    @staticmethod
    def _titles(rng: np.random.Generator, item_category: np.ndarray) -> np.ndarray:
        n = len(item_category)
        adjectives = np.array(_ADJECTIVES, dtype=object)[rng.integers(0, len(_ADJECTIVES), n)]
        pick_m = rng.random(n)
        pick_n = rng.random(n)
        titles = np.empty(n, dtype=object)
        for c in np.unique(item_category):
            where = item_category == c
            _, _, modifiers, nouns = _CATALOGUE[c]
            mods = np.array(modifiers, dtype=object)[(pick_m[where] * len(modifiers)).astype(int)]
            nns = np.array(nouns, dtype=object)[(pick_n[where] * len(nouns)).astype(int)]
            titles[where] = adjectives[where] + " " + mods + " " + nns
        return titles

    # ---- ground truth ---------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_vecs)

    @property
    def n_items(self) -> int:
        return len(self.item_vecs)

    def user_index(self, user_ids: Any) -> np.ndarray:
        return _parse_ids(user_ids, "u", self.n_users)

    def item_index(self, item_ids: Any) -> np.ndarray:
        return _parse_ids(item_ids, "i", self.n_items)

    def _logit(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        out = np.empty(u.shape, dtype=np.float64)
        flat_u, flat_i, flat_out = u.ravel(), i.ravel(), out.reshape(-1)
        step = 1 << 18  # bounds the (chunk × dim) temporaries at a few MB
        for s in range(0, flat_u.size, step):
            uu, ii = flat_u[s : s + step], flat_i[s : s + step]
            taste = np.einsum("ij,ij->i", self.user_vecs[uu], self.item_vecs[ii])
            flat_out[s : s + step] = (
                ATTR_BIAS
                + ATTR_QUALITY * self._quality[ii]
                + ATTR_TASTE * taste
                + ATTR_CATEGORY * self._log_theta[uu, self.item_category[ii]]
            )
        return out

    def _pairs(self, user_ids: Any, item_ids: Any, positions: Any = None) -> tuple[np.ndarray, ...]:
        arrays = [self.user_index(user_ids), self.item_index(item_ids)]
        if positions is not None:
            arrays.append(np.asarray(positions, dtype=np.int64))
        return tuple(np.broadcast_arrays(*arrays))

    def attractiveness(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """P(click | the user examined the item), position-free; broadcasts like numpy."""
        u, i = self._pairs(user_ids, item_ids)
        return _sigmoid(self._logit(u, i))

    def relevance(self, user_id: str | int) -> np.ndarray:
        """Attractiveness of every item (in item index order) for one user: the ideal ranking's key."""
        u = int(self.user_index(user_id))
        logit = (
            ATTR_BIAS
            + ATTR_QUALITY * self._quality
            + ATTR_TASTE * (self.item_vecs @ self.user_vecs[u])
            + ATTR_CATEGORY * self._log_theta[u, self.item_category]
        )
        return _sigmoid(logit)

    def _buy_given_click(self, u: np.ndarray, i: np.ndarray, logit: np.ndarray) -> np.ndarray:
        return self._cart_given_click(u, i, logit) * CHECKOUT_PROBABILITY

    def _cart_given_click(self, u: np.ndarray, i: np.ndarray, logit: np.ndarray) -> np.ndarray:
        return _sigmoid(
            CART_BIAS
            + CART_ATTR * (logit - LOGIT_REF)
            - CART_PRICE * self.price_sensitivity[u] * self._log_rel_price[i]
        )

    def click_probability(self, user_ids: Any, item_ids: Any, positions: Any) -> np.ndarray:
        """P(click) of showing ``item_ids`` to ``user_ids`` at ``positions``; broadcasts."""
        u, i, p = self._pairs(user_ids, item_ids, positions)
        return position_bias(p) * _sigmoid(self._logit(u, i))

    def purchase_probability(self, user_ids: Any, item_ids: Any, positions: Any) -> np.ndarray:
        """P(click and purchase) of a shown item; ``click_probability · P(buy | click)``."""
        u, i, p = self._pairs(user_ids, item_ids, positions)
        logit = self._logit(u, i)
        return position_bias(p) * _sigmoid(logit) * self._buy_given_click(u, i, logit)

    def sample_feedback(self, user_ids: Any, item_ids: Any, positions: Any, rng: np.random.Generator) -> Feedback:
        """One random draw of what users do with shown items — the same law the history came from."""
        u, i, p = self._pairs(user_ids, item_ids, positions)
        return self._feedback(u.ravel(), i.ravel(), p.ravel(), self._logit(u, i).ravel(), rng)

    def _feedback(
        self, u: np.ndarray, i: np.ndarray, p: np.ndarray, logit: np.ndarray, rng: np.random.Generator
    ) -> Feedback:
        attr = _sigmoid(logit)
        examined = rng.random(u.size) < position_bias(p)
        # Splitting attractiveness into two equal stages gives views a softer signal than clicks
        # while keeping P(click) = bias · attractiveness exactly.
        stage = np.sqrt(attr)
        view = examined & (rng.random(u.size) < stage)
        click = view & (rng.random(u.size) < stage)
        cart = click & (rng.random(u.size) < self._cart_given_click(u, i, logit))
        purchase = cart & (rng.random(u.size) < CHECKOUT_PROBABILITY)
        return Feedback(view=view, click=click, add_to_cart=cart, purchase=purchase)

    def _rating_value(self, logit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """1-5 stars for bought items: higher for more attractive ones, with noise."""
        expected = 1.0 + 4.0 * _sigmoid(0.8 * (logit - LOGIT_REF) - 0.1)
        return np.clip(np.rint(expected + rng.normal(0.0, 0.8, logit.shape)), 1, 5)

    # ---- history --------------------------------------------------------------
    def _exposures(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sessions of legacy lists: (user, item, position, session start) per shown slot."""
        n_users, n_items, k = self.n_users, self.n_items, len(self.categories)
        mu = math.log(MEAN_SESSIONS) - ACTIVITY_SIGMA**2 / 2
        sessions = np.clip(np.rint(rng.lognormal(mu, ACTIVITY_SIGMA, n_users)), 1, MAX_SESSIONS).astype(np.int64)
        session_user = np.repeat(np.arange(n_users), sessions)
        n_sessions = session_user.size
        days = self.params["days"]
        # A daily rhythm: quiet nights, an evening peak.
        hourly = 1.0 + 0.9 * np.sin((np.arange(24) - 13.0) / 24.0 * 2 * np.pi)
        hour = rng.choice(24, size=n_sessions, p=hourly / hourly.sum())
        day = rng.integers(0, days, n_sessions)
        start = END_EPOCH - days * DAY + day * DAY + (hour + rng.random(n_sessions)) * 3600.0
        start = np.minimum(start, END_EPOCH - 3600.0)

        user = np.repeat(session_user, LIST_LENGTH)
        session = np.repeat(np.arange(n_sessions), LIST_LENGTH)
        position = np.tile(np.arange(LIST_LENGTH), n_sessions)
        n = user.size
        source = rng.choice(3, size=n, p=EXPOSURE_MIX)
        item = np.empty(n, dtype=np.int64)

        pop_cdf = np.cumsum(self.pop_prior)
        pick = source == 0
        item[pick] = np.minimum(np.searchsorted(pop_cdf, rng.random(pick.sum()) * pop_cdf[-1]), n_items - 1)

        # Category slots: a category from the user's θ, then an item of it by popularity.
        pick = source == 1
        cat = _sample_groups(self.user_theta, user[pick], rng)
        order = np.argsort(self.item_category, kind="stable")
        counts = np.bincount(self.item_category, minlength=k)
        sorted_cat = self.item_category[order]
        # One ragged row per category, laid out as a flat (category-sorted) array.
        slot = _sample_ragged(self.pop_prior[order] ** CATEGORY_PAGE_SKEW, sorted_cat, counts, cat, rng)
        item[pick] = order[slot]

        pick = source == 2
        item[pick] = rng.integers(0, n_items, pick.sum())

        # The same item twice in one list is a legacy-system bug we do not want in the data.
        _, keep = np.unique(session * n_items + item, return_index=True)
        keep.sort()
        return user[keep], item[keep], position[keep], start[session[keep]]

    def _sample_history(self) -> pd.DataFrame:
        rng = _streams(self.params["seed"])[2]
        user, item, position, start = self._exposures(rng)
        logit = self._logit(user, item)
        fb = self._feedback(user, item, position, logit, rng)

        t_view = start + 2.0 + 1.5 * position + rng.exponential(4.0, user.size)
        t_click = t_view + rng.exponential(6.0, user.size)
        t_cart = t_click + 20.0 + rng.exponential(60.0, user.size)
        t_buy = t_cart + 30.0 + rng.exponential(300.0, user.size)
        t_rate = t_buy + DAY * (0.5 + rng.exponential(2.0, user.size))
        rated = fb.purchase & (rng.random(user.size) < RATING_PROBABILITY) & (t_rate < END_EPOCH)
        stars = self._rating_value(logit, rng)

        parts = [
            ("view", fb.view, t_view, np.ones(user.size)),
            ("click", fb.click, t_click, np.ones(user.size)),
            ("add_to_cart", fb.add_to_cart, t_cart, np.ones(user.size)),
            ("purchase", fb.purchase, t_buy, self.price[item]),
            ("rating", rated, t_rate, stars),
        ]
        ev_user = np.concatenate([user[m] for _, m, _, _ in parts])
        ev_item = np.concatenate([item[m] for _, m, _, _ in parts])
        ev_type = np.concatenate([np.full(int(m.sum()), name, dtype=object) for name, m, _, _ in parts])
        # an exponential tail must not push an event past the end of the world
        ev_time = np.minimum(np.concatenate([t[m] for _, m, t, _ in parts]), END_EPOCH - 1.0)
        ev_value = np.concatenate([v[m] for _, m, _, v in parts])
        order = np.lexsort((ev_user, ev_time))
        return pd.DataFrame(
            {
                "user_id": self.user_ids[ev_user[order]],
                "item_id": self.item_ids[ev_item[order]],
                "type": ev_type[order],
                "timestamp": np.round(ev_time[order], 3),
                "value": ev_value[order].astype(np.float64),
            }
        )

    def _item_table(self, events: pd.DataFrame) -> pd.DataFrame:
        idx = self.item_index(events["item_id"].to_numpy())
        counts = np.bincount(idx, minlength=self.n_items)
        is_rating = (events["type"] == "rating").to_numpy()
        n_ratings = np.bincount(idx[is_rating], minlength=self.n_items)
        sum_ratings = np.bincount(idx[is_rating], weights=events["value"].to_numpy()[is_rating], minlength=self.n_items)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(n_ratings > 0, sum_ratings / np.maximum(n_ratings, 1), np.nan)
        return pd.DataFrame(
            {
                "item_id": self.item_ids,
                "title": self.titles,
                "category": np.array(self.categories, dtype=object)[self.item_category],
                "popularity": counts / max(counts.sum(), 1),
                "avg_rating": avg,
                "price": self.price,
            }
        )

    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = Dataset(items=self.items, events=self.events, name="demo")
        return self._dataset

    # ---- persistence ----------------------------------------------------------
    def save(self, directory: Path, table_format: TableFormat | None = None) -> Path:
        """Write the world to ``directory``: meta.json, latent.npz and the two tables."""
        fmt = table_format or ("parquet" if importlib.util.find_spec("pyarrow") else "csv.gz")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # An interrupted overwrite must not leave an old meta.json vouching for new, partial files.
        (directory / _META_FILE).unlink(missing_ok=True)
        np.savez_compressed(
            directory / _LATENT_FILE,
            item_category=self.item_category,
            price=self.price,
            pop_prior=self.pop_prior,
            item_vecs=self.item_vecs,
            user_vecs=self.user_vecs,
            user_theta=self.user_theta,
            price_sensitivity=self.price_sensitivity,
        )
        for name, table in ((_ITEM_TABLE, self.items), (_EVENT_TABLE, self.events)):
            path = directory / f"{name}.{fmt}"
            if fmt == "parquet":
                table.to_parquet(path, index=False)
            else:
                table.to_csv(path, index=False)
        # meta.json last: its presence marks a complete save.
        meta = {"version": FORMAT_VERSION, "params": self.params, "categories": self.categories, "table_format": fmt}
        (directory / _META_FILE).write_text(json.dumps(meta, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> DemoWorld:
        directory = Path(directory)
        try:
            meta = json.loads((directory / _META_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{directory}: no readable {_META_FILE} ({exc})") from exc
        if meta.get("version") != FORMAT_VERSION:
            raise DatasetError(f"{directory}: demo world format {meta.get('version')}, expected {FORMAT_VERSION}")
        fmt = meta["table_format"]
        try:
            with np.load(directory / _LATENT_FILE, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
            tables = {}
            for name in (_ITEM_TABLE, _EVENT_TABLE):
                path = directory / f"{name}.{fmt}"
                if fmt == "parquet":
                    tables[name] = pd.read_parquet(path)
                else:
                    tables[name] = pd.read_csv(path, dtype={"item_id": str, "user_id": str, "title": str})
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"{directory}: incomplete demo world ({exc})") from exc
        items, events = tables[_ITEM_TABLE], tables[_EVENT_TABLE]
        titles = items["title"].to_numpy(dtype=object)
        return cls(
            params=meta["params"], categories=meta["categories"], titles=titles, items=items, events=events, **arrays
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
        directory = Path(directory)
        try:
            meta = json.loads((directory / _META_FILE).read_text())
            if meta.get("params") == wanted and meta.get("version") == FORMAT_VERSION:
                return cls.load(directory)
        except (OSError, ValueError):
            pass  # nothing usable saved: generate below
        world = cls.generate(**wanted)
        world.save(directory)
        return world
