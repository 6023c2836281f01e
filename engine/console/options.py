"""Console options read from the environment (the engine's ``Settings`` hold everything else).

``RECOPS_CONSOLE_REFRESH_SECONDS`` sets how often live panels re-run (0 switches it off, as the tests
do, or a headless browser never sees the script settle); ``RECOPS_CONSOLE_LOGIN_FOR_READS=1`` asks for
the console password before showing anything; ``RECOPS_API_URL`` is the API ``recops up`` started.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

REFRESH_ENV = "RECOPS_CONSOLE_REFRESH_SECONDS"
LOGIN_FOR_READS_ENV = "RECOPS_CONSOLE_LOGIN_FOR_READS"
API_URL_ENV = "RECOPS_API_URL"
DEFAULT_REFRESH_SECONDS = 10.0
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class ConsoleOptions:
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS  # 0 = live refresh off
    login_for_reads: bool = False
    api_url: str | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)  # readable notes on ignored values

    @property
    def live(self) -> bool:
        return self.refresh_seconds > 0

    @property
    def run_every(self) -> float | None:
        """How often live panels re-run (``st.fragment(run_every=...)``), None when live refresh is off."""
        return self.refresh_seconds if self.live else None

    @property
    def refresh_text(self) -> str:
        return f"Live refresh every {self.refresh_seconds:g} s" if self.live else "Live refresh off"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsoleOptions:
        env = os.environ if environ is None else environ
        problems: list[str] = []
        refresh = DEFAULT_REFRESH_SECONDS
        raw = env.get(REFRESH_ENV, "").strip()
        if raw:
            try:
                refresh = float(raw)
                if not math.isfinite(refresh) or refresh < 0:
                    raise ValueError
            except ValueError:
                problems.append(f"{REFRESH_ENV}={raw!r} is not a number of seconds >= 0; using {refresh:g}")
                refresh = DEFAULT_REFRESH_SECONDS
        login_raw = env.get(LOGIN_FOR_READS_ENV, "").strip().lower()
        if login_raw not in TRUE_WORDS | FALSE_WORDS:
            # an unreadable value must not open the console: fail closed
            problems.append(f"{LOGIN_FOR_READS_ENV}={login_raw!r} is not a boolean; asking for a login on reads")
        login_for_reads = login_raw not in FALSE_WORDS
        api_url = env.get(API_URL_ENV, "").strip().rstrip("/") or None
        return cls(refresh_seconds=refresh, login_for_reads=login_for_reads, api_url=api_url,
                   problems=tuple(problems))
