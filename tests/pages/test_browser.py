"""The console in a real browser: `recops up` on the small world with simulated traffic, every page
opened in Debian's Chromium through Playwright, and one confirmation dialog clicked through.

Screenshots of every page go to test-artifacts/ at the repository root (gitignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bench.console import (
    PAGES,
    RunningStack,
    browser_page,
    load,
    prometheus_has_traffic,
    stack_env,
    start_experiment,
    start_stack,
    wait_for_traffic,
    wait_rendered,
)
from engine.config import Settings
from engine.console import monitoring_panels
from engine.data.dataset_store import DatasetStore
from engine.models.als import ALSRecommender
from engine.models.registry import ModelRegistry
from engine.runtime import prepare_world
from engine.storage.keys import Keys
from tests.conftest import REPO_ROOT, require_binary
from tests.support.engine_fixtures import SMALL_WORLD
from tests.support.imported_data import write_import_files
from tests.support.polling import poll
from tests.support.synthetic_data import two_taste_dataset

# one worker runs the whole module: its stack is started once per module (per worker)
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("console-browser")]

ARTIFACTS = REPO_ROOT / "test-artifacts"
TALL = {"width": 1440, "height": 2200}
# what each page shows once its data is there, beyond its heading
CONTENT = {
    "Overview": ["Key metrics", "Running experiments", "Alerts firing"],
    "Recommendations": ["Recommended to", "History and features"],
    "Models": ["Dataset served", "Versions", "Promote or roll back", "Datasets", "Import a dataset", "Train"],
    "Experiments": ["All experiments", "Experiment to manage", "Sample size"],
    "Readout": ["Health:", "Goal: ctr", "Guardrails", "Arms", "Recommendation quality", "mean Jaccard"],
    "Monitoring": ["Request rate", "Latency", "Alerts"],
    "Cache": ["Keys and memory per prefix", "Hit ratios", "Audit log"],
}


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_binary("chromium", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def stack(small_world_dir: Path, tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[RunningStack]:
    data_dir = tmp_path_factory.mktemp("browser") / "data"
    shutil.copytree(small_world_dir, data_dir)  # the trained small world: no training here
    # a candidate ALS beside the production one, for the Models page's promotion (candidates do not serve)
    world = prepare_world(Settings(data_dir=data_dir, redis_url="redis://unused", **SMALL_WORLD))
    candidate = ALSRecommender(factors=8, iterations=3, random_state=7).fit(world.dataset().interactions())
    ModelRegistry(data_dir / "models").save("als", candidate)
    running = start_stack(data_dir, stack_env(data_dir, SMALL_WORLD), simulator_rate=5)
    try:
        start_experiment(Settings(data_dir=data_dir, redis_url=running.urls["redis"], **SMALL_WORLD))
        wait_for_traffic(running.urls["api"], events=300)
        if "prometheus" in running.urls:
            # best effort, not a check: recorded rates give the Monitoring page charts with data
            poll(lambda: prometheus_has_traffic(running.urls["prometheus"]), 60, every=0.5)
        yield running
    finally:
        code = running.stop()
        assert code == 0, running.log_tail()


def test_every_page_renders_without_an_error(stack: RunningStack, chromium: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with browser_page(chromium, TALL) as page:
        # a deep URL first: the console process has not run app.py yet (Streamlit's legacy pages/ mode)
        for console_page in [*PAGES[1:], PAGES[0]]:
            load(page, stack.urls["console"], console_page)
            assert page.locator("[data-testid='stException']").count() == 0, console_page.label
            body = page.locator("[data-testid='stMain']").inner_text()
            missing = [text for text in CONTENT[console_page.label] if text not in body]
            assert not missing, f"{console_page.label}: {missing} not on the page"
            # the routed app, not the legacy pages/ discovery: sections in the sidebar
            assert page.locator("[data-testid='stNavSectionHeader']").count() == 3
            page.screenshot(path=str(ARTIFACTS / f"console-{console_page.label.lower()}.png"))


def test_invalidate_a_user_through_the_confirmation_dialog(stack: RunningStack, chromium: str) -> None:
    user = "u00007"
    httpx.post(f"{stack.urls['api']}/recommendations", params={"user_id": user, "n": 7}, timeout=10)
    client = redis.Redis.from_url(stack.urls["redis"], decode_responses=True)
    keys = Keys()
    lists = client.smembers(keys.rec_index(user))
    assert lists and all(client.exists(k) for k in lists)
    cache_page = next(p for p in PAGES if p.label == "Cache")
    with browser_page(chromium, TALL) as page:
        load(page, stack.urls["console"], cache_page)
        page.get_by_role("tab", name="Operations").click()
        field = page.get_by_label("User to invalidate", exact=True)
        field.fill(user)
        field.press("Enter")
        page.get_by_text(f"{user} has {len(lists)} cached list(s)").wait_for(timeout=30_000)
        page.get_by_role("button", name="Invalidate this user …").click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for(timeout=30_000)
        dialog.get_by_text("Delete").first.wait_for(timeout=30_000)  # the title renders before the body
        assert "Delete" in dialog.inner_text() and user in dialog.inner_text()
        page.screenshot(path=str(ARTIFACTS / "console-cache-dialog.png"))
        dialog.get_by_role("button", name="Invalidate", exact=True).click()
        page.get_by_text(f"Invalidated {user}").wait_for(timeout=30_000)
        wait_rendered(page, cache_page.heading)
        assert page.locator("[data-testid='stException']").count() == 0
    assert not any(client.exists(k) for k in lists)
    entry = client.xrevrange(keys.audit_log, count=1)[0][1]
    assert (entry["actor"], entry["action"], entry["target"]) == ("console", "invalidate_user", user)


def test_prometheus_source_reads_the_running_stack(stack: RunningStack) -> None:
    require_binary("prometheus")
    source = monitoring_panels.PrometheusSource(stack.urls["prometheus"])
    current = source.current()
    assert current["p95_latency"] is not None and current["p95_latency"] > 0
    now = monitoring_panels.now_utc()
    frame = source.range_frame(monitoring_panels.PANELS[0], now - monitoring_panels.TIME_RANGES["15 minutes"], now, 5)
    assert not frame.empty and set(frame.columns) == {"time", "series", "value"} and "ok" in set(frame["series"])
    assert all(a.state in ("pending", "firing") for a in source.alerts())


def test_ab_test_a_candidate_opens_the_filled_in_editor(stack: RunningStack, chromium: str) -> None:
    """Models → "A/B test this candidate against production" → the Experiments page's editor with both specs
    (runs before the promotion below, which makes the stack's candidate production)."""
    registry = ModelRegistry(stack.data_dir / "models")
    versions = registry.versions("als", "demo")
    candidate = next(v for v in reversed(versions) if registry.record("als", v).stage == "candidate")
    number = versions.index(candidate) + 1
    models_page = next(p for p in PAGES if p.label == "Models")
    with browser_page(chromium, TALL) as page:
        load(page, stack.urls["console"], models_page)
        page.get_by_role("button", name="A/B test this candidate against production").click()
        page.get_by_text("Filled in from the Models page").wait_for(timeout=30_000)
        wait_rendered(page, "Experiments")
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_label("Key", exact=True).input_value() == f"als-v{number}-vs-production"
        assert page.get_by_label("Name", exact=True).input_value() == f"als v{number} (candidate) vs production"
        boxes = page.locator("[data-testid='stSelectbox'] input")  # a box that takes typed text shows an input
        shown = [boxes.nth(i).input_value() for i in range(boxes.count())]
        assert "als@production" in shown and any(v.startswith(f"als@{number} · candidate") for v in shown), shown
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "console-experiments-ab-candidate.png"))


