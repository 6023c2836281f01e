"""Faults under steady load, with real processes: Redis stopped, Redis killed, Prometheus absent, a worker killed.

Each test is bounded in time: the load runs for a fixed number of seconds, every wait has a deadline.
Measured numbers (recovery time, events lost on a hard kill, errors when a worker dies) are printed
(``pytest -s``) for the README's reliability section.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import redis

from bench.harness import metric_total
from bench.soak import worker_pids
from engine.config import Settings
from engine.events.tracker import Event, EventTracker
from engine.local_processes import free_port
from engine.runtime import prepare_world
from engine.simulator import SimulationConfig, SimulationSummary, run_simulation
from engine.storage.embedded_redis import EmbeddedRedis
from engine.storage.keys import Keys
from tests.support.api import ApiProcess, api_env, running_api
from tests.support.engine_fixtures import SMALL_WORLD
from tests.support.polling import seconds_until

# the module's API and Redis are shared by its tests: keep them on one xdist worker
pytestmark = pytest.mark.xdist_group("faults")

OUTAGE_SECONDS = 10.0
RECOVERY_DEADLINE = 20.0  # a bound on the wait, not a performance target: the measured time is printed
KNOWN_USERS = [f"u{i:05d}" for i in range(SMALL_WORLD["demo_users"])]


@dataclass(frozen=True)
class Outcome:
    sent: float  # time.monotonic() when sent
    user: str
    status: int | None  # None: no HTTP answer at all
    error: str = ""
    fallback: bool | None = None
    tier: str | None = None

    @property
    def new_user(self) -> bool:
        return self.user.startswith("new-")


W = TypeVar("W", bound="BackgroundThreads")


class BackgroundThreads:
    """``threads`` daemon threads running ``_run(index)`` while the ``with`` block runs; ``_run`` returns
    once ``_stop`` is set, which leaving the block does."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self: W) -> W:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)

    def _run(self, index: int) -> None:
        raise NotImplementedError


