"""The README documents what the code does: every setting, the two set-up commands."""

from __future__ import annotations

from engine.config import settings_table
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_readme_has_the_generated_settings_table() -> None:
    # regenerate with `recops config` when a setting changes
    for row in settings_table().splitlines():
        assert row in README, f"README's configuration table is out of date: {row}"


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
