"""The Readout page in a real browser on a first start: `recops up` on a fresh data dir with the demo
experiment on (RECOPS_DEMO_EXPERIMENT=1, as `make run` starts it), the simulator filling it, and
Debian's Chromium (Playwright) reading it out.

Every wait is for a specific text or element, never a sleep; screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.console import (
    PAGES,
    RunningStack,
    browser_page,
    stack_env,
    start_experiment,
    start_stack,
    wait_rendered,
)
from engine.config import Settings
from engine.console.experiments import DEMO_BANNER
from engine.experiments.demo import DEMO_KEY
from engine.runtime import build_engine
from tests.conftest import REPO_ROOT, require_binary
from tests.support.engine_fixtures import SMALL_WORLD
from tests.support.polling import poll

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser-readout")]

ARTIFACTS = REPO_ROOT / "test-artifacts"
TALL = {"width": 1440, "height": 2600}
READOUT = next(p for p in PAGES if p.label == "Readout")
# upper bounds, not sleeps: the readout computes its report (health, quality, overlap, every period) per
# session, which on a shared two-core machine under load has taken over a minute
WAIT_SECONDS = 180.0
WAIT_MS = int(WAIT_SECONDS * 1000)
FIRST_VISIT_SECONDS = 240.0
MINE = "mine-popularity-vs-als"


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_binary("chromium", "/usr/bin/chromium")


def settings(stack: RunningStack) -> Settings:
    return Settings(data_dir=stack.data_dir, redis_url=stack.urls["redis"], **SMALL_WORLD)


def filled(stack: RunningStack) -> bool:
    """The demo has users and clicks in every arm, a lift over time on ctr and on the guardrail the test
    plots (conversion_rate: purchases are rarer than clicks) and recorded lists."""
    engine = build_engine(settings(stack), start_listener=False)
    try:
        readout = engine.experiments.readout(DEMO_KEY)
        report = engine.experiments.report(DEMO_KEY)
    finally:
        engine.close()
    goal = readout.goal.readout
    return (goal is not None and all(a.users > 0 and a.totals["clicks"] > 0 for a in readout.arms)
            and {r["metric"] for r in report["timeseries"] if r["lift"] is not None} >= {"ctr", "conversion_rate"}
            and all(arm["lists"] > 0 for arm in report["quality"]["arms"]))


@pytest.fixture(scope="module")
def first_start(small_world_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                chromium: str) -> Iterator[RunningStack]:
    data_dir = tmp_path_factory.mktemp("browser-readout") / "data"
    shutil.copytree(small_world_dir, data_dir)  # the trained small world and nothing in Redis: a first start
    running = start_stack(data_dir, stack_env(data_dir, SMALL_WORLD, RECOPS_DEMO_EXPERIMENT="1"), simulator_rate=10)
    try:
        assert f"experiment  {DEMO_KEY}: running" in running.log_tail(20_000), running.log_tail()
        assert poll(lambda: filled(running), 180, every=1.0), "the simulator did not fill the demo experiment"
        # the console's first visit builds its engine and loads the models (tens of seconds on a busy
        # machine): made once here, with its own bound, so the tests' page loads are warm ones
        with browser_page(chromium, TALL) as page:
            page.goto(running.urls["console"])
            wait_rendered(page, PAGES[0].heading, timeout=FIRST_VISIT_SECONDS)
        yield running
    finally:
        code = running.stop()
        assert code == 0, running.log_tail()


def open_readout(page: Any, stack: RunningStack) -> None:
    page.goto(f"{stack.urls['console']}/{READOUT.path}")
    wait_rendered(page, READOUT.heading, timeout=WAIT_SECONDS)


def choose(page: Any, label: str, option: str) -> None:
    """Pick the option whose shown text holds ``option`` in the select box ``label`` (the one already
    picked closes the list without a rerun)."""
    box = page.locator("[data-testid='stSelectbox']").filter(has=page.get_by_text(label, exact=True)).first
    box.click()
    page.get_by_role("option").filter(has_text=option).first.click()


def main_text(page: Any) -> str:
    return str(page.locator("[data-testid='stMain']").inner_text())


def test_readout_of_a_running_experiment_health_first_then_verdict_chart_quality_and_export(
    first_start: RunningStack, chromium: str, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with browser_page(chromium, TALL) as page:
        open_readout(page, first_start)
        choose(page, "Experiment", DEMO_KEY)
        page.locator(".gtitle").filter(has_text="ctr: cumulative lift per").first.wait_for(timeout=WAIT_MS)
        wait_rendered(page, READOUT.heading, timeout=WAIT_SECONDS)
        assert page.locator("[data-testid='stException']").count() == 0
        body = main_text(page)
        # the health checks come before the numbers: the decision, then the goal's verdict table
        health, decision, goal = body.find("Health:"), body.find("Decision:"), body.find("Goal: ctr")
        assert -1 < health < decision < goal, body[:2000]
        assert "Rule that decided:" in body
        verdict = page.locator("[data-testid='stTable']").first
        assert verdict.is_visible()
        shown = verdict.inner_text()
        assert all(word in shown for word in ("ctr", "item_item", "lift", "interval low", "p-value")), shown
        assert "cumulative relative lift on ctr" in body and "ctr is a goal (higher is better)" in body
        quality = page.locator("[data-testid='stTable']").filter(has_text="coverage").first
        assert quality.is_visible() and "als" in quality.inner_text() and "item_item" in quality.inner_text()
        assert "mean Jaccard" in body
        page.screenshot(path=str(ARTIFACTS / "console-readout-demo.png"), full_page=True)

        # any declared metric over time: a guardrail of the demo
        choose(page, "Metric over time", "conversion_rate")
        page.locator(".gtitle").filter(has_text="conversion_rate: cumulative lift per").first.wait_for(
            timeout=WAIT_MS)
        page.get_by_text("conversion_rate is a guardrail").first.wait_for(timeout=WAIT_MS)
        wait_rendered(page, READOUT.heading, timeout=WAIT_SECONDS)
        assert page.locator("[data-testid='stException']").count() == 0

        with page.expect_download(timeout=WAIT_MS) as download:
            page.get_by_role("button", name="Download the report (HTML)").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
    assert saved.name == f"{DEMO_KEY}-phase1-frequentist-readout.html"
    report = saved.read_text(encoding="utf-8")
    assert report.lstrip().startswith(("<!DOCTYPE html", "<html")), report[:200]
    assert DEMO_KEY in report and "Results over time" in report


def test_the_demo_banner_shows_on_the_demo_readout_only(first_start: RunningStack, chromium: str) -> None:
    with browser_page(chromium, TALL) as page:
        open_readout(page, first_start)
        choose(page, "Experiment", DEMO_KEY)
        page.get_by_text(DEMO_BANNER).first.wait_for(timeout=WAIT_MS)
        wait_rendered(page, READOUT.heading, timeout=WAIT_SECONDS)
        assert f"{DEMO_BANNER}." in main_text(page) and DEMO_KEY in main_text(page)
    # an experiment of one's own, created through the engine beside the demo
    start_experiment(settings(first_start), key=MINE)
    with browser_page(chromium, TALL) as page:
        open_readout(page, first_start)
        choose(page, "Experiment", MINE)
        # its arms table names its own models (the demo's are als and item_item at production)
        page.locator("[data-testid='stTable']").filter(has_text="popularity").first.wait_for(timeout=WAIT_MS)
        wait_rendered(page, READOUT.heading, timeout=WAIT_SECONDS)
        assert page.locator("[data-testid='stException']").count() == 0
        body = main_text(page)
        assert "Goal: ctr" in body and "item_item" not in body  # the demo's treatment is nowhere on the page
        assert DEMO_BANNER not in body
        page.screenshot(path=str(ARTIFACTS / "console-readout-own-experiment.png"), full_page=True)