class SteadyLoad(BackgroundThreads):
    """``threads`` clients sending POST /recommendations at ``rate`` requests/s in total, a mix of known
    users and users never seen before; every outcome is recorded with its send time."""

    def __init__(self, url: str, rate: float, threads: int = 4, new_share: float = 0.3, seed: int = 0) -> None:
        super().__init__(threads)
        self.url, self.interval, self.new_share = url, threads / rate, new_share
        self.seed = seed
        self.outcomes: list[Outcome] = []

    def _run(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        next_at = time.monotonic() + index * self.interval / self.threads
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            k = 0
            while not self._stop.is_set():
                self._stop.wait(max(0.0, next_at - time.monotonic()))
                if self._stop.is_set():
                    return
                next_at += self.interval
                k += 1
                new = rng.random() < self.new_share
                user = f"new-{self.seed}-{index}-{k}" if new else rng.choice(KNOWN_USERS)
                self._record(self._call(client, user))

    def _call(self, client: httpx.Client, user: str) -> Outcome:
        sent = time.monotonic()
        try:
            r = client.post("/recommendations", params={"user_id": user, "n": 10})
        except httpx.HTTPError as exc:
            return Outcome(sent, user, None, type(exc).__name__)
        if r.status_code != 200:
            return Outcome(sent, user, r.status_code, r.text[:200])
        body = r.json()
        return Outcome(sent, user, 200, fallback=body["fallback"], tier=body["cache_tier"])

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def between(self, start: float, end: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if start <= o.sent < end]


class Poller(BackgroundThreads):
    """Calls ``probe`` every ``every`` seconds in a thread, recording ``(time, result)``."""

    def __init__(self, probe: Callable[[], object], every: float) -> None:
        super().__init__(threads=1)
        self.probe, self.every = probe, every
        self.results: list[tuple[float, object]] = []

    def _run(self, index: int) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                result = self.probe()
            except httpx.HTTPError as exc:
                result = exc
            self.results.append((at, result))
            self._stop.wait(self.every)


def _health(url: str) -> str:
    try:
        r = httpx.get(url + "/health", timeout=2.0)
    except httpx.HTTPError:
        return "unreachable"
    return str(r.json()["status"]) if r.status_code == 200 else f"http {r.status_code}"


def _serves_computed_lists(url: str) -> bool:
    """A user never seen before gets a computed list (not the fallback): Redis is back in use."""
    r = httpx.post(url + "/recommendations", params={"user_id": f"probe-{time.monotonic_ns()}"}, timeout=2.0)
    return r.status_code == 200 and r.json()["fallback"] is False


def _spool_depth(url: str) -> float:
    """Events the API holds in its local spool, waiting for Redis."""
    return metric_total(httpx.get(url + "/metrics", timeout=5).text, "recops_events_spool_depth")


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A Redis of this module's own: the tests stop, kill and restart it."""
    server = EmbeddedRedis(data_dir=tmp_path_factory.mktemp("fault-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fault_api(
    own_redis: EmbeddedRedis, small_world_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    # PROMETHEUS_URL names a port nothing listens on: serving must not care
    dead_prometheus = f"http://127.0.0.1:{free_port()}"
    env = api_env(small_world_dir, own_redis.url, PROMETHEUS_URL=dead_prometheus)
    with running_api(env, tmp_path_factory.mktemp("fault-api") / "api.log") as proc:
        yield proc


@pytest.fixture
def api_url(fault_api: ApiProcess, own_redis: EmbeddedRedis) -> str:
    """The API, with its Redis up and healthy and its spool empty (a previous test may have just
    restarted Redis, with events spooled while it was away)."""
    if own_redis.process is None or own_redis.process.poll() is not None:
        own_redis.restart()
    seconds_until(lambda: _health(fault_api.url) == "healthy" and _serves_computed_lists(fault_api.url), 30)
    seconds_until(lambda: _spool_depth(fault_api.url) == 0, 30)
    return fault_api.url


# ------------------------------------------------------------------------------ Redis outage


@pytest.mark.timeout(120)
def test_redis_outage_under_load_degrades_and_recovers(api_url: str, own_redis: EmbeddedRedis) -> None:
    event = {"user_id": "u00001", "item_id": "i00001", "type": "click"}
    with SteadyLoad(api_url, rate=30.0) as load, Poller(lambda: _health(api_url), every=0.25) as health:
        time.sleep(3.0)
        own_redis.stop()
        down = time.monotonic()
        # writes go to the local spool: 202 Accepted, replayed once Redis is back
        spooled = [
            httpx.post(api_url + "/events", json=event, timeout=5),
            httpx.post(api_url + "/events/batch", json=[event], timeout=5),
            httpx.post(api_url + "/track/click", params={"user_id": "u00001", "item_id": "i00001"}, timeout=5),
        ]
        time.sleep(max(0.0, down + OUTAGE_SECONDS - time.monotonic()))
        up = time.monotonic()
        own_redis.restart()
        recovery = seconds_until(lambda: _health(api_url) == "healthy" and _serves_computed_lists(api_url),
                                 RECOVERY_DEADLINE)
        recovered = time.monotonic()
        time.sleep(3.0)
    print(f"\nRedis outage: stopped {OUTAGE_SECONDS:.0f}s; healthy and computing lists {recovery:.2f}s "
          f"after the restart returned; {len(load.outcomes)} requests")

    for r in spooled:
        assert r.status_code == 202, r.text
        assert r.headers["content-type"].startswith("application/json")
        answers = r.json() if isinstance(r.json(), list) else [r.json()]
        assert all(a["accepted"] and a["spooled"] and not a["duplicate"] for a in answers), answers

    failures = [o for o in load.outcomes if o.status != 200]
    assert not failures, failures[:5]  # no 5xx and no connection error, outage or not

    # sent while Redis was down, and answered before it was back (the margin covers the answer's time)
    during = load.between(down, up - 0.5)
    assert len(during) >= 20 * OUTAGE_SECONDS * 0.8
    # a list is either the fallback or one this process already held in L1
    assert all(o.fallback or o.tier == "l1" for o in during), [o for o in during if not o.fallback][:5]
    assert all(o.fallback for o in during if o.new_user)
    assert sum(o.fallback for o in during) >= len(during) // 2

    degraded = [status for at, status in health.results if down <= at < up - 0.5]
    assert degraded and set(degraded) == {"degraded"}, set(degraded)
    after = [status for at, status in health.results if at >= recovered]
    assert after and set(after) == {"healthy"}, set(after)
    assert not any(o.fallback for o in load.between(recovered, float("inf")))
    # the spool was replayed meanwhile: events go straight to Redis again
    assert httpx.post(api_url + "/events", json=event, timeout=5).status_code == 200


# ------------------------------------------------------------------------------ persistence


class EventWriter(BackgroundThreads):
    """Threads posting batches of new events through the API; remembers every id answered 200 (in
    Redis) and counts the batches answered 202 (in the local spool: Redis was unreachable)."""

    def __init__(self, url: str, threads: int = 3, batch: int = 20) -> None:
        super().__init__(threads)
        self.url, self.batch = url, batch
        self.run_id = uuid.uuid4().hex[:8]  # ids never repeat across writers: a repeat is answered duplicate
        self.acked: dict[str, float] = {}  # event id -> when its 200 (accepted, not duplicate) arrived
        self.spooled = 0
        self.refused = 0

    def _run(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            k = 0
            while not self._stop.is_set():
                ids = [f"w{self.run_id}-{index}-{k}-{j}" for j in range(self.batch)]
                k += 1
                body = [{"event_id": i, "user_id": f"u{j % 50:05d}", "item_id": "i00001", "type": "impression"}
                        for j, i in enumerate(ids)]
                try:
                    r = client.post("/events/batch", json=body)
                except httpx.HTTPError:
                    r = None
                if r is not None and r.status_code == 200:
                    assert all(result["accepted"] for result in r.json())
                    now = time.monotonic()
                    with self._lock:
                        self.acked.update(dict.fromkeys(ids, now))
                elif r is not None and r.status_code == 202:
                    with self._lock:
                        self.spooled += 1
                else:
                    with self._lock:
                        self.refused += 1
                    self._stop.wait(0.05)


def _stored_event_ids(url: str, stream: str) -> set[str]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return {fields["event_id"] for _, fields in client.xrange(stream)}


@pytest.mark.timeout(120)
def test_acknowledged_events_survive_a_clean_restart(api_url: str, own_redis: EmbeddedRedis) -> None:
    stream = "recops:events"
    with EventWriter(api_url) as writer:
        time.sleep(2.0)
        own_redis.stop()  # SHUTDOWN while the writers are still sending
        stopped_with = len(writer.acked)
        time.sleep(0.5)
    own_redis.restart()
    stored = _stored_event_ids(own_redis.url, stream)
    missing = set(writer.acked) - stored
    print(f"\nclean restart: {len(writer.acked)} events acknowledged, {len(missing)} missing after the restart")
    assert stopped_with >= 200
    assert not missing
    assert writer.spooled > 0  # some batches did hit the stopped server: the window was real
    assert writer.refused == 0  # and went to the spool, not back to the client


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fsync", ["everysec", "always"])
def test_events_lost_on_a_hard_kill(api_url: str, own_redis: EmbeddedRedis, fsync: str) -> None:
    """SIGKILL of redis-server while events stream in.  Killing the process (not the machine) keeps
    what it wrote to the append-only file in the OS page cache, so even ``everysec`` should lose no
    acknowledged event here; what ``everysec`` risks is a machine crash (up to ~1 s, or 2 s while a
    slow fsync is pending).  A loss, if any, must be among the events acknowledged last."""
    stream = "recops:events"
    with redis.Redis.from_url(own_redis.url) as admin:
        admin.config_set("appendfsync", fsync)
    with EventWriter(api_url) as writer:
        time.sleep(2.0)
        own_redis.kill()
        killed = time.monotonic()
        time.sleep(0.3)
    own_redis.restart()  # comes back with the shipped settings (everysec)
    stored = _stored_event_ids(own_redis.url, stream)
    missing = {i: at for i, at in writer.acked.items() if i not in stored}
    window = f", acknowledged in the last {killed - min(missing.values()):.2f}s" if missing else ""
    print(f"\nhard kill with appendfsync {fsync}: {len(writer.acked)} acknowledged, {len(missing)} lost{window}")
    assert len(writer.acked) >= 200
    if fsync == "always":
        assert not missing
    else:
        assert all(killed - at <= 2.0 for at in missing.values()), window


# ------------------------------------------------------------------------------ events during an outage


class EventTraffic(BackgroundThreads):
    """Simulated clients posting new events through all three routes (single, batch, seed-style);
    every status and every event id the API answered for is recorded."""

    def __init__(self, url: str, every: float = 0.02) -> None:
        super().__init__(threads=3)
        self.url, self.every = url, every
        self.run_id = uuid.uuid4().hex[:8]
        self.statuses: list[tuple[float, int | str]] = []
        self.sent: list[str] = []  # event ids answered 200/202, in the order the answers came
        self.spooled = 0
        self.started = time.monotonic()

    def _run(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            for k in itertools.count():
                if self._stop.wait(self.every):
                    return
                user = f"u{(index * 7 + k) % 50:05d}"
                event = {"user_id": user, "item_id": f"i{k % 40:05d}", "type": "view"}
                try:
                    if index == 0:
                        r = client.post("/events", json={**event, "event_id": f"o{self.run_id}-{k}"})
                    elif index == 1:
                        batch = [{**event, "event_id": f"o{self.run_id}-b{k}-{j}"} for j in range(5)]
                        r = client.post("/events/batch", json=batch)
                    else:  # the server makes up the event id
                        r = client.post("/track/click", params={"user_id": user, "item_id": event["item_id"]})
                except httpx.HTTPError as exc:
                    self._record(type(exc).__name__, [])
                    continue
                answers = r.json() if r.status_code in (200, 202) else []
                self._record(r.status_code, answers if isinstance(answers, list) else [answers])

    def _record(self, status: int | str, answers: list[dict[str, object]]) -> None:
        with self._lock:
            self.statuses.append((time.monotonic(), status))
            self.sent.extend(str(a["event_id"]) for a in answers)
            self.spooled += sum(bool(a["spooled"]) for a in answers)


@pytest.mark.timeout(90)
def test_events_posted_while_redis_is_down_are_spooled_and_replayed_exactly_once(
    api_url: str, own_redis: EmbeddedRedis, fault_api: ApiProcess
) -> None:
    with redis.Redis.from_url(own_redis.url) as admin:
        # what this test is about is the API's spool, not Redis's own fsync policy (see the hard-kill test)
        admin.config_set("appendfsync", "always")
    with EventTraffic(api_url) as traffic:
        time.sleep(2.0)
        own_redis.kill()  # SIGKILL: a crash, mid-traffic
        down = time.monotonic()
        time.sleep(1.0)
        unknown = httpx.post(api_url + "/events", json={"user_id": "u00001", "item_id": "no-such", "type": "view"},
                             timeout=5)
        time.sleep(3.0)
        own_redis.restart()  # same port, same data
        up = time.monotonic()
        time.sleep(3.0)
        stopped = time.monotonic()
    statuses = Counter(status for _, status in traffic.statuses)
    during = [status for at, status in traffic.statuses if down + 0.2 <= at <= up]
    # while the spool holds events every answer is 202: the first 200 after the restart marks it empty
    direct_again = min((at for at, status in traffic.statuses if at > up and status == 200), default=None)
    print(f"\nRedis killed for {up - down:.1f}s under event traffic: {len(traffic.sent)} events in "
          f"{stopped - traffic.started:.1f}s, answers {dict(statuses)}, {traffic.spooled} events spooled; "
          f"straight to Redis again {direct_again - up if direct_again else float('nan'):.2f}s after the restart")

    # the catalogue check needs no Redis: an unknown item is still refused, with the reason
    assert unknown.status_code == 422 and "not in the catalogue" in unknown.json()["detail"]
    assert set(statuses) <= {200, 202}, statuses  # never a 503, never a dropped connection
    assert during and set(during) == {202}
    assert traffic.spooled >= 50

    spool = Path(fault_api.env["RECOPS_DATA_DIR"]) / "spool" / "demo"
    seconds_until(lambda: _spool_depth(api_url) == 0, 15)
    assert all(path.stat().st_size == 0 for path in spool.glob("*.jsonl"))
    with redis.Redis.from_url(own_redis.url, decode_responses=True) as client:
        stored = Counter(fields["event_id"] for _, fields in client.xrange("recops:events"))
    sent = Counter(traffic.sent)
    assert len(sent) == len(traffic.sent)  # the clients never sent an id twice
    missing = [i for i in sent if stored[i] == 0]
    twice = [i for i in sent if stored[i] > 1]
    assert not missing and not twice, (len(missing), missing[:5], twice[:5])


@pytest.mark.timeout(90)
def test_the_simulator_loses_no_event_to_a_redis_outage(
    api_url: str, own_redis: EmbeddedRedis, fault_api: ApiProcess
) -> None:
    """The on-call drill that once lost 4,195 events: the traffic simulator running while Redis is away."""
    world = prepare_world(fault_api.settings())
    config = SimulationConfig(api_url=api_url, rate=20, duration=8, seed=5)
    with redis.Redis.from_url(own_redis.url) as client:
        before = client.xlen("recops:events")
    summaries: list[SimulationSummary] = []
    runner = threading.Thread(target=lambda: summaries.append(asyncio.run(run_simulation(world, config))))
    runner.start()
    time.sleep(2.0)
    own_redis.kill()
    time.sleep(3.0)
    own_redis.restart()
    runner.join(timeout=60)
    (summary,) = summaries
    seconds_until(lambda: _spool_depth(api_url) == 0, 15)
    with redis.Redis.from_url(own_redis.url) as client:
        stored = client.xlen("recops:events") - before
    sent = sum(summary.events.values())
    print(f"\nsimulator through a 3 s Redis kill: {summary.requests} visits, {sent} events acknowledged, "
          f"{summary.failed_events} failed, {stored} in the stream afterwards")
    assert summary.failed_events == 0 and sent > 0, summary.errors
    assert summary.duplicate_events == 0
    assert stored == sent


# ------------------------------------------------------------------------------ Prometheus


def test_serving_needs_no_prometheus(api_url: str, fault_api: ApiProcess) -> None:
    """The API's PROMETHEUS_URL points at nothing; it serves, reports health and exposes /metrics."""
    assert "PROMETHEUS_URL" in fault_api.env
    assert _health(api_url) == "healthy"
    r = httpx.post(api_url + "/recommendations", params={"user_id": "u00002", "n": 5}, timeout=5)
    assert r.status_code == 200 and len(r.json()["items"]) == 5
    metrics = httpx.get(api_url + "/metrics", timeout=5)
    assert metrics.status_code == 200
    assert metric_total(metrics.text, "recops_recommendation_requests_total") >= 1


# ------------------------------------------------------------------------------ a worker killed


@pytest.mark.timeout(180)
def test_a_killed_worker_is_replaced_and_metrics_stay_monotonic(
    small_world_dir: Path, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    with running_api(api_env(small_world_dir, redis_url), tmp_path / "api.log", workers=2) as api:
        master = api.process.pid
        seconds_until(lambda: len(worker_pids(master)) == 2, 60)
        first = worker_pids(master)

        def scrape() -> tuple[float, float]:
            text = httpx.get(api.url + "/metrics", timeout=5).text
            return (metric_total(text, "recops_http_requests_total"),
                    metric_total(text, "recops_recommendation_requests_total"))

        with SteadyLoad(api.url, rate=30.0, threads=6, seed=1) as load, Poller(scrape, every=0.3) as scrapes:
            time.sleep(3.0)
            victim = first[0]
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            replaced_after = seconds_until(
                lambda: len(pids := worker_pids(master)) == 2 and victim not in pids, 60
            )
            replacement = next(p for p in worker_pids(master) if p not in first)
            # the new worker has started once it answers: fresh connections until one lands on it
            seconds_until(lambda: _health(api.url) == "healthy", 60)
            time.sleep(5.0)
            settled = time.monotonic()
            time.sleep(3.0)
        final = scrape()

        failed = [o for o in load.outcomes if o.status != 200]
        print(f"\nworker {victim} killed: replaced by {replacement} after {replaced_after:.2f}s; "
              f"{len(failed)} of {len(load.outcomes)} requests failed: {sorted({o.error for o in failed})}")
        # only requests in flight on the killed worker may fail, never an HTTP error status
        assert all(o.status is None for o in failed), failed[:5]
        assert len(failed) <= load.threads
        assert all(killed - 0.5 <= o.sent <= killed + 1.0 for o in failed), failed
        assert all(o.status == 200 for o in load.between(killed + 1.0, float("inf")))
        assert len(load.between(settled, float("inf"))) >= 60

        answered = [(at, r) for at, r in scrapes.results if isinstance(r, tuple)]
        # scrapes before the kill, and after the new worker was up, are part of the sequence
        assert any(at < killed for at, _ in answered) and any(at > settled for at, _ in answered)
        totals = [r for _, r in answered] + [final]
        for name, series in (("http", [t[0] for t in totals]), ("recommendations", [t[1] for t in totals])):
            drops = [(a, b) for a, b in itertools.pairwise(series) if b < a]
            assert not drops, (name, drops)
        # every answered list is counted once, the killed worker's included (its files stay)
        assert final[1] >= len(load.outcomes) - len(failed)


# ------------------------------------------------------------------------------ a half-done write


def test_a_retried_event_after_a_failed_stream_append_reaches_the_stream(
    settings: Settings, redis_client: redis.Redis
) -> None:
    # A user that may run the scripts but not XADD makes the second round trip fail every time,
    # as a connection lost between the two would once.
    password = uuid.uuid4().hex
    redis_client.acl_setuser("no-xadd", enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                             commands=["+@all", "-xadd"])
    try:
        url = settings.redis_url or ""
        limited = redis.Redis.from_url(url.replace("redis://", f"redis://no-xadd:{password}@", 1))
        keys = Keys(settings.key_prefix)
        event = Event(event_id="half-done-1", user_id="u00001", item_id="i00001", type="click")
        with pytest.raises(redis.RedisError):
            EventTracker(limited, keys, settings).track(event)
        limited.close()
        retried = EventTracker(redis_client, keys, settings).track(event)
        stored = {fields["event_id"] for _, fields in redis_client.xrange(keys.event_stream)}
        assert "half-done-1" in stored, retried
    finally:
        redis_client.acl_deluser("no-xadd")
