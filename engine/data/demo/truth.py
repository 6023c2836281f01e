"""The demo world's ground truth: how likely a user is to view, click, buy and rate a shown item.

For user u, item i at list position p (0 = top):

    attractiveness(u, i) = sigmoid(b + w_q·q_i + w_t·<x_u, y_i> + w_c·log(K·θ_u[cat(i)]))
    P(view)     = bias(p) · attractiveness^½          (the user looked at the tile)
    P(click)    = bias(p) · attractiveness            (examined, then opened)
    P(purchase) = P(click) · P(cart | click) · P(checkout | cart)

where ``bias(p) = 1 / log2(p + 2)`` is the examination probability, q_i the standardised log of
the popularity prior, x_u / y_i latent vectors and θ_u the user's category preferences.  Every
function here works on user and item indices; ``DemoWorld`` maps ids to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from engine.data.demo.vocabulary import median_prices

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


def position_bias(positions: np.ndarray | Sequence[int] | int) -> np.ndarray:
    """Probability that a user examines list position ``p`` (0 = top): ``1 / log2(p + 2)``."""
    p = np.asarray(positions, dtype=np.float64)
    if np.any(p < 0):
        raise ValueError("positions start at 0")
    return 1.0 / np.log2(p + 2.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Feedback:
    """One draw of user behaviour on shown (user, item, position) triples; boolean arrays."""

    view: np.ndarray
    click: np.ndarray
    add_to_cart: np.ndarray
    purchase: np.ndarray


class GroundTruth:
    """The behaviour law of one world, from its latent arrays."""

    def __init__(
        self,
        *,
        n_categories: int,
        item_category: np.ndarray,
        price: np.ndarray,
        pop_prior: np.ndarray,
        item_vecs: np.ndarray,
        user_vecs: np.ndarray,
        user_theta: np.ndarray,
        price_sensitivity: np.ndarray,
    ) -> None:
        self.item_category = item_category
        self.item_vecs = item_vecs
        self.user_vecs = user_vecs
        self.price_sensitivity = price_sensitivity
        # Quality is the popularity rank mapped onto a standard normal: the prior's Zipf tail
        # would otherwise hand the top items an unbounded logit.
        rank = np.argsort(np.argsort(-pop_prior, kind="stable"), kind="stable")
        self.quality = ndtri((len(pop_prior) - rank - 0.5) / len(pop_prior))
        self.log_theta = np.maximum(np.log(n_categories * user_theta), CATEGORY_LOG_FLOOR)
        self.log_rel_price = np.log(price / median_prices(n_categories)[item_category])

    def logit(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """The attractiveness logit of (user, item) index arrays of one shape."""
        out = np.empty(u.shape, dtype=np.float64)
        flat_u, flat_i, flat_out = u.ravel(), i.ravel(), out.reshape(-1)
        step = 1 << 18  # bounds the (chunk × dim) temporaries at a few MB
        for s in range(0, flat_u.size, step):
            uu, ii = flat_u[s : s + step], flat_i[s : s + step]
            taste = np.einsum("ij,ij->i", self.user_vecs[uu], self.item_vecs[ii])
            flat_out[s : s + step] = (
                ATTR_BIAS
                + ATTR_QUALITY * self.quality[ii]
                + ATTR_TASTE * taste
                + ATTR_CATEGORY * self.log_theta[uu, self.item_category[ii]]
            )
        return out

    def relevance(self, u: int) -> np.ndarray:
        """Attractiveness of every item (in item index order) for user index ``u``."""
        logit = (
            ATTR_BIAS
            + ATTR_QUALITY * self.quality
            + ATTR_TASTE * (self.item_vecs @ self.user_vecs[u])
            + ATTR_CATEGORY * self.log_theta[u, self.item_category]
        )
        return sigmoid(logit)

    def click_probability(self, u: np.ndarray, i: np.ndarray, p: np.ndarray) -> np.ndarray:
        return position_bias(p) * sigmoid(self.logit(u, i))

    def purchase_probability(self, u: np.ndarray, i: np.ndarray, p: np.ndarray) -> np.ndarray:
        logit = self.logit(u, i)
        return position_bias(p) * sigmoid(logit) * self.buy_given_click(u, i, logit)

    def buy_given_click(self, u: np.ndarray, i: np.ndarray, logit: np.ndarray) -> np.ndarray:
        return self.cart_given_click(u, i, logit) * CHECKOUT_PROBABILITY

    def cart_given_click(self, u: np.ndarray, i: np.ndarray, logit: np.ndarray) -> np.ndarray:
        return sigmoid(
            CART_BIAS
            + CART_ATTR * (logit - LOGIT_REF)
            - CART_PRICE * self.price_sensitivity[u] * self.log_rel_price[i]
        )

    def feedback(
        self, u: np.ndarray, i: np.ndarray, p: np.ndarray, logit: np.ndarray, rng: np.random.Generator
    ) -> Feedback:
        """One draw of the law for flat (user, item, position) arrays whose ``logit`` is known."""
        attr = sigmoid(logit)
        examined = rng.random(u.size) < position_bias(p)
        # Splitting attractiveness into two equal stages gives views a softer signal than clicks
        # while keeping P(click) = bias · attractiveness exactly.
        stage = np.sqrt(attr)
        view = examined & (rng.random(u.size) < stage)
        click = view & (rng.random(u.size) < stage)
        cart = click & (rng.random(u.size) < self.cart_given_click(u, i, logit))
        purchase = cart & (rng.random(u.size) < CHECKOUT_PROBABILITY)
        return Feedback(view=view, click=click, add_to_cart=cart, purchase=purchase)

    @staticmethod
    def rating_value(logit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """1-5 stars for bought items: higher for more attractive ones, with noise."""
        expected = 1.0 + 4.0 * sigmoid(0.8 * (logit - LOGIT_REF) - 0.1)
        return np.clip(np.rint(expected + rng.normal(0.0, 0.8, logit.shape)), 1, 5)
