"""Helpers of the verification tests: an export as an authority receives it (a real export of the platform,
the file and its manifest copied into a folder of their own), and eci-verify-export run as an authority
runs it, in a process with nothing of the platform in its environment. The verify fixture (conftest.py)
runs the management command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eci_crypto.certificates import private_key_load
from eci_crypto.cms.reader import export_file_read
from exports.models import ExportJobState
from exports.services import export_request, export_run, platform_signing_identity
from exports.storage import export_storage
from tests.exports.conftest import AuthorityKeys, Factory

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Delivered:
    """An export as an authority receives it: the file and its manifest in a folder of their own."""

    file: Path
    manifest_path: Path
    manifest: dict[str, Any]
    xml: bytes  # what the platform wrote, read back with the library (the reference)
    registration_number: str

    @property
    def folder(self) -> Path:
        return self.file.parent


def deliver(
    exporting_factory: Factory, keys: AuthorityKeys, folder: Path, country: str = "DE", count: int = 3
) -> Delivered:
    """A real export of `count` statements, copied from the storage as `<CC>.xml.p7m` and
    `<CC>.manifest.json` into `folder`."""
    exporting = exporting_factory({country: count})
    with exporting.initiative:
        (job,) = export_request(country=country, actor="organiser@example.org")
        export_run(job.pk)
        job.refresh_from_db()
    assert job.state == ExportJobState.DONE, job.error
    storage = export_storage()
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{country}.xml.p7m"
    file.write_bytes(storage.read(job.object_key))
    manifest_path = folder / f"{country}.manifest.json"
    manifest_path.write_bytes(storage.read(job.manifest_key))
    xml = io.BytesIO()
    export_file_read(
        io.BytesIO(file.read_bytes()),
        xml,
        recipient_key=private_key_load(keys.private_key_pem),
        expected_signer=platform_signing_identity().certificate,
    )
    return Delivered(
        file=file,
        manifest_path=manifest_path,
        manifest=json.loads(manifest_path.read_bytes()),
        xml=xml.getvalue(),
        registration_number=exporting.initiative.registration_number,
    )


def key_arguments(keys: AuthorityKeys) -> list[str | Path]:
    return ["--authority-key", keys.key_path]


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".partial"))


def clean_environment() -> dict[str, str]:
    """An authority's shell: a PATH, and nothing of the platform (no DJANGO_SETTINGS_MODULE, no
    DATABASE_URL, no REDIS_URL, no DEBUG, no data folder)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def run_script(*arguments: str | Path, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess[str]:
    environment = clean_environment()
    if cwd != REPOSITORY:  # the checkout's code, wherever the authority runs it from
        environment["PYTHONPATH"] = str(REPOSITORY)
    return subprocess.run(
        [sys.executable, "-m", "exports.verification.cli", *[str(argument) for argument in arguments]],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
