"""Sample ratio mismatch per breakdown cell, on a real Redis: one device's exposures are made to split
70/30 and the readout's ``srm_by_dimension`` check flags exactly that cell, with p-values that match
scipy's chi-square corrected by statsmodels' Holm; a balanced run flags nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from scipy import stats
from statsmodels.stats.multitest import multipletests

from engine.experiments import ExperimentService
from engine.experiments.dimensions import UserDimensions
from engine.experiments.health import dimension_srm
from engine.experiments.readout_document import readout_document
from engine.storage.keys import Keys

DEVICES = ("ios", "android", "web")
USERS = [f"u{i:05d}" for i in range(4_500)]


def device(user: str) -> str:
    return DEVICES[int(user[1:]) % 3]


@pytest.fixture
def service(redis_client: redis.Redis) -> Iterator[ExperimentService]:
    svc = ExperimentService(redis_client, Keys(), clock=lambda: 1_790_000_000.0,
                            attributes=UserDimensions({u: {"device": device(u), "app": "x"} for u in USERS}))
    svc.create({"key": "exp", "name": "skew", "goal_metric": "clicked",
                "variants": [{"name": "control", "model": "popularity"}, {"name": "als", "model": "als"}]})
    svc.start("exp")
    yield svc
    svc.close()


def expose(svc: ExperimentService, drop_android_treatment: bool) -> dict[str, list[int]]:
    """Expose every user, except — when asked — four of every seven android users in the treatment
    (a client that loses the treatment's exposures on one device): android splits about 70/30."""
    users = {d: [0, 0] for d in DEVICES}
    for i, u in enumerate(USERS):
        a = svc.assign(u)
        assert a is not None
        arm = 0 if a.variant == "control" else 1
        if drop_android_treatment and device(u) == "android" and arm == 1 and i % 7 >= 3:
            continue
        svc.record_exposure(a)
        users[device(u)][arm] += 1
    return users


def srm_check(document: dict[str, object]) -> dict[str, object]:
    [check] = [c for c in document["health"] if c["name"] == "srm_by_dimension"]  # type: ignore[attr-defined]
    return check  # type: ignore[no-any-return]


def test_the_skewed_device_and_only_it_is_flagged(service: ExperimentService) -> None:
    users = expose(service, drop_android_treatment=True)
    android = users["android"]
    assert 0.65 < android[0] / sum(android) < 0.75  # the 70/30 the test means to build
    document = readout_document(service, "exp", by=["device"])
    check = srm_check(document)
    assert check["status"] == "failed" and check["details"]["dimension"] == "device"  # type: ignore[index]
    assert [f["cell"] for f in check["details"]["flagged"]] == ["android"]  # type: ignore[index]
    assert "android" in check["message"] and "ios" not in check["message"]  # type: ignore[operator]
    # the cells' p-values: scipy's chi-square against 50/50, then Holm across the three cells (statsmodels)
    cells = {c["cell"]: c for c in check["details"]["cells"]}  # type: ignore[index]
    raw = [stats.chisquare(users[d]).pvalue for d in DEVICES]
    holm = multipletests(raw, method="holm")[1]
    for d, p, p_adj in zip(DEVICES, raw, holm, strict=True):
        assert cells[d]["users"] == {"control": users[d][0], "als": users[d][1]}
        assert cells[d]["p_value"] == pytest.approx(p, rel=1e-9)
        assert cells[d]["p_value_adjusted"] == pytest.approx(p_adj, rel=1e-9)
        assert cells[d]["flagged"] == (d == "android")
    # without a breakdown there is no such check
    assert not [c for c in readout_document(service, "exp")["health"] if c["name"] == "srm_by_dimension"]


def test_a_balanced_run_flags_no_cell(service: ExperimentService) -> None:
    users = expose(service, drop_android_treatment=False)
    check = srm_check(readout_document(service, "exp", by=["device"]))
    assert check["status"] == "ok" and "flagged" not in check["details"]  # type: ignore[operator]
    assert len(check["details"]["cells"]) == 3  # type: ignore[index]
    assert not any(c["flagged"] for c in check["details"]["cells"])  # type: ignore[index]
    assert sum(sum(u) for u in users.values()) == len(USERS)


def test_one_check_per_dimension_and_none_for_a_breakdown_that_failed(service: ExperimentService) -> None:
    expose(service, drop_android_treatment=True)
    document = readout_document(service, "exp", by=["device", "app", "nope"])
    checks = [c for c in document["health"] if c["name"] == "srm_by_dimension"]
    assert [c["details"]["dimension"] for c in checks] == ["device", "app"]
    # one cell holding everyone: the family is that cell, flagged like the total
    assert checks[1]["status"] == "failed" and [f["cell"] for f in checks[1]["details"]["flagged"]] == ["x"]
    assert document["breakdowns"][2]["error"] is not None


def test_dimension_srm_corrects_across_cells_and_skips_empty_ones() -> None:
    # 560/440 alone: p ≈ 1.5e-4 < 0.001; among ten cells Holm multiplies it by ten: not flagged
    alone = dimension_srm("d", {"a": [560, 440]}, ["control", "als"], [0.5, 0.5])
    assert alone.status == "failed"
    many = dimension_srm("d", {"a": [560, 440], **{f"c{i}": [500, 500] for i in range(9)}, "empty": [0, 0]},
                         ["control", "als"], [0.5, 0.5])
    assert many.status == "ok" and len(many.details["cells"]) == 10
    assert many.details["cells"][0]["p_value_adjusted"] == pytest.approx(10 * stats.chisquare([560, 440]).pvalue)
    # a bandit's weights move: not checked per cell
    assert dimension_srm("d", {"a": [900, 100]}, ["control", "als"], [0.5, 0.5], bandit=True).status == "ok"
