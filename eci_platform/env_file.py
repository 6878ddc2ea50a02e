"""`.env` in the checkout: the development settings that commands in a second terminal share.

The `dev` runner (`make dev`) writes it: DEBUG=1, the data folder and the addresses of the PostgreSQL and
Redis it uses. The settings apply it only in development: when the process environment itself sets DEBUG
on and the file says DEBUG=1; variables of the process environment win over the file's. A process whose
environment does not say DEBUG=1 (production, where DEBUG may simply be unset) never reads one, whatever
lies in its working directory: a stray .env cannot switch a server into development mode.

Django-free: the dev runner and the test setup use it before the settings exist.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import environ

# Next to manage.py, in the checkout (this file is eci_platform/env_file.py).
ENV_FILE = Path(__file__).resolve().parent.parent / ".env"

_HEADER = """\
# Development settings (DEBUG=1) for manage.py in this checkout; read only when the process environment
# sets DEBUG=1 itself (`DEBUG=1 .venv/bin/python manage.py ...`), and the process environment wins over
# every line. `make dev` rewrites DEBUG, ECI_DATA_DIR, DATABASE_URL, REDIS_URL and EMAIL_URL each time it
# starts; lines of your own are kept.
"""
_ASSIGNMENT = re.compile(r"\A\s*(?:export\s+)?([A-Za-z_0-9]+)\s*=")


def _flag(value: str | None) -> bool | None:
    """A DEBUG value as the settings read it; None when it is not set."""
    return None if value is None else bool(environ.Env.parse_value(value, bool))


def env_file_read(path: Path = ENV_FILE) -> dict[str, str]:
    """The variables a .env file sets, parsed as django-environ parses them; empty when there is none."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values

    class _Reader(environ.Env):
        ENVIRON = values  # its reader, writing into this dict instead of os.environ

    _Reader.read_env(path)
    return values


def debug_on(path: Path = ENV_FILE) -> bool:
    """Whether the settings will run with DEBUG on: only when the process environment says so. A .env
    never decides it (`path` is accepted for the callers' symmetry with env_file_apply)."""
    return bool(_flag(os.environ.get("DEBUG")))


def env_file_apply(path: Path = ENV_FILE) -> bool:
    """Add a development .env's variables to the process environment, under those already set. Only
    when the process environment sets DEBUG on explicitly and the file says DEBUG=1 too; returns
    whether it was applied."""
    if not debug_on(path):
        return False
    values = env_file_read(path)
    if not _flag(values.get("DEBUG")):
        return False
    for name, value in values.items():
        os.environ.setdefault(name, value)
    return True


def env_file_update(values: dict[str, str], path: Path = ENV_FILE) -> None:
    """Set `values` in the .env, each in place of its earlier line (or at the end), and keep every other
    line. The file is private (0600): it may hold a database password."""
    if any("\n" in value or "\r" in value for value in values.values()):
        raise ValueError("a .env value cannot span lines")
    lines = path.read_text().splitlines() if path.is_file() else _HEADER.splitlines()
    written: set[str] = set()
    updated = []
    for line in lines:
        match = _ASSIGNMENT.match(line)
        name = match.group(1) if match else None
        if name not in values:
            updated.append(line)
        elif name not in written:
            updated.append(f"{name}={values[name]}")
            written.add(name)
    updated += [f"{name}={value}" for name, value in values.items() if name not in written]
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".env.")  # created 0600
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(updated) + "\n")
    os.replace(temporary, path)
