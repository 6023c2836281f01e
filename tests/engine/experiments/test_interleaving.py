"""Interleaving experiments on a real Redis: validation, the merged list and its impression, click
credit, the readout, and its calibration under identical rankers (A/A) by simulation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
from scipy import stats

from analysis.interleaving import PreferenceCounts
from engine.events.tracker import Event
from engine.experiments import ExperimentError, ExperimentService
from engine.experiments.assignment import INTERLEAVED
from engine.experiments.interleaving import counts_from_credit
from engine.runtime import Engine
from engine.storage.keys import Keys
from tests.support.redis_roundtrips import counting_client

CATALOGUE = [f"i{k:03d}" for k in range(60)]


@pytest.fixture
def service(redis_client: redis.Redis) -> Iterator[ExperimentService]:
    svc = ExperimentService(redis_client, Keys())
    yield svc
    svc.close()


def spec(key: str = "ilv", **fields: Any) -> dict[str, Any]:
    return {"key": key, "name": "ALS against item-item", "kind": "interleaving",
            "variants": [{"name": "control", "model": "als"}, {"name": "treatment", "model": "item_item"}],
            **fields}


def started(service: ExperimentService, **fields: Any) -> str:
    exp = service.create(spec(**fields))
    service.start(exp.key)
    return exp.key


def click(user: str, item: str, request_id: str | None = None) -> Event:
    return Event(user_id=user, item_id=item, type="click", request_id=request_id)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"variants": [{"name": "a", "model": "als"}, {"name": "b", "model": "ease"}, {"name": "c", "model": "als@2"}]},
     "variants", "exactly 2 rankers"),
    ({"engine": "bayesian"}, "engine", "not 'bayesian'"),
    ({"bandit": {"min_weight": 0.1}}, "kind", "bandit settings are only for kind 'bandit'"),
])
def test_an_invalid_interleaving_experiment_names_its_field(
    service: ExperimentService, fields: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ExperimentError) as caught:
        service.create(spec(**fields))
    assert caught.value.field == field and words in str(caught.value)
    assert service.list_experiments() == []  # nothing stored


def test_weights_play_no_part_and_the_kind_cannot_change_once_started(service: ExperimentService) -> None:
    key = started(service, variants=[{"name": "control", "model": "als", "weight": 0.9},
                                     {"name": "treatment", "model": "als", "weight": 0.1}])
    assignments = [service.assign(f"u{k}") for k in range(200)]
    assert all(a is not None and a.variant == INTERLEAVED and a.rankers is not None for a in assignments)
    with pytest.raises(ExperimentError, match="kind cannot change"):
        service.update(key, {"kind": "ab"})


# ----------------------------------------------------------------------------- serving and credit


def test_merged_list_keeps_each_rankers_order_and_its_impression_costs_one_round_trip(
    service: ExperimentService, redis_url: str
) -> None:
    started(service, forced={"qa": "treatment"})
    a, b = CATALOGUE[:10], CATALOGUE[5:15][::-1]
    assignment = service.assign("u1")
    assert assignment is not None and assignment.rankers is not None
    assert [r.variant for r in assignment.rankers] == ["control", "treatment"]
    counted, trips = counting_client(redis_url)
    recording = ExperimentService(counted, Keys())
    recording.refresh(force=True)
    recording.interleave(assignment, "req-0", a, b, 10)  # loads the script on the server
    trips.reset()
    merged = recording.interleave(assignment, "req-1", a, b, 10)
    assert trips.count == 1
    assert len(merged.items) == len(set(merged.items)) == 10 and set(merged.items) <= set(a) | set(b)
    for team, ranking in (("A", a), ("B", b)):
        picked = [i for i, t in zip(merged.items, merged.teams, strict=True) if t == team]
        assert picked == [i for i in ranking if i in picked]  # each ranker's items in its order
    assert abs(merged.teams.count("A") - merged.teams.count("B")) <= 1
    # the same request merges the same way; another request may flip other coins
    assert service.interleave(assignment, "req-1", a, b, 10) == merged
    # a forced QA user sees their variant's list alone, and is never recorded
    qa = service.assign("qa")
    assert qa is not None and qa.forced and qa.variant == "treatment" and qa.rankers is None


def test_a_click_credits_the_team_of_the_item_in_the_impression_it_answers(service: ExperimentService) -> None:
    key = started(service)
    assignment = service.assign("u1")
    assert assignment is not None
    first = service.interleave(assignment, "r1", ["x1", "x2", "x3"], ["y1", "y2", "y3"], 6)
    second = service.interleave(assignment, "r2", ["y1", "x1"], ["x1", "y1"], 2)
    team_of = dict(zip(first.items, first.teams, strict=True))
    b_item = next(i for i, t in team_of.items() if t == "B")

    service.observe([click("u1", str(b_item), "r1")])
    service.observe([click("u1", str(b_item), "r1")])  # the same position again: credited once
    service.observe([click("u1", "nowhere", "r1"), click("u1", "x3", "r-unknown")])  # in no impression: ignored
    # without a request id: the newest impression holding the item (r2), where its team may differ
    service.observe([click("u1", "x1")])
    team_in_second = dict(zip(second.items, second.teams, strict=True))["x1"]

    block = service.readout(key).interleaving
    assert block is not None
    credit = {"A": 0, "B": 1}
    credit[team_in_second] += 1
    expected = (credit["B"] > credit["A"], credit["B"] < credit["A"], credit["B"] == credit["A"])
    assert (block["wins"], block["losses"], block["ties"]) == tuple(int(x) for x in expected)
    assert (block["clicks_credited"], block["clicks_repeated"], block["clicks_ignored"]) == (2, 1, 2)
    assert block["impressions"] == 2
    shown = {p["position"]: p["shown_a"] + p["shown_b"] for p in block["positions"]}
    assert shown == {0: 2, 1: 2, 2: 1, 3: 1, 4: 1, 5: 1}
    clicks = {(p["position"], t): p[f"clicks_{t.lower()}"] for p in block["positions"] for t in "AB"}
    expected_clicks = dict.fromkeys(clicks, 0)
    expected_clicks[(first.items.index(b_item), "B")] += 1
    expected_clicks[(second.items.index("x1"), team_in_second)] += 1
    assert clicks == expected_clicks


def test_readout_counts_users_by_the_sign_of_their_credit(service: ExperimentService) -> None:
    key = started(service, planned_sample_size=8)  # users with a preference
    a, b = ["a1", "a2", "a3"], ["b1", "b2", "b3"]
    outcomes = {"w1": "B", "w2": "B", "w3": "B", "l1": "A", "t1": "AB", "t2": ""}
    for user, teams in outcomes.items():
        assignment = service.assign(user)
        assert assignment is not None
        merged = service.interleave(assignment, f"req-{user}", a, b, 6)
        picks = {t: next(i for i, tt in zip(merged.items, merged.teams, strict=True) if tt == t) for t in "AB"}
        service.observe([click(user, str(picks[t]), f"req-{user}") for t in teams])
    readout = service.readout(key)
    block = readout.interleaving
    assert block is not None
    assert (block["users"], block["wins"], block["losses"], block["ties"]) == (6, 3, 1, 2)
    assert block["preference_share"] == pytest.approx(3 / 4)
    # the decision: the signed-rank test of the six users' credit differences (ties dropped)
    differences = [1, 1, 1, -1, 0, 0]
    wilcoxon = stats.wilcoxon(differences, zero_method="wilcox", correction=False, method="approx")
    assert block["method"] == "Wilcoxon signed-rank test of the credit differences"
    assert block["p_value"] == pytest.approx(wilcoxon.pvalue)
    # the mean credit difference over all six users (ties count 0), its t interval and t-test
    t_test = stats.ttest_1samp(differences, 0.0)
    assert block["t_test_p_value"] == pytest.approx(t_test.pvalue)
    assert block["mean_credit_difference"] == pytest.approx(2 / 6)
    t_ci = t_test.confidence_interval(0.95)
    assert block["mean_credit_difference_ci"] == pytest.approx([t_ci.low, t_ci.high])
    assert block["sign_test_p_value"] == pytest.approx(stats.binomtest(3, 4).pvalue)
    ci = stats.binomtest(3, 4).proportion_ci(0.95, method="exact")
    assert block["ci"] == pytest.approx([ci.low, ci.high])
    assert block["verdict"] == "no preference detected" and block["sequential"] is None
    # the verdict's interval: four users with a preference reject no shift (unbounded both ways, open)
    assert block["pseudomedian"] == pytest.approx(np.median([1, 1, 1, 1, 1, 1, 0, 0, 0, -1]))  # Walsh averages
    assert block["pseudomedian_ci"] == [None, None] and block["pseudomedian_ci_closed"] == [False, False]
    assert block["pseudomedian_message"] is None
    assert "no preference detected yet" in readout.decision_text and readout.decision.action == "keep_running"
    assert readout.to_dict()["interleaving"]["wins"] == 3
    assert (readout.progress.min_users, readout.progress.fraction) == (4, 0.5)
    # the counters kept click by click agree with a recount of every user's credit
    expected = PreferenceCounts(3, 1, 2, 2, 4, ((-1, 1), (1, 3)))
    assert counts_from_credit(service.interleaving.read_credit(key, 1)) == expected
    assert service.interleaving.read(key, 1).counts == expected


def test_users_by_credit_difference_follow_every_credited_click(service: ExperimentService) -> None:
    """A user's d moves 0 → +1 → +2 → +1 → 0 → −1 click by click: the counter of each value they leave
    goes down, the one they reach up, so the readout's values always match a recount."""
    key = started(service)
    assignment = service.assign("u1")
    assert assignment is not None
    merged = service.interleave(assignment, "r1", ["a1", "a2", "a3"], ["b1", "b2", "b3"], 6)
    by_team = {t: [str(i) for i, tt in zip(merged.items, merged.teams, strict=True) if tt == t] for t in "AB"}
    other = service.assign("u2")
    assert other is not None
    service.interleave(other, "r2", ["a1", "a2", "a3"], ["b1", "b2", "b3"], 6)
    service.observe([click("u2", "b1", "r2")])
    seen = []
    for team, k in (("B", 0), ("B", 1), ("A", 0), ("A", 1), ("A", 2)):
        service.observe([click("u1", by_team[team][k], "r1")])
        counts = service.interleaving.read(key, 1).counts
        assert counts == counts_from_credit(service.interleaving.read_credit(key, 1))
        seen.append(counts.differences)
    assert seen == [((1, 2),), ((1, 1), (2, 1)), ((1, 2),), ((1, 1),), ((-1, 1), (1, 1))]


