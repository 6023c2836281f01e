"""Fixtures of the dataset import tests: a data dir wired into the CLI and an in-process ``recops`` runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import get_settings
from engine.data.dataset_store import DatasetStore
from tests.engine.data.fixture_files import CliRunner
from tests.support.cli import run_cli


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``RECOPS_DATA_DIR`` for the CLI (settings re-read per test)."""
    path = tmp_path / "data"
    monkeypatch.setenv("RECOPS_DATA_DIR", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


@pytest.fixture
def store(data_dir: Path) -> DatasetStore:
    return DatasetStore(data_dir / "datasets")


@pytest.fixture
def cli(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """``recops ARGS`` in process: (exit code, stdout, stderr)."""

    return lambda argv: run_cli(argv, capsys)
