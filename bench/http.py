"""HTTP throughput and latency of the API with Debian's `wrk`, against a bare ASGI app.

    python -m bench http [--duration 10] [--connections 10] [--rounds 3] [--workers 1,2,4]

Runs in one go, on this machine: a bare ASGI callable answering the very bytes of a cached list
(``bench.trivial_app``: the ceiling of Python serving, no framework), the cache-hit path (users
whose lists are cached in L1), the miss path (every request a user not yet cached) and event
ingestion through POST /events/batch (100 events per request, unique ids).  One API worker; wrk
uses one thread so that the server keeps the other core.  The bare and cache-hit runs alternate
``--rounds`` times with two more runs of the same API: with the fast path only as ASGI (uvicorn's
own httptools protocol: every hit through a request cycle, as before ``FastHitProtocol``), and
without the fast path (every hit through the FastAPI route, as before the fast path existed);
their rows are medians, and each ratio is the median of the rounds' ratios.

Then the cache-hit path again under ``recops serve --workers N`` for each N of ``--workers``, wrk
scaled with it (N x ``--connections`` connections, min(N, 2) threads), with the ratio to one
worker.  The machine is shared, so every row carries the 1-minute load average measured just
before it ran.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.harness import table
from engine.cli.up import wait_http
from engine.config import Settings
from engine.local_processes import free_port
from engine.runtime import prepare_models, prepare_world
from engine.storage.embedded_redis import EmbeddedRedis

USERS_LUA = """
counter = 0
users = {%s}
request = function()
  counter = counter + 1
  local u = users[(counter %% #users) + 1]
  return wrk.format("POST", "/recommendations?user_id=" .. u .. "&n=10")
end
"""

EVENTS_LUA = """
counter = 0
thread_id = math.random(1, 1000000000)
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 100 do
    local item = string.format("i%%05d", (counter * 7 + i) %% %d)
    parts[i] = string.format('{"event_id":"b%%d-%%d-%%d","user_id":"u%%05d","item_id":"%%s","type":"%%s"}',
      thread_id, counter, i, (counter + i) %% %d, item, (i %% 10 == 0) and "click" or "impression")
  end
  return wrk.format("POST", "/events/batch", nil, "[" .. table.concat(parts, ",") .. "]")
end
"""

HOT_USERS = 200
WORKER_WARMUP_SECONDS = 3  # every worker has its own L1: wrk fills them all before the measured run


def _parse_wrk(output: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    out = {"rps": rps}
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if m:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            out[f"p{q}"] = float(m.group(1)) * scale
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    out["non2xx"] = float(errors.group(1)) if errors else 0.0
    return out


def _wrk(url: str, script: str, duration: int, connections: int, threads: int = 1) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    load = os.getloadavg()[0]  # before the run: what else was using the machine
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", f.name, url]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    os.unlink(f.name)
    return {**_parse_wrk(result.stdout), "load": load}


def _start(cmd: list[str], env: dict[str, str], health: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_http(health, 120, proc):
        proc.kill()
        raise RuntimeError(f"{cmd} did not start")
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=15)


def _start_api(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--workers", str(workers)]
    return _start(cmd, env, f"http://127.0.0.1:{port}/health"), f"http://127.0.0.1:{port}"


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r.get(k, float("nan")) for r in runs) for k in runs[0]}


def _lua_users(ids: list[str]) -> str:
    return USERS_LUA % ",".join(f'"{u}"' for u in ids)


def _row(name: str, r: dict[str, float], ratio: float | str, scale: int = 1) -> list[object]:
    return [name, r["rps"] * scale, r.get("p50", float("nan")), r.get("p99", float("nan")), ratio,
            int(r["non2xx"]), r["load"]]


def _workers_table(env: dict[str, str], hot: list[str], workers: list[int], duration: int,
                   connections: int) -> str:
    runs: dict[int, dict[str, float]] = {}
    for n in workers:
        proc, url = _start_api(env, n)
        try:
            threads, conns = min(n, 2), connections * n
            _wrk(url, _lua_users(hot), WORKER_WARMUP_SECONDS, conns, threads)
            runs[n] = {**_wrk(url, _lua_users(hot), duration, conns, threads), "threads": threads, "conns": conns}
        finally:
            _stop(proc)
    base = runs[workers[0]]["rps"]
    rows = [[n, f"{int(r['threads'])}/{int(r['conns'])}", r["rps"], r.get("p50", float("nan")),
             r.get("p99", float("nan")), r["rps"] / base, int(r["non2xx"]), r["load"]] for n, r in runs.items()]
    header = ["workers", "wrk threads/conns", "req/s", "p50 ms", "p99 ms", f"ratio to {workers[0]} worker",
              "non-2xx", "load 1m"]
    return table(header, rows)


def run(duration: int, connections: int, rounds: int = 3, workers: list[int] | None = None) -> str:
    if shutil.which("wrk") is None:
        return "wrk is not installed (apt-get install wrk): HTTP benchmark skipped"
    workers = workers or [1, 2, 4]
    root = Path(os.environ.get("RECOPS_BENCH_DIR", Path(tempfile.gettempdir()) / "recops-bench"))
    data_dir = root / "http-5000"
    settings = Settings(data_dir=data_dir, demo_items=5_000, demo_users=10_000)
    world = prepare_world(settings)
    prepare_models(settings, world.dataset())
    redis = EmbeddedRedis(data_dir=data_dir / "bench-redis", appendonly=False).start()
    body_file = data_dir / "bench-cached-list.json"
    # no warming at start: its minute of background computing would share the CPU with the measured
    # runs (the hit path is measured here; warming by `bench hitratio`), and it would turn the miss
    # row's requests into L2 hits
    env = dict(os.environ, REDIS_URL=redis.url, RECOPS_DATA_DIR=str(data_dir), OPENBLAS_NUM_THREADS="1",
               RECOPS_BENCH_BODY=str(body_file), RECOPS_WARM_ON_START_USERS="0")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    load_start = os.getloadavg()
    procs = []
    rows = []
    try:
        api_proc, api = _start_api(env, 1)
        procs.append(api_proc)
        users = [str(u) for u in world.events["user_id"].value_counts().index]
        hot = users[:HOT_USERS]
        with httpx.Client(base_url=api) as client:
            for u in hot:
                client.post("/recommendations", params={"user_id": u, "n": 10})
            hit = client.post("/recommendations", params={"user_id": hot[0], "n": 10})
        assert hit.json()["cache_tier"] == "l1", hit.text
        body_file.write_bytes(hit.content)  # the bare app answers these very bytes
        bare_port, asgi_port, route_port = free_port(), free_port(), free_port()
        uvicorn = [sys.executable, "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools", "--log-level",
                   "warning", "--no-access-log"]
        procs.append(_start([*uvicorn, "bench.trivial_app:app", "--port", str(bare_port)], env,
                            f"http://127.0.0.1:{bare_port}/"))
        # the same API with the fast path as ASGI only (uvicorn's own protocol), and without it:
        # every hit through FastAPI's route, as before the fast path
        others = []
        for port, factory in ((asgi_port, "engine.api.app:create_server"), (route_port, "engine.api.app:create_app")):
            procs.append(_start([*uvicorn, factory, "--factory", "--port", str(port)], env,
                                f"http://127.0.0.1:{port}/health"))
            others.append(f"http://127.0.0.1:{port}")
            with httpx.Client(base_url=others[-1]) as client:
                for u in hot:
                    client.post("/recommendations", params={"user_id": u, "n": 10})
        # the runs alternate, so each round sees the same background load
        rounds_run = [[_wrk(url, _lua_users(hot), duration, connections)
                       for url in (f"http://127.0.0.1:{bare_port}", api, *others)] for _ in range(rounds)]
        bare, hits, asgi, routed = (_median([r[i] for r in rounds_run]) for i in range(4))
        hit_ratio, asgi_ratio, route_ratio = (statistics.median(r[i]["rps"] / r[0]["rps"] for r in rounds_run)
                                              for i in (1, 2, 3))
        cold = users[HOT_USERS:]
        miss = _wrk(api, _lua_users(cold), duration, connections)
        events = _wrk(api, EVENTS_LUA % (world.n_items, world.n_users), duration, connections)
        rows += [_row("bare ASGI, same bytes", bare, 1.0), _row("cache hit (L1, recops serve)", hits, hit_ratio),
                 _row("cache hit, fast path as ASGI only", asgi, asgi_ratio),
                 _row("cache hit, FastAPI route only", routed, route_ratio),
                 _row("cache miss", miss, miss["rps"] / bare["rps"]),
                 _row("events (100/request)", events, "", scale=100)]
        if miss["rps"] * duration > len(cold):
            rows.append(["(miss ran out of uncached users: later requests were hits)", "", "", "", "", "", ""])
    finally:
        for p in procs:
            _stop(p)
    try:
        workers_table = _workers_table(env, hot, workers, duration, connections)
    finally:
        redis.stop()
    load_end = os.getloadavg()
    verdicts = [
        f"cache-hit throughput {hit_ratio:.0%} of the bare ASGI app (floor >= 50%, goal >= 70%)",
        f"cache-hit p99 {hits.get('p99', float('nan')):.2f} ms at {connections} connections (goal < 5 ms)",
        f"event ingestion {events['rps'] * 100:,.0f} events/s (target >= 5,000)",
        f"load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in load_start)}, "
        f"at end {'/'.join(f'{x:.2f}' for x in load_end)}; {os.cpu_count()} cores",
    ]
    header = ["path", "req/s (events/s)", "p50 ms", "p99 ms", "ratio to bare", "non-2xx", "load 1m"]
    return (table(header, rows) + "\n\n" + "cache hit by API workers (recops serve --workers N):\n"
            + workers_table + "\n\n" + "\n".join(verdicts))


def _worker_counts(text: str) -> list[int]:
    counts = [int(x) for x in text.split(",") if x.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of worker counts >= 1, e.g. 1,2,4")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench http")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare / cache-hit runs (medians)")
    parser.add_argument("--workers", type=_worker_counts, default=[1, 2, 4],
                        help="API worker counts of the scaling table (comma-separated)")
    args = parser.parse_args(argv)
    print(run(args.duration, args.connections, args.rounds, args.workers))
    return 0