def test_clicks_in_the_rankers_common_prefix_credit_neither_team(service: ExperimentService) -> None:
    """Both rankers put s1, s2 on top: whichever team the draft gave them, a click there says nothing
    about which ranker is better; it is counted per position and as shared, never credited."""
    key = started(service)
    assignment = service.assign("u1")
    assert assignment is not None
    merged = service.interleave(assignment, "r1", ["s1", "s2", "a3"], ["s1", "s2", "b3"], 4)
    assert merged.items[:2] == ("s1", "s2") and merged.shared_prefix == 2
    service.observe([click("u1", "s1", "r1"), click("u1", "s2", "r1")])
    block = service.readout(key).interleaving
    assert block is not None
    assert (block["wins"], block["losses"], block["ties"]) == (0, 0, 1)
    assert (block["clicks_shared"], block["clicks_credited"]) == (2, 0)
    assert sum(p["clicks_a"] + p["clicks_b"] for p in block["positions"][:2]) == 2
    service.observe([click("u1", "b3", "r1")])  # below the prefix: credited to B
    block = service.readout(key).interleaving
    assert block is not None and (block["wins"], block["clicks_credited"], block["mean_credit_difference"]) == (1, 1, 1)


def test_a_phase_recorded_without_the_values_or_the_sums_is_read_by_what_it_kept(
    service: ExperimentService, redis_client: redis.Redis
) -> None:
    """Counters kept before the users' credit differences by value existed: the t-test of the mean
    decides.  Kept before the sums too: the readout cannot run the t-test, so the exact sign test
    decides and the mean is unknown (None), never a wrong 0."""
    key = started(service)
    for k in range(6):
        assignment = service.assign(f"u{k}")
        assert assignment is not None
        merged = service.interleave(assignment, f"r{k}", ["a1", "a2"], ["b1", "b2"], 4)
        item = next(i for i, t in zip(merged.items, merged.teams, strict=True) if t == ("B" if k else "A"))
        service.observe([click(f"u{k}", str(item), f"r{k}")])
    counters = Keys().experiment_position_credit(key, 1)
    redis_client.hdel(counters, "diff|values", "diff|=1", "diff|=-1")
    block = service.readout(key).interleaving
    assert block is not None and (block["wins"], block["losses"]) == (5, 1)
    assert block["method"] == "t-test of the mean credit difference"
    assert block["pseudomedian_ci"] is None and "not kept" in block["pseudomedian_message"]
    assert block["p_value"] == pytest.approx(stats.ttest_1samp([1, 1, 1, 1, 1, -1], 0.0).pvalue)
    redis_client.hdel(counters, "diff|sum", "diff|squares")
    block = service.readout(key).interleaving
    assert block is not None
    assert block["method"] == "exact sign test" and block["p_value"] == pytest.approx(stats.binomtest(5, 6).pvalue)
    assert block["mean_credit_difference"] is None and block["mean_credit_difference_ci"] is None


