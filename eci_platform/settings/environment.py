"""The one environment reader. With DEBUG off every required variable must be set, and a missing one
stops start-up with a message that names it; development defaults apply only when DEBUG is on.

Importing the settings only reads: it starts no service and creates no file or folder. The embedded
PostgreSQL and Redis, the development keys and folders are made by the `dev` runner and the test setup
(eci_platform/embedded.py, eci_platform/development.py)."""

from __future__ import annotations

import environ
from django.core.exceptions import ImproperlyConfigured

from eci_platform.env_file import env_file_apply

env = environ.Env()

# `make dev` writes a .env so that commands in a second terminal reach its services; it counts only in
# development: DEBUG=1 set in the process environment itself (never by the file alone) and DEBUG=1 in the
# file, under the process's own variables.
env_file_apply()

DEBUG: bool = env.bool("DEBUG", default=False)

# The image build's mode (eci_platform/build_assets.py): production settings with a placeholder for every
# secret and address, so that the static files are collected with no secret in the build. A process in
# this mode refuses to serve, to run a worker or a job (eci_platform/apps.py).
BUILD_MODE: bool = env.bool("ECI_BUILD_MODE", default=False)
BUILD_PLACEHOLDER = "build-mode-placeholder-never-used"
if BUILD_MODE and DEBUG:
    raise ImproperlyConfigured("ECI_BUILD_MODE is the image build's mode, with DEBUG off: unset DEBUG.")


def required(name: str, dev_default: str | None = None, build_placeholder: str = BUILD_PLACEHOLDER) -> str:
    """A variable that production must set; `dev_default` is used only when DEBUG is on, the placeholder
    only in the image build's mode."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG and dev_default is not None:
        return dev_default
    if BUILD_MODE:
        return build_placeholder
    raise ImproperlyConfigured(
        f"The environment variable {name} is required"
        + ("" if DEBUG else " (DEBUG is off, so no development default applies)")
        + "."
    )


def optional(name: str, default: str = "") -> str:
    return env.str(name, default=default)


def required_service_url(name: str, service: str) -> str:
    """The address of PostgreSQL or Redis. Development has no default here: `make dev` (the `dev` runner)
    and the test setup start the embedded server and set the variable before the settings are read."""
    value = env.str(name, default="")
    if value:
        return value
    if BUILD_MODE:  # never connected to: a process in build mode does not start its services
        return f"{'postgres' if service == 'PostgreSQL' else 'redis'}://{BUILD_PLACEHOLDER}.invalid:1/0"
    if DEBUG:
        raise ImproperlyConfigured(
            f"The environment variable {name} is required. In development `make dev` starts the embedded "
            f"{service} and writes its address to .env (for manage.py in a second terminal); or set "
            f"{name} to a {service} of your own."
        )
    raise ImproperlyConfigured(f"The environment variable {name} is required.")
