"""The image build's mode (eci_platform/build_mode.py): the image compiles its translations and collects its
static files with no secret and no service, and no process started in that mode serves, runs a worker or
a job, even with every production variable set."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from eci_platform.embedded import REPOSITORY_ROOT
from tests.eci_platform.test_settings import DECIDED, FULL
from tests.processes import free_port

REFUSAL = "ECI_BUILD_MODE is set: this process refuses to serve, to run a worker or a job."


def _bare_environment(**extra: str) -> dict[str, str]:
    """What the image build has: a path, and nothing of the platform's (no secret, no address)."""
    return {"PATH": os.environ["PATH"], **extra}


def _build_mode_environment(**extra: str) -> dict[str, str]:
    kept = {key: value for key, value in os.environ.items() if key not in DECIDED}
    return {**kept, "DJANGO_SETTINGS_MODULE": "eci_platform.settings", "ECI_BUILD_MODE": "1", **extra}


def _run(
    command: list[str], env: dict[str, str], cwd: Path = REPOSITORY_ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_assets_are_built_with_no_secret_and_no_service(tmp_path: Path) -> None:
    # A copy of the source, so the translations compile there and not into this checkout.
    source = tmp_path / "source"
    for package in (
        "eci_platform",
        "eci_crypto",
        "tenants",
        "collection",
        "exports",
        "workers",
        "regulation",
    ):
        shutil.copytree(REPOSITORY_ROOT / package, source / package, ignore=shutil.ignore_patterns("*.mo"))
    static, home = tmp_path / "static", tmp_path / "home"
    home.mkdir()
    result = _run(
        [sys.executable, "-m", "eci_platform.build_assets"],
        _bare_environment(
            STATIC_ROOT=str(static), PYTHONPATH=str(source), PYTHONDONTWRITEBYTECODE="1", HOME=str(home)
        ),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("compiled 23 catalogues")
    # The platform's own files, the admin's and the ALTCHA widget's, each with WhiteNoise's compressed copy.
    assert (static / "eci").is_dir()
    assert list((static / "altcha").rglob("*.js"))
    assert (static / "admin" / "css" / "base.css").is_file()
    assert (static / "admin" / "css" / "base.css.gz").is_file()
    compiled = sorted(
        path.parent.parent.name for path in (source / "eci_platform" / "locale").rglob("django.mo")
    )
    assert len(compiled) == 23 and "de" in compiled and "ga" in compiled
    # Nothing written outside the static folder and the catalogues: no data folder, no keys, no .env.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["home", "source", "static"]
    assert list(home.iterdir()) == []
    assert not (source / ".env").exists() and not (source / ".data").exists()


def test_gunicorn_refuses_to_serve_in_build_mode() -> None:
    port = free_port()
    result = _run(
        [sys.executable, "-m", "gunicorn", "eci_platform.wsgi", "--bind", f"127.0.0.1:{port}"],
        _build_mode_environment(),
    )
    assert result.returncode != 0
    assert REFUSAL in result.stderr
    assert "Worker failed to boot" in result.stderr
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_even_with_every_production_variable_set_build_mode_refuses_to_serve() -> None:
    result = _run(
        [sys.executable, "-c", "import eci_platform.wsgi"],
        _build_mode_environment(**{key: value for key, value in FULL.items() if key != "DEBUG"}),
    )
    assert result.returncode != 0
    assert REFUSAL in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "celery", "-A", "eci_platform", "worker", "--pool", "solo"],
        ["-m", "celery", "-A", "eci_platform", "beat", "--schedule", "/nonexistent/beat-schedule"],
        ["manage.py", "migrate_platform"],
        ["manage.py", "runserver", "--noreload", "127.0.0.1:1"],
        ["manage.py", "check"],
    ],
    ids=["worker", "beat", "migrate_platform", "runserver", "check"],
)
def test_workers_beat_and_jobs_refuse_in_build_mode(command: list[str]) -> None:
    result = _run([sys.executable, *command], _build_mode_environment())
    assert result.returncode != 0
    assert REFUSAL in result.stderr


def test_build_mode_with_debug_on_is_refused() -> None:
    result = _run([sys.executable, "-c", "import django; django.setup()"], _build_mode_environment(DEBUG="1"))
    assert result.returncode != 0
    assert "ECI_BUILD_MODE is the image build's mode, with DEBUG off" in result.stderr
