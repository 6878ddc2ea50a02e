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
        if key not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PLATFORM_DOMAIN"}
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
}


@pytest.mark.parametrize("missing", ["SECRET_KEY", "PLATFORM_DOMAIN", "DATABASE_URL", "REDIS_URL"])
def test_a_missing_required_variable_stops_start_up_and_is_named(missing: str) -> None:
    env = {key: value for key, value in FULL.items() if key != missing}
    result = _start(env)
    assert result.returncode != 0
    assert f"The environment variable {missing} is required" in result.stderr


def test_all_required_variables_set_starts() -> None:
    result = _start(FULL)
    assert result.returncode == 0, result.stderr
