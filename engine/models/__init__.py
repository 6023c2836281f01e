"""Recommenders (popularity, SAR-like item-item, ALS) and the versioned registry that stores them."""

from engine.models.als import ALSRecommender
from engine.models.base import NotFittedError, Recommender
from engine.models.item_item import ItemItemRecommender
from engine.models.popularity import PopularityRecommender
from engine.models.registry import MODEL_CLASSES, ModelRegistry, UnknownModelError, new_model

__all__ = [
    "MODEL_CLASSES",
    "ALSRecommender",
    "ItemItemRecommender",
    "ModelRegistry",
    "NotFittedError",
    "PopularityRecommender",
    "Recommender",
    "UnknownModelError",
    "new_model",
]
