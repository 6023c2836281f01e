"""``recops`` run in process: (exit code, stdout, stderr) of a command, under the environment a test sets."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from engine.cli.main import main
from engine.config import get_settings

# ``recops ARGS`` run in process: (exit code, stdout, stderr)
CliRunner = Callable[[list[str]], tuple[int, str, str]]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()  # only what this command printed
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


class Recops:
    """``recops(argv)`` in process; ``env(NAME=value, ...)`` sets what its settings read."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def env(self, **variables: str) -> None:
        for name, value in variables.items():
            self.monkeypatch.setenv(name, value)
        get_settings.cache_clear()  # the CLI reads its settings once per process otherwise

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        return run_cli(argv, self.capsys)


@pytest.fixture
def recops(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Recops]:
    yield Recops(capsys, monkeypatch)
    get_settings.cache_clear()  # the environment is restored: so must the settings read from it be
