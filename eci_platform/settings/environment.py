"""The one environment reader. With DEBUG off every required variable must be set, and a missing one
stops start-up with a message that names it; development defaults apply only when DEBUG is on."""

from __future__ import annotations

import environ
from django.core.exceptions import ImproperlyConfigured

from eci_platform.embedded import REPOSITORY_ROOT

env = environ.Env()

# `make dev` writes a .env with DEBUG=1 so that commands in a second terminal see the same settings.
_dot_env = REPOSITORY_ROOT / ".env"
if _dot_env.is_file():
    environ.Env.read_env(str(_dot_env), overwrite=False)

DEBUG: bool = env.bool("DEBUG", default=False)


def required(name: str, dev_default: str | None = None) -> str:
    """A variable that production must set; `dev_default` is used only when DEBUG is on."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG and dev_default is not None:
        return dev_default
    raise ImproperlyConfigured(
        f"The environment variable {name} is required"
        + ("" if DEBUG else " (DEBUG is off, so no development default applies)")
        + "."
    )


def optional(name: str, default: str = "") -> str:
    return env.str(name, default=default)
