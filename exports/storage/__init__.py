"""Where export files and their manifests are kept: a local folder (the default) or an S3 bucket.

The back end is chosen by one URL setting, EXPORT_STORAGE_URL: a folder path or `file:///...`, or
`s3://bucket/prefix` (EXPORT_S3_ENDPOINT_URL for any S3-compatible service; region and credentials
come the usual boto3 way, EXPORT_S3_REGION overrides the region). Both back ends publish an object only
when its writer closes without an error, so a reader never sees half a file, and a re-run that writes
the same key replaces the object.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from exports.storage.base import S3_DEFAULT_PART_BYTES, ExportStorage
from exports.storage.local import LocalExportStorage
from exports.storage.s3 import s3_storage_from_url


def export_storage() -> ExportStorage:
    """The storage the settings name. Instances are shared: an S3 client is costly to build."""
    url = settings.EXPORT_STORAGE_URL
    return export_storage_for(
        url,
        s3_endpoint_url=settings.EXPORT_S3_ENDPOINT_URL or None,
        s3_region=settings.EXPORT_S3_REGION or None,
        s3_part_bytes=settings.EXPORT_S3_PART_BYTES,
    )


@lru_cache(maxsize=8)
def export_storage_for(
    url: str,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    s3_part_bytes: int = S3_DEFAULT_PART_BYTES,
) -> ExportStorage:
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return s3_storage_from_url(parts.netloc, parts.path, s3_endpoint_url, s3_region, s3_part_bytes)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ImproperlyConfigured(f"EXPORT_STORAGE_URL: a file URL names an absolute path: {url!r}")
        return LocalExportStorage(Path(parts.path))
    if parts.scheme:
        raise ImproperlyConfigured(f"EXPORT_STORAGE_URL: unknown storage scheme {parts.scheme!r}")
    folder = Path(url).expanduser()
    return LocalExportStorage(folder if folder.is_absolute() else Path(settings.BASE_DIR) / folder)
