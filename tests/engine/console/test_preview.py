"""engine.console.preview: what the Recommendations page shows, from the real test Redis and the small world."""

from __future__ import annotations

import pytest
import redis

from analysis.ranking import jaccard, rbo
from engine.console import experiments as console_experiments
from engine.console import preview
from engine.console.cards import MetricCard
from engine.runtime import Engine
from engine.serving.diversity import DiversitySettings


def test_search_random_and_new_users(engine: Engine) -> None:
    top = engine.features.top_active_users(3)
    assert preview.search_users(engine, "")[:3] == top
    found = preview.search_users(engine, top[0][-3:].upper())
    assert top[0] in found and all(top[0][-3:] in u for u in found)
    assert preview.search_users(engine, "no-such-user") == []
    assert preview.random_user(engine) in set(preview.known_users(engine))
    new = preview.new_user_id()
    assert new.startswith("new-") and not engine.features.known_user(new)


def test_compare_lists_uses_the_ranking_metrics(engine: Engine) -> None:
    user = engine.features.top_active_users(1)[0]
    a = engine.service.recommend(user, n=10, model="als").items
    b = engine.service.recommend(user, n=10, model="popularity").items
    shares = preview.popularity_shares(engine.dataset)
    cmp = preview.compare_lists(a, b, shares)
    ids_a, ids_b = [i["item_id"] for i in a], [i["item_id"] for i in b]
    assert cmp.jaccard == pytest.approx(jaccard(ids_a, ids_b))
    assert cmp.rbo == pytest.approx(rbo(ids_a, ids_b, p=preview.RBO_P))
    assert cmp.shared == [i for i in ids_a if i in ids_b]
    same = preview.compare_lists(a, a, shares)
    assert same.jaccard == 1.0 and same.rbo == pytest.approx(1.0)
    assert 0.0 <= cmp.diversity_a <= 1.0 and cmp.novelty_b > 0
    # popular items are less novel than what ALS finds for an active user
    assert cmp.novelty_b < cmp.novelty_a
    assert max(shares.values()) <= 1.0


def test_served_choice_follows_the_running_experiment(engine: Engine) -> None:
    user = engine.features.top_active_users(1)[0]
    assert preview.served_choice(engine, user).experiment is None
    assert preview.served_choice(engine, user).model == engine.service.default_model
    console_experiments.create(engine, {"key": "serve-test", "name": "t", "variants": [
        {"name": "only", "model": "item_item", "weight": 0.5}, {"name": "same", "model": "item_item", "weight": 0.5}]},
        "ada")
    console_experiments.transition(engine, "serve-test", "start", "ada")
    choice = preview.served_choice(engine, user)
    assert (choice.experiment, choice.model) == ("serve-test", "item_item") and choice.variant in ("only", "same")


def test_as_served_is_the_arms_version_and_serving_settings(engine: Engine, redis_client: redis.Redis) -> None:
    user = engine.features.top_active_users(1)[0]
    version = engine.service.models["als"].version
    console_experiments.create(engine, {"key": "arm-test", "name": "t", "forced": {user: "tuned"}, "variants": [
        {"name": "plain", "model": "als", "weight": 0.5},
        {"name": "tuned", "model": "als@1", "weight": 0.5, "params": {"n": 7, "category_cap": 1}}]}, "ada")
    console_experiments.transition(engine, "arm-test", "start", "ada")
    choice = preview.served_choice(engine, user)
    assert (choice.variant, choice.model, choice.version) == ("tuned", "als", version)
    assert choice.text == (f"experiment `arm-test`, variant `tuned`: model `als` version `{version}` "
                           "with n=7, category_cap=1")
    page = DiversitySettings(category_cap=None, mmr_lambda=1.0)  # the page's settings: the arm's replace them
    shown = preview.preview_list(engine, user, preview.AS_SERVED, 10, page)
    assert len(shown.result.items) == 7  # the arm's n
    # the API's call for this user (engine/api/routes/recommendations.py): the same list, cached under the
    # same key, so the API's next answer to this user is the list previewed here
    api = engine.service.recommend(user, 7, "als", version=version, serving=choice.serving, use_cache=False)
    assert [i["item_id"] for i in shown.result.items] == [i["item_id"] for i in api.items]
    arm_key = engine.service.list_key(user, "als", 7, serving=choice.serving, version=version)
    page_key = engine.service.list_key(user, "als", 7, diversity=page)
    assert arm_key != page_key and redis_client.sismember(engine.keys.rec_index(user), arm_key)
    assert not redis_client.sismember(engine.keys.rec_index(user), page_key)
    chosen = preview.preview_list(engine, user, "als", 10, page)  # a chosen model: the page's settings
    assert len(chosen.result.items) == 10


