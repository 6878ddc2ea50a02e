"""The development environment outside the settings: the .env the dev runner writes, and what it and the
test setup prepare before the settings are read."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from eci_platform import embedded
from eci_platform.embedded import dev_runner_prepare, embedded_services_start
from eci_platform.env_file import debug_on, env_file_apply, env_file_read, env_file_update

ADDRESSES = {
    "DATABASE_URL": "postgres://dev@127.0.0.1:1/mine",
    "REDIS_URL": "redis://127.0.0.1:1/5",
    "EMAIL_URL": "smtp://127.0.0.1:1",
}


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[None]:
    """This test's process environment, restored after it: no DEBUG, no addresses, a data folder of its
    own (not created)."""
    with mock.patch.dict(os.environ):
        for name in ("DEBUG", "DATABASE_URL", "REDIS_URL", "EMAIL_URL", "ALTCHA_COST"):
            os.environ.pop(name, None)
        os.environ["ECI_DATA_DIR"] = str(tmp_path / "data")
        yield


def test_the_dot_env_update_replaces_its_own_lines_in_place_and_keeps_the_others(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# mine\nALTCHA_COST=7\nDEBUG=1\nREDIS_URL=redis://127.0.0.1:9/0\n"
        "export LOG_LEVEL=DEBUG\nREDIS_URL=old\n"
    )
    env_file_update(
        {"REDIS_URL": "redis://127.0.0.1:1234/0", "DATABASE_URL": "postgres://x@%2Fsocket/eci"}, env_file
    )
    assert env_file.read_text().splitlines() == [
        "# mine",
        "ALTCHA_COST=7",
        "DEBUG=1",
        "REDIS_URL=redis://127.0.0.1:1234/0",
        "export LOG_LEVEL=DEBUG",
        "DATABASE_URL=postgres://x@%2Fsocket/eci",
    ]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file_read(env_file) == {
        "ALTCHA_COST": "7",
        "DEBUG": "1",
        "REDIS_URL": "redis://127.0.0.1:1234/0",
        "LOG_LEVEL": "DEBUG",
        "DATABASE_URL": "postgres://x@%2Fsocket/eci",
    }


def test_a_new_dot_env_says_what_it_is_and_is_private(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file_update({"DEBUG": "1"}, env_file)
    assert env_file.read_text().startswith("# Development settings (DEBUG=1)")
    assert env_file_read(env_file) == {"DEBUG": "1"}
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="span lines"):
        env_file_update({"SECRET_KEY": "two\nlines"}, env_file)


@pytest.mark.parametrize(
    ("process", "file", "debug", "applied"),
    [
        ({}, "DEBUG=1\n", False, False),  # a .env alone never switches development on
        ({"DEBUG": "1"}, "DEBUG=1\n", True, True),
        ({"DEBUG": "1"}, "", True, False),  # a .env is development's only when it says so
        ({"DEBUG": "0"}, "DEBUG=1\n", False, False),  # the process environment wins
        ({"DEBUG": ""}, "DEBUG=1\n", False, False),  # set, and not on
        ({}, "DEBUG=0\n", False, False),
        ({}, None, False, False),
    ],
)
@pytest.mark.usefixtures("environment")
def test_debug_is_the_process_environments_else_the_dot_envs(
    tmp_path: Path, process: dict[str, str], file: str | None, debug: bool, applied: bool
) -> None:
    env_file = tmp_path / ".env"
    if file is not None:
        env_file.write_text(file + "ALTCHA_COST=7\n")
    os.environ.update(process)
    assert debug_on(env_file) is debug
    assert env_file_apply(env_file) is applied
    assert os.environ.get("ALTCHA_COST") == ("7" if applied else None)


@pytest.mark.usefixtures("environment")
def test_with_both_addresses_set_nothing_is_started(tmp_path: Path) -> None:
    os.environ.update(ADDRESSES)
    before, started = dict(os.environ), set(embedded.started_here)
    embedded_services_start()
    assert dict(os.environ) == before
    assert not (tmp_path / "data").exists()
    assert embedded.started_here == started


@pytest.mark.usefixtures("environment")
def test_the_dev_runner_writes_the_addresses_of_the_process_environment_not_the_stale_dot_envs(
    tmp_path: Path,
) -> None:
    """A .env left by a stopped run names its servers; the runner uses what the environment says (here real
    services, so nothing is started) and writes those, keeping the developer's own lines."""
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DEBUG=1\nDATABASE_URL=postgres://stale@%2Fgone/eci\nREDIS_URL=redis://127.0.0.1:2/0\nX=y\n"
    )
    os.environ.update(DEBUG="1", **ADDRESSES)
    started = set(embedded.started_here)
    dev_runner_prepare(env_file)
    assert env_file_read(env_file) == {
        "DEBUG": "1",
        "DATABASE_URL": ADDRESSES["DATABASE_URL"],
        "REDIS_URL": ADDRESSES["REDIS_URL"],
        "EMAIL_URL": ADDRESSES["EMAIL_URL"],
        "X": "y",
        "ECI_DATA_DIR": str(tmp_path / "data"),
    }
    assert embedded.started_here == started
    assert not (tmp_path / "data").exists()


@pytest.mark.usefixtures("environment")
def test_the_dev_runner_prepares_nothing_with_debug_off(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DEBUG=1\n")
    os.environ["DEBUG"] = "0"
    dev_runner_prepare(env_file)  # the command then refuses to run; no server was started for it
    assert env_file.read_text() == "DEBUG=1\n"
    assert not (tmp_path / "data").exists()
    assert "DATABASE_URL" not in os.environ


@pytest.mark.usefixtures("environment")
def test_the_dev_runner_starts_a_mail_sink_that_keeps_each_message_as_an_eml_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no EMAIL_URL in the environment the runner starts the SMTP sink, writes its address to .env,
    and every message sent to it (by Django's SMTP back end, as web and worker send) lands whole as a
    .eml file under the data folder's mail/, which it prints."""
    from email import message_from_bytes

    import environ
    from django.core.mail import EmailMessage, get_connection

    env_file = tmp_path / ".env"
    os.environ.update(DEBUG="1", DATABASE_URL=ADDRESSES["DATABASE_URL"], REDIS_URL=ADDRESSES["REDIS_URL"])
    try:
        dev_runner_prepare(env_file)
        url = env_file_read(env_file)["EMAIL_URL"]
        assert url == os.environ["EMAIL_URL"] and url.startswith("smtp://127.0.0.1:")
        assert embedded.mail_sink_running() and "mail" in embedded.started_here
        config = environ.Env.email_url_config(url)
        connection = get_connection(
            "django.core.mail.backends.smtp.EmailBackend",
            host=config["EMAIL_HOST"],
            port=config["EMAIL_PORT"],
        )
        connection.send_messages(
            [
                EmailMessage(
                    "Über", "Zweite Nachricht\n", "from@localhost", ["to@example.org", "cc@example.org"]
                )
            ]
        )
    finally:
        embedded.mail_sink_stop()
    files = sorted((tmp_path / "data" / "mail").glob("*.eml"))
    assert len(files) == 1
    message = message_from_bytes(files[0].read_bytes())
    assert message["To"] == "to@example.org, cc@example.org"
    assert "Zweite Nachricht" in message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert f"kept in {files[0]}" in capsys.readouterr().out
    assert not list((tmp_path / "data" / "mail").glob(".incoming-*"))  # written whole, then renamed
