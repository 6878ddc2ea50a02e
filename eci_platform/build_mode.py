"""The image build's mode (ECI_BUILD_MODE=1, eci_platform/settings/environment.py): production settings
with placeholders for every secret and address, for one thing only, `python -m eci_platform.build_assets`.
Any other process that starts Django in this mode (gunicorn, a Celery worker or beat, any management
command) stops at start-up: a placeholder must never sign, encrypt, connect or serve."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

_building_assets = False


def assets_build_start() -> None:
    """Called by eci_platform.build_assets before it starts Django: the one user of the mode."""
    global _building_assets
    _building_assets = True


def refuse_unless_building_assets() -> None:
    if not _building_assets:
        raise ImproperlyConfigured(
            "ECI_BUILD_MODE is set: this process refuses to serve, to run a worker or a job. The mode is for "
            "`python -m eci_platform.build_assets` in the image build only; unset ECI_BUILD_MODE and set "
            "the production variables (docs/configuration.md)."
        )
