"""engine.console.auth: the console password, logins, and who may read and write."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from engine.config import Settings
from engine.console.auth import (
    ANONYMOUS,
    WRONG_PASSWORD,
    AccessPolicy,
    configured_password,
    operator_name,
    password_matches,
)


def test_password_from_environment_wins_over_secrets_and_empty_means_open() -> None:
    from_env = Settings(console_password=SecretStr("env-pw"))
    assert configured_password(from_env, {"console_password": "file-pw"}).get_secret_value() == "env-pw"
    assert configured_password(Settings(), {"console_password": "file-pw"}).get_secret_value() == "file-pw"
    assert configured_password(Settings(), {"console_password": ""}) is None
    assert configured_password(Settings(), None) is None
    assert configured_password(Settings(console_password=SecretStr("")), {}) is None


def test_password_compare_and_policy() -> None:
    secret = SecretStr("s3cret-ü")
    assert password_matches("s3cret-ü", secret)
    assert not password_matches("s3cret", secret)
    assert not password_matches("", secret)
    assert "s3cret" not in repr(AccessPolicy(secret))  # never printable by accident
    open_console = AccessPolicy(None)
    assert not open_console.login_required(write=True) and open_console.check("anything")
    writes_only = AccessPolicy(secret)
    assert writes_only.login_required(write=True) and not writes_only.login_required(write=False)
    assert AccessPolicy(secret, login_for_reads=True).login_required(write=False)


def test_operator_names_are_validated() -> None:
    assert operator_name("  ada  ") == "ada"
    assert operator_name("") == ANONYMOUS
    for bad in ("<script>", "x" * 65, "-dash-first", "tab\tname"):
        with pytest.raises(ValueError, match="letters, digits"):
            operator_name(bad)


def test_log_in_checks_the_name_then_the_password() -> None:
    policy = AccessPolicy(SecretStr("correct horse"))
    assert policy.log_in(" ada ", "correct horse") == "ada"
    assert policy.log_in("", "correct horse") == ANONYMOUS
    with pytest.raises(ValueError, match="letters, digits"):
        policy.log_in("<script>", "wrong")  # the name's problem is said first
    with pytest.raises(ValueError) as wrong:
        policy.log_in("ada", "wrong")
    assert str(wrong.value) == WRONG_PASSWORD and "correct horse" not in str(wrong.value)


def test_who_may_read_and_write() -> None:
    open_console = AccessPolicy(None)
    assert open_console.writer(None, None) == ANONYMOUS and open_console.writer(None, "bob") == "bob"
    assert open_console.writer("ada", "bob") == "ada" and open_console.may_read(None)
    guarded = AccessPolicy(SecretStr("pw"))
    assert guarded.writer(None, "bob") is None and guarded.writer("ada", None) == "ada"
    assert guarded.may_read(None)  # only writes need the login
    private = AccessPolicy(SecretStr("pw"), login_for_reads=True)
    assert not private.may_read(None) and private.may_read("ada")
