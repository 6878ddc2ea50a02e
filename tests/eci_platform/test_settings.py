"""Start-up fails fast, naming the missing variable, when DEBUG is off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from eci_platform.embedded import REPOSITORY_ROOT

CHECK = "import django; django.setup()"


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DEBUG",
            "SECRET_KEY",
            "DATABASE_URL",
            "REDIS_URL",
            "PLATFORM_DOMAIN",
            "KEY_PROVIDER",
            "LOCAL_MASTER_KEY",
            "LOCAL_MASTER_KEY_FILE",
            "LOCAL_KEYSTORE_DIR",
        }
    }
    base.update({"DJANGO_SETTINGS_MODULE": "eci_platform.settings"}, **env)
    return subprocess.run(
        [sys.executable, "-c", CHECK],
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
