"""An exploring arm's shown list as ``impression`` events carrying each item's position and propensities.

    >>> events = impression_events(result.user_id, result.items, result.extra["exploration"],
    ...                            request_id="r1", policy=policy_label("als", version, serving))
    >>> engine.ingest.track_many(events)

Clicks on the list are ordinary click events with the same ``request_id``; off-policy evaluation
(``engine.experiments.off_policy``) joins them to these impressions by (request_id, item_id).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine.events.tracker import Event
from engine.serving.serving_params import ServingParams


def policy_label(model: str, version: str | None, serving: ServingParams | None) -> str:
    """The logging policy as stored with its impressions: the model version and the arm's settings, as
    compact JSON (``{"model": "als", "version": "...", "serving": {...}}``)."""
    return json.dumps(
        {"model": model, "version": version, "serving": serving.non_default() if serving is not None else {}},
        sort_keys=True, separators=(",", ":"),
    )


def impression_events(
    user_id: str,
    items: Sequence[Mapping[str, Any]],
    exploration: Mapping[str, Sequence[float]],
    request_id: str,
    policy: str,
    timestamp: float | None = None,
) -> list[Event]:
    """One impression per shown item, slot by slot; ids are (request, slot) so a retry is a duplicate."""
    when = time.time() if timestamp is None else timestamp
    return [
        Event(
            event_id=f"{request_id}.{k}", user_id=user_id, item_id=str(item["item_id"]), type="impression",
            request_id=request_id, timestamp=when, position=k, policy=policy,
            propensity=exploration["propensity"][k],
            prefix_propensity=exploration["prefix_propensity"][k] or None,  # an underflow to 0 is not logged
            marginal_propensity=exploration["marginal_propensity"][k] or None,
        )
        for k, item in enumerate(items)
    ]
