"""Console page render times in a real browser: ``recops up`` with the demo world, simulated traffic
and a running experiment, then Debian's Chromium (Playwright) loads every page.

    python -m bench console [--users 10000] [--items 5000] [--loads 3] [--traffic-seconds 30]

A page has rendered when Streamlit's script state is ``notRunning``, no skeleton is left and the
page's own heading is shown.  "load" opens the page's URL afresh (a new session: the websocket and
the page script, with every cache of the console process warm after the first visit); "switch"
clicks the page in the sidebar of an open session, which is what an operator mostly does.  The
first visit of each page is reported apart: it pays for loading the engine or a chart library once.

The helpers here also drive tests/test_browser.py (the stack, the browser flags, the render wait).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.harness import metric_total, table
from engine.config import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1440, "height": 1000}
TARGET_SECONDS = 2.0
REPO_ROOT = Path(__file__).resolve().parents[1]

# A run is over when the script has stopped, no skeleton placeholder is left and the page's heading
# is the expected one (right after a navigation the previous page's state can still be on screen).
RENDERED_JS = """([heading]) => {
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector("[data-testid='stSkeleton']")) return false;
  const h1 = document.querySelector('h1');
  return !!h1 && h1.innerText.trim() === heading;
}"""


@dataclass(frozen=True)
class ConsolePage:
    path: str  # URL path ("" for the default page)
    label: str  # the sidebar entry
    heading: str  # the page's h1


PAGES = (
    ConsolePage("", "Overview", "Overview"),
    ConsolePage("recommendations", "Recommendations", "Recommendations"),
    ConsolePage("models", "Models", "Models"),
    ConsolePage("experiments", "Experiments", "Experiments"),
    ConsolePage("readout", "Readout", "Readout"),
    ConsolePage("monitoring", "Monitoring", "Monitoring"),
    ConsolePage("cache", "Cache", "Cache and features"),
)


# ----------------------------------------------------------------------------- the stack


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    urls: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode or 0)

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""


def stack_env(data_dir: Path, world: dict[str, int] | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PROMETHEUS_URL", "RECOPS_API_URL")}
    env.update(RECOPS_DATA_DIR=str(data_dir), RECOPS_API_PORT="0", RECOPS_CONSOLE_PORT="0",
               RECOPS_PROMETHEUS_PORT="0", RECOPS_CONSOLE_REFRESH_SECONDS="0", OPENBLAS_NUM_THREADS="1",
               # the callers start the experiment they measure (``start_experiment``): no demo beside it
               RECOPS_DEMO_EXPERIMENT="0")
    for name, value in (world or {}).items():
        env[f"RECOPS_{name.upper()}"] = str(value)
    env.update(extra)
    return env


def start_stack(data_dir: Path, env: dict[str, str], simulator_rate: float = 5.0,
                timeout: float = 180.0) -> RunningStack:
    """``recops up`` in ``data_dir`` (already holding a world and models); returns once the API and
    the console answer (and Prometheus, when its binary exists)."""
    log = data_dir.parent / f"{data_dir.name}-up.log"
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "up", "--simulator-rate", str(simulator_rate)],
                            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    stack = RunningStack(proc, data_dir, log)
    want = {"api", "console"} | ({"prometheus"} if shutil.which("prometheus") else set())
    deadline = time.monotonic() + timeout
    state_file = data_dir / "stack.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"recops up exited with {proc.returncode}:\n{stack.log_tail()}")
        with contextlib.suppress(OSError, ValueError):
            urls = json.loads(state_file.read_text())["urls"]
            if want <= set(urls) and "RecOps is up" in log.read_text(errors="replace"):
                stack.urls = urls
                return stack
        time.sleep(0.25)
    stack.stop()
    raise RuntimeError(f"the stack did not come up within {timeout}s:\n{stack.log_tail()}")


def events_seen(api_url: str) -> float:
    return metric_total(httpx.get(f"{api_url}/metrics", timeout=5).text, "recops_events_total")


def wait_for_traffic(api_url: str, events: int, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = events_seen(api_url)
        if seen >= events:
            return seen
        time.sleep(0.5)
    raise RuntimeError(f"the simulator sent fewer than {events} events in {timeout}s")


def start_experiment(settings: Settings, key: str = "als-vs-popularity") -> None:
    """An A/B test the stack's API serves (it picks the config up within a second)."""
    from engine.runtime import build_engine

    engine = build_engine(settings, start_listener=False)
    try:
        engine.experiments.create({
            "key": key, "name": "ALS vs popularity", "hypothesis": "ALS lifts CTR by at least 5% over popularity",
            "guardrail_metrics": ["conversion_rate"],
            "variants": [{"name": "control", "model": "popularity", "weight": 0.5},
                         {"name": "als", "model": "als", "weight": 0.5}]})
        engine.experiments.start(key)
    finally:
        engine.close()


