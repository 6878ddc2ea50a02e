"""Development only: the files and folders that the settings name in development and that the `dev`
runner and the test setup create (importing the settings creates none)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from eci_platform.embedded import data_dir_create, development_key_path, ensure_local_master_key
from exports.development import signing_identity_files_ensure


def development_files_ensure() -> None:
    """The data folder, the empty STATIC_ROOT that WhiteNoise expects, and the development keys where the
    settings name the development defaults: the local key provider's master key and the export-signing
    key and certificate, each generated once. A file named in the environment is the operator's own and
    never generated here. Nothing with DEBUG off."""
    if not settings.DEBUG:
        return
    data_dir_create()
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    if (
        settings.KEY_PROVIDER == "local"
        and not settings.LOCAL_MASTER_KEY
        and _development_default(settings.LOCAL_MASTER_KEY_FILE, "master.key")
    ):
        ensure_local_master_key()
    if _development_default(settings.EXPORT_SIGNING_KEY_FILE, "export-signing.key") and _development_default(
        settings.EXPORT_SIGNING_CERTIFICATE_FILE, "export-signing.crt"
    ):
        signing_identity_files_ensure()


def _development_default(configured: str, name: str) -> bool:
    return configured == str(development_key_path(name))
