"""``python -m bench scale`` at a tiny size: the JSON rows carry the promised fields with sane values,
the serving path follows ``RECOPS_ANN_MIN_ITEMS``, and the plot is an SVG with the measured curves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.synthetic_factors import FactorShape

REQUIRED = ("items", "users", "recall_at_100", "miss_p50_ms", "miss_p95_ms", "build_seconds", "memory_mb")
SMALL, LARGE, USERS = 400, 1_000, 300
ROOT = Path(__file__).resolve().parents[2]  # `python -m bench` imports the checkout's bench/ from here


def run_scale(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", "scale", *args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, **(env or {})), timeout=280)


@pytest.mark.timeout(300)
def test_tiny_scale_run_prints_one_row_per_catalogue(tmp_path: Path) -> None:
    plot = tmp_path / "scale.svg"
    done = run_scale("--sizes", f"{SMALL}x{USERS}", f"{LARGE}x{USERS}", "--workers", "--queries", "20",
                     "--hits", "50", "--json", "--plot", str(plot), env={"RECOPS_ANN_MIN_ITEMS": "800"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["kind"], r["items"], r["users"]) for r in rows] == [("catalogue", SMALL, USERS),
                                                                   ("catalogue", LARGE, USERS)]
    small, large = rows
    for row in rows:
        assert all(row[f] is not None for f in REQUIRED)
        assert 0.0 <= row["index_recall_at_100"] <= 1.0
        assert 0.0 < row["miss_p50_ms"] <= row["miss_p95_ms"]
        assert row["exact_miss_p50_ms"] > 0.0 and row["ann_miss_p50_ms"] > 0.0
        assert row["build_seconds"] > 0 and row["train_seconds"] > 0
        assert row["l1_hits_per_s"] > row["l2_hits_per_s"] > 0  # an L2 hit adds a Redis round trip
        assert row["interactions"] > USERS  # ~10 distinct history items per user
        assert row["peak_rss_mb"] > row["memory_mb"]
    factors_mb = lambda n_items: (n_items + USERS) * FactorShape().dim * 4 / 1e6  # noqa: E731 — float32 vectors
    # below the threshold: exact scoring, nothing approximate served, no index held
    assert small["served"] == "exact" and small["recall_at_100"] == 1.0
    assert small["miss_p50_ms"] == small["exact_miss_p50_ms"]
    assert small["memory_mb"] == pytest.approx(factors_mb(SMALL))
    # at or above it: the index serves, and its recall and memory are the row's
    assert large["served"] == "ann" and large["recall_at_100"] == large["index_recall_at_100"]
    assert large["miss_p50_ms"] == large["ann_miss_p50_ms"]
    assert large["memory_mb"] == pytest.approx(factors_mb(LARGE) + large["index_mb"])
    assert large["index_mb"] > LARGE * FactorShape().dim * 4 / 1e6  # the index holds a copy of every vector

    svg = ET.parse(plot).getroot()
    assert svg.tag.endswith("svg")
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 4  # exact and ANN miss, training and index build (no worker panel)
    assert all(len(line.get("points", "").split()) == 2 for line in lines)  # one point per catalogue


def test_bad_size_is_refused_with_exit_2() -> None:
    done = run_scale("--sizes", "1000by300", "--workers")
    assert done.returncode == 2
    assert "ITEMSxUSERS" in done.stderr and "Traceback" not in done.stderr
