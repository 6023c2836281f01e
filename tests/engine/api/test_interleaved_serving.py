"""Through a real API process: a user enrolled in an interleaving experiment is served both rankers'
lists merged by team draft, the teams only when asked, and a click credits the team of its item."""

from __future__ import annotations

import httpx
import pytest

from engine.experiments import ExperimentService
from tests.engine.api.test_variant_serving import active_user, experiments, served_as
from tests.support.api import ApiProcess

__all__ = ["experiments"]  # the fixture, shared with the A/B arms' tests

KEY = "als-vs-item-item"


def test_an_enrolled_user_gets_both_rankers_merged_and_a_click_credits_its_team(
    api: ApiProcess, client: httpx.Client, experiments: ExperimentService
) -> None:
    user = active_user(api)
    experiments.create({
        "key": KEY, "name": "ALS against item-item", "kind": "interleaving",
        "variants": [{"name": "control", "model": "als"}, {"name": "treatment", "model": "item_item"}],
        "forced": {user: "control"},  # a forced QA user sees one ranker alone: each ranker's own list
    })
    experiments.start(KEY)
    ranker_a = [i["item_id"] for i in served_as(client, user, "control")["items"]]
    experiments.update(KEY, {"forced": {user: "treatment"}})
    ranker_b = [i["item_id"] for i in served_as(client, user, "treatment")["items"]]
    assert ranker_a != ranker_b
    experiments.update(KEY, {"forced": {}})

    merged = served_as(client, user, "interleaved")
    assert "teams" not in merged and merged["experiment"] == KEY and not merged["fallback"]
    assert merged["model"] == "als+item_item"
    body = client.post("/recommendations", json={"user_id": user, "n": 10, "include_teams": True}).json()
    query = client.post("/recommendations", params={"user_id": user, "n": 10, "include_teams": "true"}).json()
    for answer in (body, query):
        items, teams = [i["item_id"] for i in answer["items"]], answer["teams"]
        assert len(items) == len(set(items)) == len(teams) == 10 and set(items) <= set(ranker_a) | set(ranker_b)
        assert {"A", "B"} <= set(teams)
        for team, ranking in (("A", ranker_a), ("B", ranker_b)):
            picked = [i for i, t in zip(items, teams, strict=True) if t == team]
            assert picked == [i for i in ranking if i in picked]  # each ranker's items in its order
            # team draft: every pick is the ranker's best item not already in the list
            for position, (item, t) in enumerate(zip(items, teams, strict=True)):
                if t == team:
                    assert item == next(i for i in ranking if i not in items[:position])

    teams = body["teams"]
    shared = next(k for k, (x, y) in enumerate(zip([*ranker_a, None], [*ranker_b, None], strict=True)) if x != y)
    b_position = teams.index("B", shared)  # a click in the rankers' common prefix would credit neither
    b_item = body["items"][b_position]["item_id"]
    event = {"user_id": user, "item_id": b_item, "type": "click", "request_id": body["request_id"]}
    assert client.post("/events", json=event).json()["accepted"]
    block = client.get(f"/experiments/{KEY}/readout").json()["interleaving"]
    assert (block["users"], block["wins"], block["losses"], block["ties"]) == (1, 1, 0, 0)
    assert (block["clicks_credited"], block["clicks_ignored"]) == (1, 0)
    assert block["impressions"] >= 3 and block["positions"][b_position]["clicks_b"] == 1
    experiments.stop(KEY)


@pytest.mark.parametrize("flag", ["maybe", "2"])
def test_include_teams_must_be_a_boolean(client: httpx.Client, flag: str) -> None:
    r = client.post("/recommendations", params={"user_id": "u1", "include_teams": flag})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "include_teams"]