# ----------------------------------------------------------------------------- calibration by simulation


ATTRACTIVE = frozenset(CATALOGUE[:10])


def simulate(service: ExperimentService, users: int, ranker_a: list[str], ranker_b: list[str], seed: int) -> None:
    """``users`` users, each shown one merged list and clicking by a position-based law that depends on
    the item (attractive or not) and its position, never on the team; the clicks go through observe."""
    rng = np.random.default_rng(seed)
    examine = 1.0 / np.arange(1, 11)
    for k in range(users):
        user = f"sim{k:05d}"
        assignment = service.assign(user)
        assert assignment is not None
        merged = service.interleave(assignment, f"r{k}", ranker_a, ranker_b, 10)
        attraction = [0.3 if item in ATTRACTIVE else 0.05 for item in merged.items]
        clicked = [i for p, i in enumerate(merged.items) if rng.random() < examine[p] * attraction[p]]
        service.observe([click(user, str(i), f"r{k}") for i in clicked])


def test_identical_rankers_credit_no_click(service: ExperimentService) -> None:
    """Identical rankers share their whole list: every click falls in the common prefix, so no user can
    lean either way and no false positive is possible."""
    key = started(service, variants=[{"name": "control", "model": "als"}, {"name": "same", "model": "als"}])
    simulate(service, 300, CATALOGUE[:20], CATALOGUE[:20], seed=1)
    block = service.readout(key).interleaving
    assert block is not None and block["users"] == 300 and block["clicks_shared"] > 50
    assert (block["wins"], block["losses"], block["clicks_credited"]) == (0, 0, 0)
    assert block["p_value"] is None and block["verdict"] == "no preference detected"


