"""Exports for the competent authorities: where the files go, the platform's signing identity, the jobs."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from eci_platform.embedded import data_dir, development_key_path
from eci_platform.settings.environment import BUILD_MODE, DEBUG, env, optional

# A folder (path or file:///...) or s3://bucket/prefix; EXPORT_S3_ENDPOINT_URL for any S3-compatible
# service. Credentials come the usual boto3 way (environment, role).
EXPORT_STORAGE_URL = optional("EXPORT_STORAGE_URL")
EXPORT_S3_ENDPOINT_URL = optional("EXPORT_S3_ENDPOINT_URL")
EXPORT_S3_REGION = optional("EXPORT_S3_REGION")
EXPORT_S3_PART_BYTES = env.int("EXPORT_S3_PART_BYTES", default=8 * 1024 * 1024)

# The platform's export-signing key and certificate (PEM files, kept as secrets). Development names a
# pair in its data folder, which the `dev` runner and the test setup generate once
# (eci_platform/development.py).
EXPORT_SIGNING_KEY_FILE = optional("EXPORT_SIGNING_KEY_FILE")
EXPORT_SIGNING_CERTIFICATE_FILE = optional("EXPORT_SIGNING_CERTIFICATE_FILE")

if DEBUG:
    EXPORT_STORAGE_URL = EXPORT_STORAGE_URL or str(data_dir() / "exports")
    if not (EXPORT_SIGNING_KEY_FILE or EXPORT_SIGNING_CERTIFICATE_FILE):
        EXPORT_SIGNING_KEY_FILE = str(development_key_path("export-signing.key"))
        EXPORT_SIGNING_CERTIFICATE_FILE = str(development_key_path("export-signing.crt"))
elif not BUILD_MODE:
    for _name, _value in (
        ("EXPORT_STORAGE_URL", EXPORT_STORAGE_URL),
        ("EXPORT_SIGNING_KEY_FILE", EXPORT_SIGNING_KEY_FILE),
        ("EXPORT_SIGNING_CERTIFICATE_FILE", EXPORT_SIGNING_CERTIFICATE_FILE),
    ):
        if not _value:
            raise ImproperlyConfigured(f"The environment variable {_name} is required.")

# A worker holds a job for this long and renews the lease as it goes; the reconciler re-sends a job whose
# lease expired (a killed worker). Progress is written every EXPORT_PROGRESS_RECORDS records.
EXPORT_LEASE_SECONDS = env.float("EXPORT_LEASE_SECONDS", default=120.0)
EXPORT_PROGRESS_RECORDS = env.int("EXPORT_PROGRESS_RECORDS", default=20000)
EXPORT_MAX_ATTEMPTS = env.int("EXPORT_MAX_ATTEMPTS", default=5)
EXPORT_FETCH_RECORDS = env.int("EXPORT_FETCH_RECORDS", default=5000)
# How long an organiser's download link works.
EXPORT_DOWNLOAD_LINK_SECONDS = env.int("EXPORT_DOWNLOAD_LINK_SECONDS", default=300)
