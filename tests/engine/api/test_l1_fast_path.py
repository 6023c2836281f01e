"""The L1 fast path in front of FastAPI: the route's answers, byte for byte, and the route's metrics.

In process, on a real engine and Redis: ``route`` is the FastAPI app alone, ``fast`` the same app
behind ``L1FastPath``, both on one engine (one L1); ``reached`` lists the requests the fast path
left to the app.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY, generate_latest
from pydantic import ValidationError
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from bench.harness import metric_total
from engine.api import l1_fast_path
from engine.api.app import create_app
from engine.api.l1_fast_path import FLUSH_SECONDS, L1FastPath, plain_query
from engine.api.schemas import RecommendationQuery
from engine.runtime import Engine

REQUEST_ID = re.compile(rb'"request_id":"([0-9a-f]{32})"')


@dataclass
class Served:
    route: TestClient
    fast: TestClient
    engine: Engine
    reached: list[str] = field(default_factory=list)

    def post(self, client: TestClient, query: str, **kwargs: Any) -> Any:
        return client.post("/recommendations" + (f"?{query}" if query else ""), **kwargs)


@pytest.fixture
def served(engine: Engine) -> Iterator[Served]:
    app = create_app(engine=engine)
    reached: list[str] = []

    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/recommendations":
            reached.append(scope["query_string"].decode())
        await app(scope, receive, send)

    with TestClient(app) as route, TestClient(L1FastPath(counted, lambda: engine)) as fast:
        yield Served(route, fast, engine, reached)


def _without_id(body: bytes) -> bytes:
    assert len(REQUEST_ID.findall(body)) == 1, body
    return REQUEST_ID.sub(b'"request_id":""', body)


def _same_answer(a: Any, b: Any) -> None:
    """Equal status, headers that matter, and body but for the request id (unique per answer)."""
    assert (a.status_code, a.headers["content-type"], a.headers["content-length"]) == \
        (b.status_code, b.headers["content-type"], b.headers["content-length"])
    assert _without_id(a.content) == _without_id(b.content)
    assert REQUEST_ID.search(a.content).group(1) != REQUEST_ID.search(b.content).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize("query", ["user_id=u00003&n=7", "n=5&user_id=u00004", "user_id=u00005"])
def test_a_hit_is_the_routes_answer_byte_for_byte(served: Served, query: str) -> None:
    first = served.post(served.route, query)  # computed, now in L1
    assert first.json()["cache_tier"] == "miss"
    by_route = served.post(served.route, query)
    by_fast = served.post(served.fast, query)
    assert by_route.json()["cache_tier"] == "l1"
    assert served.reached == [], "the hit was answered in front of the app"
    _same_answer(by_route, by_fast)
    _same_answer(by_fast, served.post(served.fast, query))  # the kept rendering, a new id


def test_an_experiment_user_after_their_first_exposure(served: Served) -> None:
    experiments = served.engine.experiments
    experiments.create({"key": "fast-ab", "name": "fast path A/B", "variants": [
        {"name": "control", "model": "als"}, {"name": "short", "model": "als", "params": {"n": 4}}]})
    experiments.start("fast-ab")
    experiments.refresh(force=True)
    users = [f"u{i:05d}" for i in range(40)]
    user = next(u for u in users if experiments.assign(u).variant == "short")  # type: ignore[union-attr]
    query = f"user_id={user}&n=10"
    first = served.post(served.fast, query)
    assert served.reached == [query], "a first exposure is recorded by the route"
    assert first.json()["variant"] == "short" and len(first.json()["items"]) == 4
    assert experiments.already_exposed(experiments.assign(user))  # type: ignore[arg-type]
    by_fast = served.post(served.fast, query)
    assert served.reached == [query]
    by_route = served.post(served.route, query)
    assert by_route.json()["experiment"] == "fast-ab" and by_route.json()["cache_tier"] == "l1"
    _same_answer(by_route, by_fast)


def _metrics() -> str:
    return generate_latest(REGISTRY).decode()


def _counted(text: str) -> dict[str, float]:
    return {f"{name}{labels}": metric_total(text, name, **labels) for name, labels in COUNTED}


COUNTED = [
    ("recops_http_requests_total", {"method": "POST", "route": "/recommendations", "status": "200"}),
    ("recops_recommendation_requests_total", {"status": "ok", "model": "als"}),
    ("recops_recommendation_latency_seconds_count", {"tier": "l1"}),
    ("recops_cache_requests_total", {"tier": "l1", "result": "hit"}),
    ("recops_list_diversity_ratio_count", {}),
]


def test_a_hit_counts_what_the_route_counts(served: Served) -> None:
    query = "user_id=u00006&n=10"
    served.post(served.route, query)

    def deltas(client: TestClient) -> dict[str, float]:
        # read by a scrape, as Prometheus does: the fast path counts its answers in batches and
        # hands them over before the app answers anything else
        before, l1_before = _counted(client.get("/metrics").text), served.engine.service.cache.stats()["l1"]["hit"]
        for _ in range(3):
            assert served.post(client, query).json()["cache_tier"] == "l1"
        after = _counted(client.get("/metrics").text)
        out = {name: after[name] - before[name] for name in after}
        return {**out, "l1 hits in stats": served.engine.service.cache.stats()["l1"]["hit"] - l1_before}

    by_route = deltas(served.route)
    assert deltas(served.fast) == by_route
    assert set(by_route.values()) == {3}
    assert served.reached == []


def test_answers_are_counted_within_the_flush_interval_without_a_scrape(served: Served) -> None:
    query = "user_id=u00007&n=10"
    served.post(served.route, query)
    before = _counted(_metrics())
    for _ in range(4):
        assert served.post(served.fast, query).json()["cache_tier"] == "l1"
    deadline = time.monotonic() + 10 * FLUSH_SECONDS
    while (after := _counted(_metrics())) == before and time.monotonic() < deadline:
        time.sleep(FLUSH_SECONDS / 5)
    assert {name: after[name] - before[name] for name in after} == dict.fromkeys(after, 4)
    assert served.reached == []


def test_answers_not_counted_yet_are_counted_when_the_server_stops(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(l1_fast_path, "FLUSH_SECONDS", 3600.0)  # no timer before the stop
    query = "user_id=u00008&n=10"
    with TestClient(L1FastPath(create_app(engine=engine), lambda: engine)) as client:
        client.post(f"/recommendations?{query}")  # computed, now in L1
        before = _counted(_metrics())
        for _ in range(2):
            assert client.post(f"/recommendations?{query}").json()["cache_tier"] == "l1"
        assert _counted(_metrics()) == before, "counted in a batch, not one by one"
    after = _counted(_metrics())
    assert {name: after[name] - before[name] for name in after} == dict.fromkeys(after, 2)


@pytest.mark.parametrize("query", [
    "user_id=u1&n=0", "user_id=u1&n=101", "user_id=u1&n=ten", "user_id=u*", f"user_id={'a' * 129}",
    "user_id=bad%20id", "user_id=", "n=5", "", "user_id=u1&n=", "user_id=u1&include_teams=maybe",
])
def test_invalid_input_gets_the_routes_422(served: Served, query: str) -> None:
    by_route, by_fast = served.post(served.route, query), served.post(served.fast, query)
    assert by_fast.status_code == 422
    assert (by_fast.status_code, by_fast.content) == (by_route.status_code, by_route.content)
    assert served.reached == [query]


@pytest.mark.parametrize(("query", "kwargs"), [
    ("", {"json": {"user_id": "u00007", "n": 10}}),  # a body
    ("user_id=u00007&n=10", {"json": {"user_id": "u00008"}}),  # the query wins, the body is validated
    ("user_id=u00007&n=010", {}),  # valid, not canonical
    ("user_id=u00007&n=10&include_teams=true", {}),
    ("user_id=u00007&user_id=u00008", {}),  # the last one wins in the route
    ("user_id=u00007%3A1", {}),  # encoded
])
def test_what_the_fast_path_does_not_read_goes_to_the_route(served: Served, query: str, kwargs: dict) -> None:
    served.post(served.route, "user_id=u00007&n=10")  # in L1: only the request's form sends it on
    served.post(served.route, "user_id=u00008&n=10")
    served.reached.clear()
    answer = served.post(served.fast, query, **kwargs)
    assert answer.status_code == 200 and served.reached == [query]


def test_a_list_invalidated_after_a_purchase_is_not_served_from_the_kept_rendering(served: Served) -> None:
    query = "user_id=u00009&n=10"
    served.post(served.route, query)
    served.post(served.fast, query)
    assert served.reached == []
    served.engine.service.invalidate_user("u00009", reason="purchase")
    assert served.post(served.fast, query).json()["cache_tier"] == "miss"
    assert served.reached == [query]
    again = served.post(served.fast, query)
    assert again.json()["cache_tier"] == "l1" and served.reached == [query]


_values = st.text(alphabet="u0123456789abAZ_.:-*% +=&", max_size=8) | st.sampled_from(
    ["1", "10", "100", "101", "0", "010", "a" * 128, "a" * 129, "u00001", ""])
_parts = st.tuples(st.sampled_from(["user_id", "n", "include_teams", "x", "", "user_id="]), _values)


@given(st.lists(_parts, max_size=4))
def test_the_fast_parser_accepts_only_what_the_routes_model_accepts_alike(parts: list[tuple[str, str]]) -> None:
    query = "&".join(f"{k}={v}" for k, v in parts)
    accepted = plain_query(query.encode())
    if accepted is None:
        return
    try:  # the route's reading: Starlette's query parsing, then the pydantic model
        model = RecommendationQuery.model_validate(dict(parse_qsl(query, keep_blank_values=True)))
    except ValidationError as exc:
        raise AssertionError(f"{query!r} accepted by the fast path, rejected by the route") from exc
    assert (model.user_id, model.n) == accepted


def test_the_fast_parser_reads_the_plain_forms() -> None:
    assert plain_query(b"user_id=u00001&n=10") == ("u00001", 10)
    assert plain_query(b"n=100&user_id=a.b:c-d_e") == ("a.b:c-d_e", 100)
    assert plain_query(b"user_id=" + b"a" * 128) == ("a" * 128, None)