def test_equally_good_rankers_give_a_balanced_readout(service: ExperimentService) -> None:
    """Different lists, equally good under the click law (each: five attractive items, then five
    others; no common prefix): the counters agree with a recount and the test finds no preference."""
    key = started(service)
    simulate(service, 1500, CATALOGUE[0:5] + CATALOGUE[20:25], CATALOGUE[5:10] + CATALOGUE[25:30], seed=1)
    block = service.readout(key).interleaving
    recount = counts_from_credit(service.interleaving.read_credit(key, 1))
    assert block is not None and service.interleaving.read(key, 1).counts == recount
    assert block["users"] == 1500 and block["wins"] + block["losses"] > 300
    assert block["p_value"] > 0.05 and block["verdict"] == "no preference detected"
    assert block["ci"][0] < 0.5 < block["ci"][1]
    assert block["pseudomedian_ci"][0] <= 0 <= block["pseudomedian_ci"][1]  # the verdict's interval holds 0
    low, high = block["mean_credit_difference_ci"]
    assert low < 0 < high


def test_a_better_ranker_wins_under_the_sequential_engine(service: ExperimentService) -> None:
    """The same simulation can fail: B ranks the attractive items first, A ranks them last."""
    key = started(service, engine="sequential")
    simulate(service, 600, CATALOGUE[10:20] + CATALOGUE[:10], CATALOGUE[:10] + CATALOGUE[20:30], seed=2)
    readout = service.readout(key)
    block = readout.interleaving
    assert block is not None and block["verdict"] == "B preferred" and block["decided_by"] == "beta-mixture SPRT"
    assert block["sequential"]["p_value"] < 0.05 and block["preference_share"] > 0.6
    assert block["sequential"]["ci"][0] > 0.5
    # the fixed test's interval is reported too, on B's side of 0 like its verdict
    assert block["p_value"] < 0.05 and block["pseudomedian_ci"] is not None and block["pseudomedian_ci"][0] >= 0
    assert readout.decision.action == "ship" and readout.decision.variant == "treatment"


def test_same_spec_on_both_sides_through_the_engine_is_balanced(engine: Engine) -> None:
    """A/A through the whole engine: one spec for both rankers, lists served through the service and
    its cache, clicks by the demo world's click law posted through the event tracker."""
    from engine.api.interleaved_lists import serve_interleaved

    svc = engine.experiments
    svc.create(spec("aa", variants=[{"name": "control", "model": "als"}, {"name": "same", "model": "als"}]))
    svc.start("aa")
    rng = np.random.default_rng(11)
    events: list[Event] = []
    users = engine.features.top_active_users(800)
    for k, user in enumerate(users):
        assignment = svc.assign(user)
        assert assignment is not None and assignment.rankers is not None
        answer = serve_interleaved(engine, assignment, 10, f"aa-{k}")
        assert answer.teams is not None
        items = [i["item_id"] for i in answer.result.items]
        p = np.asarray(engine.world.click_probability(user, items, np.arange(len(items))))
        events += [click(user, item, f"aa-{k}") for item, hit in zip(items, rng.random(len(items)) < 3 * p,
                                                                      strict=True) if hit]
    engine.events.track_many(events)
    block = svc.readout("aa").interleaving
    # one spec: the same list on both sides, so every click lands in the common prefix
    assert block is not None and block["users"] == len(users) and block["clicks_shared"] == len(events) > 150
    assert (block["wins"], block["losses"], block["clicks_credited"]) == (0, 0, 0)
    assert block["p_value"] is None and block["verdict"] == "no preference detected"
