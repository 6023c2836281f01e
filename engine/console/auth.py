"""Access to the console: with a password configured, writes need a login (and reads too, if asked).

The password comes from ``RECOPS_CONSOLE_PASSWORD`` (``Settings.console_password``), else from the
``console_password`` key of ``.streamlit/secrets.toml``; the environment wins.  It is kept as a
``SecretStr`` (its repr is masked, so a log line or a traceback cannot show it) and compared with
``hmac.compare_digest`` so that the answer's timing says nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from engine.config import Settings

SECRET_KEY = "console_password"
WRONG_PASSWORD = "Wrong password."
OPERATOR_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,63}$")
ANONYMOUS = "console"


def configured_password(settings: Settings, secrets: Mapping[str, Any] | None = None) -> SecretStr | None:
    """The console password, or None when the console is open (an empty value counts as unset)."""
    if settings.console_password is not None and settings.console_password.get_secret_value():
        return settings.console_password
    value = secrets.get(SECRET_KEY) if secrets is not None else None
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str) and value:
        return SecretStr(value)
    return None


def password_matches(supplied: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(supplied.encode("utf-8"), expected.get_secret_value().encode("utf-8"))


def operator_name(raw: str) -> str:
    """The name audit entries carry; raises ``ValueError`` with a readable message when unusable."""
    name = raw.strip()
    if not name:
        return ANONYMOUS
    if not OPERATOR_PATTERN.fullmatch(name):
        raise ValueError("Use 1–64 letters, digits, spaces or . _ @ - for your name (starting with a letter or digit).")
    return name


@dataclass(frozen=True)
class AccessPolicy:
    password: SecretStr | None
    login_for_reads: bool = False

    @property
    def open(self) -> bool:
        return self.password is None

    def login_required(self, write: bool) -> bool:
        return self.password is not None and (write or self.login_for_reads)

    def check(self, supplied: str) -> bool:
        """Whether ``supplied`` is the password (always True for an open console)."""
        return self.password is None or password_matches(supplied, self.password)

    def log_in(self, name: str, password: str) -> str:
        """The operator's name once ``password`` is right; ``ValueError`` with a message fit for the
        page when the name is unusable or the password wrong (the name is checked first)."""
        who = operator_name(name)
        if not self.check(password):
            raise ValueError(WRONG_PASSWORD)
        return who

    def may_read(self, logged_in: str | None) -> bool:
        return logged_in is not None or not self.login_required(write=False)

    def writer(self, logged_in: str | None, open_name: str | None) -> str | None:
        """Who may write now: the logged-in operator; on an open console, else the name given in the
        sidebar, else ``ANONYMOUS``; None when a login is needed and has not happened."""
        if not self.login_required(write=True):
            return logged_in or open_name or ANONYMOUS
        return logged_in
