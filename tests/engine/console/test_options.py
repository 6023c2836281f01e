"""engine.console.options: the console's own options from the environment."""

from __future__ import annotations

from engine.console.options import DEFAULT_REFRESH_SECONDS, ConsoleOptions


def test_options_refresh_can_be_switched_off_and_bad_values_fall_back() -> None:
    off = ConsoleOptions.from_env({"RECOPS_CONSOLE_REFRESH_SECONDS": "0"})
    assert off.refresh_seconds == 0 and not off.live
    assert off.run_every is None and off.refresh_text == "Live refresh off"
    every = ConsoleOptions.from_env({"RECOPS_CONSOLE_REFRESH_SECONDS": "2.5"})
    assert every.refresh_seconds == 2.5 and every.run_every == 2.5
    assert every.refresh_text == "Live refresh every 2.5 s"
    for bad in ("soon", "-3", "nan", "inf"):
        opts = ConsoleOptions.from_env({"RECOPS_CONSOLE_REFRESH_SECONDS": bad})
        assert opts.refresh_seconds == DEFAULT_REFRESH_SECONDS
        assert opts.problems and "RECOPS_CONSOLE_REFRESH_SECONDS" in opts.problems[0]
    assert ConsoleOptions.from_env({"RECOPS_API_URL": "http://x:1/ "}).api_url == "http://x:1"


def test_login_for_reads_fails_closed_on_an_unreadable_value() -> None:
    assert ConsoleOptions.from_env({}).login_for_reads is False
    assert ConsoleOptions.from_env({"RECOPS_CONSOLE_LOGIN_FOR_READS": "1"}).login_for_reads is True
    assert ConsoleOptions.from_env({"RECOPS_CONSOLE_LOGIN_FOR_READS": "off"}).login_for_reads is False
    weird = ConsoleOptions.from_env({"RECOPS_CONSOLE_LOGIN_FOR_READS": "maybe"})
    assert weird.login_for_reads is True and weird.problems