def test_user_choices_put_a_typed_id_first(engine: Engine) -> None:
    top = engine.features.top_active_users(3)
    assert preview.user_choices(engine, "  ")[:3] == top
    assert preview.user_choices(engine, f" {top[0]} ")[0] == top[0]
    assert preview.user_choices(engine, "nobody-yet") == ["nobody-yet"]  # any valid id can be previewed
    with pytest.raises(ValueError, match="not a valid user id"):
        preview.user_choices(engine, "bad id!")
    assert preview.cold_start_text("new-1") == "`new-1` has no history: a cold start."


def test_preview_as_served_or_with_a_chosen_model(engine: Engine) -> None:
    user = engine.features.top_active_users(1)[0]
    div = preview.diversity_settings(capped=False, cap=3, mmr_lambda=0.5)
    assert div == DiversitySettings(category_cap=None, mmr_lambda=0.5)
    assert preview.diversity_settings(True, 3, 1.0).category_cap == 3
    served = preview.preview_list(engine, user, preview.AS_SERVED, 5, div)
    assert served.result.model == engine.service.default_model and len(served.result.items) == 5
    assert served.caption == (f"Model **{engine.service.default_model}** — as served: not in a running experiment: "
                              f"the default model `{engine.service.default_model}`.")
    chosen = preview.preview_list(engine, user, "popularity", 3, DiversitySettings())
    assert chosen.result.model == "popularity" and "— chosen here; the API serves this user not in" in chosen.caption
    cards = preview.result_cards(chosen.result)
    assert [c.label for c in cards] == ["Cache tier", "Latency", "Diversity", "Items"]
    assert cards[1].value.endswith(" ms") and cards[3] == MetricCard("Items", 3)
    frame = preview.items_frame(chosen.result)
    assert preview.score_scale(frame) == pytest.approx(max(frame["score"].max(), preview.MIN_SCORE_SCALE))
    assert preview.score_scale(frame.iloc[0:0]) == 1.0


def test_cold_start_notice_and_profile(engine: Engine) -> None:
    new = preview.new_user_id()
    cold = preview.preview_list(engine, new, preview.AS_SERVED, 5, DiversitySettings())
    note = preview.result_notice(cold.result)
    assert note is not None and note.level == "info" and note.text.startswith("Cold start")
    fresh = preview.user_profile(engine, new)
    assert preview.profile_cards(fresh)[0] == MetricCard("Known user", "no")
    assert preview.last_active_text(fresh) == "Never active." and preview.affinity_figure(fresh) is None
    user = engine.features.top_active_users(1)[0]
    prof = preview.user_profile(engine, user)
    assert preview.last_active_text(prof).startswith("Last active ") and prof.affinity["share"].is_monotonic_decreasing
    bars = preview.affinity_figure(prof)
    assert bars is not None and list(bars.data[0].y) == list(prof.affinity["category"])


def test_two_models_side_by_side(engine: Engine) -> None:
    user = engine.features.top_active_users(1)[0]
    shares = preview.popularity_shares(engine.dataset)
    cmp = preview.compare_models(engine, user, 10, "als", "popularity", DiversitySettings(), shares)
    assert [m for m, _ in cmp.sides()] == ["als", "popularity"]
    assert [c.label for c in preview.comparison_cards(cmp.lists)] == ["Jaccard overlap", "Rank-biased overlap",
                                                                     "Diversity A / B", "Novelty A / B"]
    side = preview.side_table(cmp.a, cmp.lists.shared)
    assert list(side.columns) == ["rank", "in both", "title", "category", "score"]
    assert side["in both"].sum() == len(cmp.lists.shared)
    assert preview.side_caption("als", cmp.a).startswith(f"**als** · {cmp.a.cache_tier} · ")
    same = preview.compare_models(engine, user, 5, "als", "als", DiversitySettings(), shares)
    moves = preview.rank_moves_figure(same)
    assert moves is not None and len(moves.data) == 5 and all(len(set(t.y)) == 1 for t in moves.data)
    disjoint = preview.ModelComparison("a", "b", cmp.a, cmp.b, preview.compare_lists(cmp.a.items, [], shares))
    assert preview.rank_moves_figure(disjoint) is None