def prometheus_has_traffic(prometheus_url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
        query = {"query": "job:recops_recommendation_requests:rate1m"}
        body = httpx.get(f"{prometheus_url}/api/v1/query", params=query, timeout=5).json()
        return bool(body["data"]["result"])
    return False


# ----------------------------------------------------------------------------- the browser


@contextlib.contextmanager
def browser_page(chromium: str = CHROMIUM, viewport: dict[str, int] | None = None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport=viewport or VIEWPORT)
        finally:
            browser.close()


def wait_rendered(page: Any, heading: str, timeout: float = 60.0) -> None:
    page.wait_for_function(RENDERED_JS, arg=[heading], timeout=timeout * 1000, polling=25)


def load(page: Any, base_url: str, console_page: ConsolePage) -> float:
    started = time.perf_counter()
    page.goto(f"{base_url}/{console_page.path}")
    wait_rendered(page, console_page.heading)
    return time.perf_counter() - started


def switch(page: Any, console_page: ConsolePage) -> float:
    started = time.perf_counter()
    page.locator(f"[data-testid='stSidebarNavLink'] span[label='{console_page.label}']").click()
    wait_rendered(page, console_page.heading)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- the benchmark


def prepared_world(users: int, items: int, root: Path) -> Path:
    """A data dir with the world and trained models, made once and reused by later runs."""
    from engine.runtime import prepare_models, prepare_world

    data_dir = root / f"console-world-{items}-items-{users}-users"
    settings = Settings(data_dir=data_dir, redis_url="redis://unused", demo_users=users, demo_items=items)
    prepare_models(settings, prepare_world(settings).dataset())
    return data_dir


def measure(base_url: str, loads: int) -> list[list[object]]:
    first: dict[str, float] = {}
    load_times: dict[str, list[float]] = {p.label: [] for p in PAGES}
    switch_times: dict[str, list[float]] = {p.label: [] for p in PAGES}
    with browser_page() as page:
        for p in PAGES:
            first[p.label] = load(page, base_url, p)
        for _ in range(loads):
            for p in PAGES:
                load_times[p.label].append(load(page, base_url, p))
        load(page, base_url, PAGES[0])
        for _ in range(loads):
            for p in [*PAGES[1:], PAGES[0]]:
                switch_times[p.label].append(switch(page, p))
    medians = {label: statistics.median(ts) for label, ts in load_times.items()}
    fastest = min(medians.values())
    return [[label, first[label], medians[label], statistics.median(switch_times[label]), medians[label] / fastest,
             f"< {TARGET_SECONDS:g} s", "ok" if medians[label] < TARGET_SECONDS else "MISSED"]
            for label in medians]


def run(users: int, items: int, loads: int, traffic_seconds: float, rate: float) -> str:
    root = Path(os.environ.get("RECOPS_BENCH_DIR", Path(tempfile.gettempdir()) / "recops-bench"))
    world = prepared_world(users, items, root)
    work = Path(tempfile.mkdtemp(prefix="recops-console-bench-"))
    data_dir = work / "data"
    shutil.copytree(world, data_dir)
    sizes = {"demo_users": users, "demo_items": items}
    stack = start_stack(data_dir, stack_env(data_dir, sizes), simulator_rate=rate)
    try:
        start_experiment(Settings(data_dir=data_dir, redis_url=stack.urls["redis"], **sizes))
        time.sleep(traffic_seconds)
        events = events_seen(stack.urls["api"])
        rows = measure(stack.urls["console"], loads)
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_avg = os.getloadavg()[0]
    header = (f"console pages, {users:,} users x {items:,} items, after {traffic_seconds:g} s of simulated traffic "
              f"({events:,.0f} events), Prometheus {'on' if 'prometheus' in stack.urls else 'off'}; "
              f"median of {loads} loads; 1-min load average at the end {load_avg:.1f} on {os.cpu_count()} cores")
    return header + "\n" + table(
        ["page", "first visit s", "load s (median)", "switch s (median)", "load / fastest", "target", "verdict"], rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench console", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--traffic-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=5.0, help="simulator requests per second")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found (apt-get install chromium)", file=sys.stderr)
        return 2
    print(run(args.users, args.items, args.loads, args.traffic_seconds, args.rate))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
