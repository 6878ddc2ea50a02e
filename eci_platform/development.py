"""Development only (`make dev`, the tests, DEBUG): the files and folders that the settings name in
development and that the `dev` runner and the test setup create (importing the settings creates none):
the data folder, the local master key, the platform's export-signing identity, and demonstration
authority certificates so that exports work out of the box. Real deployments mount their signing key as
a secret and register the authorities' own certificates."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from eci_crypto.certificates import certificate_fingerprint, certificate_load, self_signed_certificate_create
from eci_platform.embedded import (
    data_dir,
    data_dir_create,
    development_key_path,
    ensure_local_master_key,
    file_lock,
)
from regulation.member_states import member_states
from tenants.authorities import authority_confirm, authority_register
from tenants.models import CompetentAuthority


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


DEMO_ACTOR = "make-dev"
# The demonstration certificates are made here, so the second pair of eyes is a name only: the four-eyes
# check (tenants/authorities.py) refuses the same actor for both steps.
DEMO_CONFIRMING_ACTOR = "make-dev-confirmation"


def _write_secret(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _pair_ensure(key_path: Path, certificate_path: Path, common_name: str) -> None:
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with file_lock(key_path.parent / ".generate.lock"):
        if key_path.exists() and certificate_path.exists():
            return
        private_key_pem, certificate_pem = self_signed_certificate_create(common_name)
        _write_secret(key_path, private_key_pem)
        certificate_path.write_bytes(certificate_pem)


def signing_identity_files_ensure() -> None:
    """The development export-signing key and certificate at the paths the settings name."""
    _pair_ensure(
        Path(settings.EXPORT_SIGNING_KEY_FILE),
        Path(settings.EXPORT_SIGNING_CERTIFICATE_FILE),
        "ECI platform export signing (development)",
    )


def demo_authorities_folder() -> Path:
    return data_dir() / "authorities"


def demo_authorities_ensure() -> list[str]:
    """A demonstration authority per Member State: its private key stays in the development data folder
    (to decrypt exports as the authority would), its certificate is registered and confirmed. Returns the
    countries registered now."""
    folder = demo_authorities_folder()
    registered = {authority.country: authority for authority in CompetentAuthority.objects.all()}
    done = []
    for code in member_states():
        key_path, certificate_path = folder / f"{code}.key", folder / f"{code}.crt"
        _pair_ensure(key_path, certificate_path, f"Demonstration competent authority {code}")
        certificate_pem = certificate_path.read_bytes()
        fingerprint = certificate_fingerprint(certificate_load(certificate_pem))
        current = registered.get(code)
        if current and current.fingerprint_sha256 == fingerprint and current.confirmed_at:
            continue
        authority_register(
            country=code,
            certificate_pem=certificate_pem,
            name=f"Demonstration authority {code}",
            actor=DEMO_ACTOR,
        )
        authority_confirm(country=code, fingerprint=fingerprint, actor=DEMO_CONFIRMING_ACTOR)
        done.append(code)
    return done
