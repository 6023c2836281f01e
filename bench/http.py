"""HTTP throughput and latency of the API with Debian's `wrk`, against a trivial FastAPI endpoint.

    python -m bench http [--duration 10] [--connections 10] [--rounds 3]

Runs in one go, on this machine: the trivial endpoint (the framework's ceiling), the cache-hit
path (users whose lists are cached), the miss path (every request a user not yet cached) and
event ingestion through POST /events/batch (100 events per request, unique ids).  One API
worker; wrk uses one thread so that the server keeps the other core.  The trivial and cache-hit
runs alternate ``--rounds`` times; their rows are medians, and the ratio is the median of each
round's ratio.
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
import time
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


def _wrk(url: str, script: str, duration: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", f.name, url]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    os.unlink(f.name)
    return _parse_wrk(result.stdout)


def _start(cmd: list[str], env: dict[str, str], health: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_http(health, 120, proc):
        proc.kill()
        raise RuntimeError(f"{cmd} did not start")
    return proc


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r.get(k, float("nan")) for r in runs) for k in runs[0]}


def run(duration: int, connections: int, rounds: int = 3) -> str:
    if shutil.which("wrk") is None:
        return "wrk is not installed (apt-get install wrk): HTTP benchmark skipped"
    root = Path(os.environ.get("RECOPS_BENCH_DIR", Path(tempfile.gettempdir()) / "recops-bench"))
    data_dir = root / "http-5000"
    settings = Settings(data_dir=data_dir, demo_items=5_000, demo_users=10_000)
    world = prepare_world(settings)
    prepare_models(settings, world.dataset())
    redis = EmbeddedRedis(data_dir=data_dir / "bench-redis", appendonly=False).start()
    env = dict(os.environ, REDIS_URL=redis.url, RECOPS_DATA_DIR=str(data_dir), OPENBLAS_NUM_THREADS="1")
    trivial_port, api_port = free_port(), free_port()
    procs = []
    rows = []
    try:
        procs.append(_start([sys.executable, "-m", "uvicorn", "bench.trivial_app:app", "--port", str(trivial_port),
                             "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"],
                            env, f"http://127.0.0.1:{trivial_port}/docs"))
        procs.append(_start([sys.executable, "-m", "engine.cli", "serve", "--port", str(api_port)], env,
                            f"http://127.0.0.1:{api_port}/health"))
        api = f"http://127.0.0.1:{api_port}"
        users = [str(u) for u in world.events["user_id"].value_counts().index]
        hot = users[:200]
        with httpx.Client(base_url=api) as client:
            for u in hot:
                client.post("/recommendations", params={"user_id": u, "n": 10})
        lua_users = lambda ids: ",".join(f'"{u}"' for u in ids)  # noqa: E731
        # trivial and cache-hit runs alternate, so each pair sees the same background load
        pairs = [(_wrk(f"http://127.0.0.1:{trivial_port}", USERS_LUA % lua_users(hot), duration, connections),
                  _wrk(api, USERS_LUA % lua_users(hot), duration, connections)) for _ in range(rounds)]
        trivial, hit = _median([t for t, _ in pairs]), _median([h for _, h in pairs])
        hit_ratio = statistics.median(h["rps"] / t["rps"] for t, h in pairs)
        cold = users[200:]
        miss = _wrk(api, USERS_LUA % lua_users(cold), duration, connections)
        events = _wrk(api, EVENTS_LUA % (world.n_items, world.n_users), duration, connections)
        time.sleep(0.1)
        for name, r, scale in (("trivial endpoint", trivial, 1), ("cache hit", hit, 1), ("cache miss", miss, 1),
                               ("events (100/request)", events, 100)):
            ratio = hit_ratio if r is hit else r["rps"] / trivial["rps"]
            rows.append([name, r["rps"] * scale, r.get("p50", float("nan")), r.get("p99", float("nan")),
                         ratio, int(r["non2xx"])])
        if miss["rps"] * duration > len(cold):
            rows.append(["(miss ran out of uncached users: later requests were hits)", "", "", "", "", ""])
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=15)
        redis.stop()
    verdicts = [
        f"cache-hit throughput {hit_ratio:.0%} of trivial (target >= 50%)",
        f"cache-hit p99 {hit.get('p99', float('nan')):.2f} ms at {connections} connections (target < 10 ms)",
        f"event ingestion {events['rps'] * 100:,.0f} events/s (target >= 5,000)",
    ]
    header = ["path", "req/s (events/s)", "p50 ms", "p99 ms", "ratio to trivial", "non-2xx"]
    return table(header, rows) + "\n" + "\n".join(verdicts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench http")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating trivial / cache-hit runs (medians)")
    args = parser.parse_args(argv)
    print(run(args.duration, args.connections, args.rounds))
    return 0