def test_promote_a_model_version_through_the_confirmation_dialog(stack: RunningStack, chromium: str) -> None:
    registry = ModelRegistry(stack.data_dir / "models")
    old = registry.current_version("als")
    new = next(v for v in registry.versions("als") if registry.record("als", v).stage == "candidate")
    models_page = next(p for p in PAGES if p.label == "Models")

    def served() -> list[list[str]]:
        """Lists of a few users: the running experiment serves some of them popularity, the rest ALS."""
        return [[i["item_id"] for i in httpx.post(f"{stack.urls['api']}/recommendations", params={"user_id": user},
                                                   timeout=10).json()["items"]]
                for user in ("u00011", "u00012", "u00013", "u00014", "u00015", "u00016")]

    before = served()
    with browser_page(chromium, TALL) as page:
        load(page, stack.urls["console"], models_page)
        page.get_by_role("button", name="Promote …").click()  # als is the first model, its candidate the version
        dialog = page.get_by_role("dialog")
        dialog.wait_for(timeout=30_000)
        # the dialog's title renders before its body: wait for the body's text, then read it
        dialog.get_by_text(new).first.wait_for(timeout=30_000)
        assert new in dialog.inner_text() and old in dialog.inner_text()
        page.screenshot(path=str(ARTIFACTS / "console-models-dialog.png"))
        dialog.get_by_role("button", name="Promote", exact=True).click()
        page.get_by_text(f"is production ({old} archived)").wait_for(timeout=30_000)
        wait_rendered(page, models_page.heading)
        assert page.locator("[data-testid='stException']").count() == 0
    assert registry.current_version("als") == new
    client = redis.Redis.from_url(stack.urls["redis"], decode_responses=True)
    entry = client.xrevrange(Keys().audit_log, count=1)[0][1]
    assert (entry["actor"], entry["action"], entry["target"]) == ("console", "promote_model", "als:demo")
    # the running API picks the promotion up by itself: the list it serves changes
    assert poll(lambda: served() != before, 15, every=0.25), "the API kept serving the old version"


def test_import_uploaded_files_from_the_models_page(stack: RunningStack, chromium: str, tmp_path: Path) -> None:
    """The one place a real file_uploader is driven (AppTest cannot): two CSV files become dataset v1, audited."""
    interactions, items = write_import_files(two_taste_dataset(seed=2), tmp_path / "files")
    models_page = next(p for p in PAGES if p.label == "Models")
    with browser_page(chromium, TALL) as page:
        load(page, stack.urls["console"], models_page)
        page.get_by_role("textbox", name="Dataset name").fill("uploaded")
        files = page.locator("input[type='file']")
        files.nth(0).set_input_files(str(interactions))
        files.nth(1).set_input_files(str(items))
        page.get_by_text(items.name).wait_for(timeout=30_000)  # both uploads listed under their fields
        page.get_by_role("button", name="Import").click()
        page.get_by_text("Imported uploaded v1").wait_for(timeout=60_000)
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(ARTIFACTS / "console-models-import.png"))
    stored = DatasetStore(stack.data_dir / "datasets").load("uploaded")
    assert (stored.version, stored.manifest["rows"]["interactions"]) == (1, len(two_taste_dataset(seed=2).events))
    assert stored.manifest["source"]["items"]["file"] == items.name
    client = redis.Redis.from_url(stack.urls["redis"], decode_responses=True)
    entry = client.xrevrange(Keys().audit_log, count=1)[0][1]
    assert (entry["actor"], entry["action"], entry["target"]) == ("console", "import_dataset", "uploaded:v1")
