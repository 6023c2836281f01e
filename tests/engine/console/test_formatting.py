"""engine.console.formatting: how numbers, sizes, durations and times are written."""

from __future__ import annotations

import math

import pytest

from engine.console.formatting import compact, format_value, human_bytes, human_seconds, milliseconds, when


@pytest.mark.parametrize(("value", "unit", "text"), [
    (0.0312, "percent", "3.12%"), (0.25, "percent", "25.0%"), (-0.05, "percent", "-5.00%"),
    (0.0421, "seconds", "42.1 ms"), (1.5, "seconds", "1.50 s"), (12.345, "per_second", "12.35/s"),
    (0.71234, "ratio", "0.712"), (None, "percent", "–"), (math.nan, "seconds", "–"), (math.inf, "ratio", "–"),
])
def test_format_value_by_unit(value: float | None, unit: str, text: str) -> None:
    assert format_value(value, unit) == text  # type: ignore[arg-type]


def test_human_seconds_bytes_and_compact_counts() -> None:
    assert [human_seconds(s) for s in (None, math.nan, 42, 90, 7200, 3 * 86_400)] == \
        ["–", "–", "42 s", "1.5 min", "2.0 h", "3.0 d"]
    assert [human_bytes(n) for n in (None, 512, 2048, 5 * 1024**2, 3 * 1024**3, 5000 * 1024**3)] == \
        ["–", "512 B", "2.0 KiB", "5.0 MiB", "3.0 GiB", "5000.0 GiB"]
    assert [compact(v) for v in (999, 257_431, 2_500_000)] == ["999", "257.4k", "2.5M"]


def test_times_are_utc_to_the_second_and_latencies_in_milliseconds() -> None:
    assert when(0) == "1970-01-01 00:00:00 UTC"
    assert when(1_700_000_000.9) == "2023-11-14 22:13:20 UTC"
    assert milliseconds(0.0123) == "12.30 ms" and milliseconds(0.0123, 1) == "12.3 ms"
