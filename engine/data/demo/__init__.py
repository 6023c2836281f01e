"""A seeded, fully synthetic shop whose ground truth is known.

``DemoWorld.generate(seed)`` draws a catalogue (categories, titles, prices, a Zipf popularity
prior), users with latent tastes, and a history of events sampled from the very ground truth the
world exposes — ``click_probability``, ``purchase_probability``, ``relevance`` — so a simulator can
score any ranking against the truth and a model that learns the history well really does earn more
clicks.

Modules: ``vocabulary`` (category names, prices, title words), ``generation`` (catalogue and users
from a seed), ``truth`` (the click, purchase and rating law), ``history`` (the legacy system's lists
and what users did with them), ``persistence`` (the world on disk), ``world`` (``DemoWorld``, by id).
"""

from engine.data.demo.history import DAY, END_EPOCH
from engine.data.demo.truth import Feedback, position_bias
from engine.data.demo.world import DemoWorld

__all__ = ["DAY", "END_EPOCH", "DemoWorld", "Feedback", "position_bias"]
