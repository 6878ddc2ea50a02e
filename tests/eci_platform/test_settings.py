"""Start-up fails fast, naming the missing variable, when DEBUG is off; importing the settings only reads
the environment (and a .env only in development)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eci_platform.embedded import REPOSITORY_ROOT

CHECK = "import django; django.setup()"

# Every variable these tests decide themselves; the rest of the test run's environment is kept.
DECIDED = {
    "DEBUG",
    "ECI_BUILD_MODE",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "PLATFORM_DOMAIN",
    "KEY_PROVIDER",
    "LOCAL_MASTER_KEY",
    "LOCAL_MASTER_KEY_FILE",
    "LOCAL_KEYSTORE_DIR",
    "ECI_DATA_DIR",
    "STATIC_ROOT",
    "EXPORT_STORAGE_URL",
    "EXPORT_SIGNING_KEY_FILE",
    "EXPORT_SIGNING_CERTIFICATE_FILE",
    "OPERATOR_NAME",
    "OPERATOR_CONTACT_EMAIL",
    "SECURITY_CONTACT_EMAIL",
    "ALTCHA_COST",
    "EMAIL_URL",
    "EMAIL_FROM",
}


def _start(env: dict[str, str], probe: str = CHECK) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if key not in DECIDED}
    base.update({"DJANGO_SETTINGS_MODULE": "eci_platform.settings"}, **env)
    return subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPOSITORY_ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


FULL = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 50,
    "PLATFORM_DOMAIN": "eci.example.eu",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "KEY_PROVIDER": "aws-kms",
    "EXPORT_STORAGE_URL": "s3://eci-exports/platform",
    "EXPORT_SIGNING_KEY_FILE": "/run/secrets/export-signing.key",
    "EXPORT_SIGNING_CERTIFICATE_FILE": "/run/secrets/export-signing.crt",
    "OPERATOR_NAME": "Example Collection Services",
    "OPERATOR_CONTACT_EMAIL": "privacy@collection.example.eu",
    "EMAIL_URL": "smtp+tls://platform%40collection.example.eu:secret@smtp.example.eu:587",
    "EMAIL_FROM": "ECI platform <no-reply@collection.example.eu>",
    "SECURITY_CONTACT_EMAIL": "security@collection.example.eu",
}


@pytest.mark.parametrize(
    "missing",
    [
        "SECRET_KEY",
        "PLATFORM_DOMAIN",
        "DATABASE_URL",
        "REDIS_URL",
        "KEY_PROVIDER",
        "EXPORT_STORAGE_URL",
        "EXPORT_SIGNING_KEY_FILE",
        "EXPORT_SIGNING_CERTIFICATE_FILE",
        "OPERATOR_NAME",
        "OPERATOR_CONTACT_EMAIL",
        "EMAIL_URL",
        "EMAIL_FROM",
        "SECURITY_CONTACT_EMAIL",
    ],
)
def test_a_missing_required_variable_stops_start_up_and_is_named(missing: str) -> None:
    env = {key: value for key, value in FULL.items() if key != missing}
    result = _start(env)
    assert result.returncode != 0
    assert f"The environment variable {missing} is required" in result.stderr


def test_all_required_variables_set_starts() -> None:
    result = _start(FULL)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"LOCAL_KEYSTORE_DIR": "/nonexistent"}, "LOCAL_MASTER_KEY or LOCAL_MASTER_KEY_FILE"),
        ({"LOCAL_MASTER_KEY": "x"}, "LOCAL_KEYSTORE_DIR"),
    ],
)
def test_the_local_key_provider_needs_its_master_key_and_keystore(given: dict[str, str], named: str) -> None:
    result = _start({**FULL, "KEY_PROVIDER": "local", **given})
    assert result.returncode != 0
    assert named in result.stderr


def test_with_debug_off_cookies_are_secure_and_https_is_enforced() -> None:
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPOSITORY_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "eci_platform.settings", **FULL},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"] * 5


# Importing the settings only reads -----------------------------------------------------------------------

UNREACHABLE = {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:1/0"}
PROBE = (
    "import django; django.setup(); from django.conf import settings as s; import eci_platform; "
    "print(eci_platform.__file__); "
    "print(s.DEBUG, s.PLATFORM_DOMAIN, s.ALTCHA_COST, s.DATABASES['default']['NAME'], s.REDIS_URL)"
)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the source with no .env, data or static folder: the tests write the .env of their own
    there, never into the developer's checkout, and see every file a start-up would add."""
    copy = tmp_path / "checkout"
    shutil.copytree(
        REPOSITORY_ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".env",
            ".data",
            "staticfiles",
            ".venv",
            "node_modules",
            ".git",
            "tests",
            "bench",
            "__pycache__",
            "*_cache",
            ".hypothesis",
            "*.egg-info",
        ),
    )
    return copy


