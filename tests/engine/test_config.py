"""Settings read from the environment: durations such as RECOPS_RETRAIN_EVERY, and errors that name the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.config import Settings, parse_duration, settings_error


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("2.5", 2.5), ("45s", 45.0), ("30m", 1_800.0), ("6h", 21_600.0), ("1d", 86_400.0),
    ("1h30m", 5_400.0), ("1.5h", 5_400.0), (" 2 H ", 7_200.0), (600, 600.0),
])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "message"), [
    ("6x", "is not a duration"), ("", "is not a duration"), ("h", "is not a duration"),
    ("30m and then some", "is not a duration"), ("-5", "positive"), ("0", "positive"), ("0m", "positive"),
    ("inf", "finite"), ("nan", "positive"),
])
def test_what_is_not_a_duration_says_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_retrain_every_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOPS_RETRAIN_EVERY", raising=False)
    assert Settings().retrain_every is None  # unset: off
    monkeypatch.setenv("RECOPS_RETRAIN_EVERY", "")
    assert Settings().retrain_every is None
    monkeypatch.setenv("RECOPS_RETRAIN_EVERY", "30m")
    assert Settings().retrain_every == 1_800.0
    monkeypatch.setenv("RECOPS_RETRAIN_EVERY", "every now and then")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert settings_error(caught.value) == (
        "invalid setting RECOPS_RETRAIN_EVERY: 'every now and then' is not a duration: use seconds (90) or a "
        "number with s, m, h or d (30m, 6h, 1h30m)")


def test_an_error_names_the_variable_an_alias_reads() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(redis_url=["not", "text"], demo_users=3)  # type: ignore[arg-type]
    text = settings_error(caught.value)
    assert text.startswith("invalid setting ") and "REDIS_URL: " in text and "RECOPS_DEMO_USERS: " in text
