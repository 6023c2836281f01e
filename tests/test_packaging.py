"""The wheel is the whole engine: every package and the package data, usable without the checkout.

``pip install .`` builds this same wheel; a non-editable install has nothing but what is inside it,
so the embedded Prometheus must find its config template and rules there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SOURCES = ("pyproject.toml", "README.md", "engine", "analysis")
CONFIG_DIR = REPO_ROOT / "engine" / "monitoring" / "prometheus"


def pip(*args: str | Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources (building in place would leave build/ in the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", root / "dist", source)
    [built] = (root / "dist").glob("recops-*.whl")
    return built


def test_the_wheel_holds_every_package_and_the_prometheus_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = [p.parent for top in ("engine", "analysis") for p in (REPO_ROOT / top).rglob("__init__.py")]
    for package in packages:
        assert f"{package.relative_to(REPO_ROOT).as_posix()}/__init__.py" in names
    config_files = [p.relative_to(REPO_ROOT).as_posix() for p in CONFIG_DIR.rglob("*") if p.is_file()]
    assert {"engine/monitoring/prometheus/rules/alerts.yml", "engine/monitoring/prometheus/rules/recording.yml",
            "engine/monitoring/prometheus/prometheus.yml.tmpl"} <= set(config_files)
    missing = sorted(set(config_files) - names)
    assert not missing, f"not in the wheel: {missing}"


def test_an_installed_wheel_renders_the_prometheus_config_from_its_own_files(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    pip("install", "--quiet", "--no-deps", "--no-compile", "--target", site, wheel)
    out = tmp_path / "rendered"
    script = (
        "import json, sys, engine\n"
        "from pathlib import Path\n"
        "from engine.monitoring.prometheus_server import render_config\n"
        f"config = render_config(Path({str(out)!r}), '127.0.0.1:8000')\n"
        "print(json.dumps({'engine': engine.__file__, 'config': config.read_text()}))\n"
    )
    # the installed copy comes first on the path; the checkout is neither the working dir nor on it
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["engine"]).is_relative_to(site)
    assert "127.0.0.1:8000" in report["config"]
    for name in ("recording.yml", "alerts.yml"):
        assert str((out / "rules" / name).resolve()) in report["config"]
        assert (out / "rules" / name).read_bytes() == (CONFIG_DIR / "rules" / name).read_bytes()