def _start_in(checkout: Path, env: dict[str, str], probe: str = CHECK) -> subprocess.CompletedProcess[str]:
    base = {key: value for key, value in os.environ.items() if key not in DECIDED}
    base.update(DJANGO_SETTINGS_MODULE="eci_platform.settings", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-c", probe],
        cwd=checkout,  # its eci_platform comes first on the path, and its .env is the one read
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _error(result: subprocess.CompletedProcess[str]) -> str:
    """The message a failed start-up ends with."""
    last_line = result.stderr.strip().splitlines()[-1]
    return last_line.removeprefix("django.core.exceptions.ImproperlyConfigured: ")


def _files(folder: Path) -> set[Path]:
    return {path.relative_to(folder) for path in folder.rglob("*")}


def test_importing_the_settings_creates_no_file_and_starts_no_process(checkout: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    before = _files(checkout)
    probe = (
        "import django, psutil; django.setup(); from django.conf import settings as s; import eci_platform; "
        "print(eci_platform.__file__); print(len(psutil.Process().children(recursive=True))); "
        "print(s.LOCAL_MASTER_KEY_FILE, s.EXPORT_SIGNING_KEY_FILE, s.LOCAL_KEYSTORE_DIR, s.STATIC_ROOT)"
    )
    result = _start_in(checkout, {"DEBUG": "1", "ECI_DATA_DIR": str(data), **UNREACHABLE}, probe)
    assert result.returncode == 0, result.stderr
    module, children, paths = result.stdout.splitlines()
    assert module.startswith(str(checkout))
    assert children == "0"
    # The development defaults are still named, under the data folder and the checkout ...
    master_key, signing_key, keystore, static_root = paths.split()
    assert {master_key, signing_key, keystore} == {
        str(data / "keys" / "master.key"),
        str(data / "keys" / "export-signing.key"),
        str(data / "keys" / "keystore"),
    }
    assert static_root == str(checkout / "staticfiles")
    # ... and none of them exists.
    assert list(data.iterdir()) == []
    assert _files(checkout) == before


@pytest.mark.parametrize(("missing", "service"), [("DATABASE_URL", "PostgreSQL"), ("REDIS_URL", "Redis")])
def test_with_debug_on_a_missing_address_is_named_and_make_dev_is_the_way(
    checkout: Path, tmp_path: Path, missing: str, service: str
) -> None:
    data = tmp_path / "data"
    given = {key: value for key, value in UNREACHABLE.items() if key != missing}
    result = _start_in(checkout, {"DEBUG": "1", "ECI_DATA_DIR": str(data), **given})
    assert result.returncode != 0
    message = _error(result)
    assert message.startswith(f"The environment variable {missing} is required.")
    assert f"`make dev` starts the embedded {service} and writes its address to .env" in message
    assert not data.exists()  # no embedded server was started instead


def test_a_dot_env_saying_debug_1_is_ignored_when_the_environment_sets_debug_off(checkout: Path) -> None:
    (checkout / ".env").write_text("DEBUG=1\nSECRET_KEY=from-the-dot-env-" + "x" * 40 + "\nALTCHA_COST=7\n")
    result = _start_in(checkout, {key: value for key, value in FULL.items() if key != "SECRET_KEY"})
    assert result.returncode != 0
    assert "The environment variable SECRET_KEY is required (DEBUG is off" in result.stderr

    result = _start_in(checkout, FULL, PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == [
        "False",
        "eci.example.eu",
        "50000",  # not the .env's 7
        "postgres",
        "redis://127.0.0.1:6379/0",
    ]


@pytest.mark.parametrize("debug_line", ["", "DEBUG=0\n", "DEBUG=false\n"])
@pytest.mark.parametrize("process_debug", [{}, {"DEBUG": "1"}])
def test_a_dot_env_that_does_not_say_debug_1_is_never_read(
    checkout: Path, debug_line: str, process_debug: dict[str, str]
) -> None:
    """A production-like .env (every variable, no DEBUG=1) next to the code changes nothing."""
    everything_but_debug = "".join(f"{key}={value}\n" for key, value in FULL.items() if key != "DEBUG")
    (checkout / ".env").write_text(debug_line + everything_but_debug)
    result = _start_in(checkout, process_debug)
    assert result.returncode != 0
    # The .env names Redis: the first variable read, the first found missing.
    message = _error(result)
    if process_debug:
        assert message.startswith("The environment variable REDIS_URL is required. In development `make dev`")
    else:  # DEBUG is off, and its message is the production one
        assert message == "The environment variable REDIS_URL is required."


@pytest.mark.parametrize("process_debug", [{"DEBUG": "1"}, {"DEBUG": "true"}])
def test_in_development_the_dot_env_fills_in_what_the_environment_does_not_set(
    checkout: Path, process_debug: dict[str, str]
) -> None:
    (checkout / ".env").write_text(
        "# written by make dev\n"
        "DEBUG=1\n"
        "DATABASE_URL=postgres://dev@127.0.0.1:1/from_dot_env\n"
        "REDIS_URL=redis://127.0.0.1:1/3\n"
        "PLATFORM_DOMAIN=dot-env.example\n"
        "ALTCHA_COST=7\n"
    )
    result = _start_in(checkout, {"PLATFORM_DOMAIN": "process.example", **process_debug}, PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == [
        "True",
        "process.example",  # the process environment wins
        "7",
        "from_dot_env",
        "redis://127.0.0.1:1/3",
    ]


def test_the_smtp_server_comes_from_email_url_and_its_password_is_no_setting_of_its_own() -> None:
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_USE_TLS, "
        "s.EMAIL_USE_SSL, s.DEFAULT_FROM_EMAIL == 'ECI platform <no-reply@collection.example.eu>', "
        "hasattr(s, 'EMAIL_URL'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPOSITORY_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "eci_platform.settings", **FULL},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.eu",
        "587",
        "platform@collection.example.eu",
        "True",
        "False",
        "True",
        "False",
    ]


def test_a_stray_dot_env_saying_debug_1_does_not_switch_a_process_without_debug_to_development(
    checkout: Path,
) -> None:
    """Production that leaves DEBUG unset, with a development .env lying next to the code."""
    (checkout / ".env").write_text("DEBUG=1\nALTCHA_COST=7\nSECRET_KEY=from-the-dot-env-" + "x" * 40 + "\n")
    production = {key: value for key, value in FULL.items() if key != "DEBUG"}
    result = _start_in(checkout, production, PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split() == [
        "False",  # not the .env's DEBUG=1
        "eci.example.eu",
        "50000",  # not the .env's 7
        "postgres",
        "redis://127.0.0.1:6379/0",
    ]
    without_secret = {key: value for key, value in production.items() if key != "SECRET_KEY"}
    result = _start_in(checkout, without_secret)
    assert result.returncode != 0
    assert "The environment variable SECRET_KEY is required (DEBUG is off" in result.stderr


HTTP_PROBE = """
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="eci.example.eu")
behind_tls = client.get("/operator/login/", HTTP_X_FORWARDED_PROTO="https")
print(behind_tls.status_code, behind_tls.get("Strict-Transport-Security"))
for name in ("sessionid", "csrftoken"):
    cookie = behind_tls.cookies.get(name)
    print(name, bool(cookie and cookie["secure"]))
plain = client.get("/operator/login/")
print(plain.status_code, plain.get("Location"), plain.get("Strict-Transport-Security"))
print(client.get("/livez").status_code)
"""


@pytest.mark.django_db
def test_with_debug_off_https_is_enforced_with_hsts_over_http() -> None:
    """A process started as production (DEBUG unset) answers the console behind the TLS proxy with HSTS
    covering the initiatives' subdomains, and redirects plain HTTP; the probes still answer on HTTP."""
    from django.db import connection

    database = connection.settings_dict
    address = f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}"
    production = {key: value for key, value in FULL.items() if key != "DEBUG"}
    production["DATABASE_URL"] = f"{address}/{database['NAME']}"
    result = _start(production | {"SECURE_HSTS_SECONDS": "63072000"}, probe=HTTP_PROBE)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "200 max-age=63072000; includeSubDomains; preload"
    assert lines[1:3] == ["sessionid False", "csrftoken True"]  # no session yet on a GET; CSRF secure
    assert lines[3] == "301 https://eci.example.eu/operator/login/ None"
    assert lines[4] == "200"
