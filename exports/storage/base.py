"""What every export storage offers, and the object keys it accepts (built from schema, country and
job id, checked before any back end sees them)."""

from __future__ import annotations

import contextlib
import re
import uuid
from abc import ABC, abstractmethod
from typing import Protocol

# S3 wants every part but the last to be at least 5 MiB and allows 10,000 parts.
S3_MINIMUM_PART_BYTES = 5 * 1024 * 1024
S3_DEFAULT_PART_BYTES = 8 * 1024 * 1024
S3_MAXIMUM_PARTS = 10_000
# SigV4 presigned URLs live at most seven days.
PRESIGNED_MAXIMUM_SECONDS = 7 * 24 * 3600

KEY_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
COUNTRY_CODE = re.compile(r"[A-Z]{2}")
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
SUFFIX = re.compile(r"(\.[a-z0-9]+)+")
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
PARTIAL_SUFFIX = ".partial"


class ExportStorageError(Exception):
    pass


class InvalidObjectKeyError(ExportStorageError, ValueError):
    pass


class ExportObjectNotFoundError(ExportStorageError, FileNotFoundError):
    pass


class ObjectWriter(Protocol):
    def write(self, data: bytes, /) -> int: ...


class ObjectReader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def export_object_key(schema: str, country: str, job_id: int | str | uuid.UUID, suffix: str) -> str:
    """`exports/<schema>/<CC>/<job id><suffix>`, e.g. exports/i_3f2a/BE/17.p7m. Every part is checked
    against a narrow character set, so no part can climb out of its folder."""
    if not SCHEMA_NAME.fullmatch(schema):
        raise InvalidObjectKeyError(f"not a schema name: {schema!r}")
    if not COUNTRY_CODE.fullmatch(country):
        raise InvalidObjectKeyError(f"not an upper-case country code: {country!r}")
    if isinstance(job_id, bool) or (isinstance(job_id, int) and job_id < 0):
        raise InvalidObjectKeyError(f"not a job id: {job_id!r}")
    job = str(job_id)
    if not JOB_ID.fullmatch(job):
        raise InvalidObjectKeyError(f"not a job id: {job_id!r}")
    if not SUFFIX.fullmatch(suffix) or suffix.endswith(PARTIAL_SUFFIX):
        raise InvalidObjectKeyError(f"not a file suffix: {suffix!r}")
    return f"exports/{schema}/{country}/{job}{suffix}"


def export_objects_prefix(schema: str) -> str:
    """The folder of every export object of one initiative: `exports/<schema>/`."""
    if not SCHEMA_NAME.fullmatch(schema):
        raise InvalidObjectKeyError(f"not a schema name: {schema!r}")
    return f"exports/{schema}/"


def check_object_prefix(prefix: str) -> str:
    if not prefix.endswith("/"):
        raise InvalidObjectKeyError(f"not a folder prefix: {prefix!r}")
    check_object_key(prefix[:-1])
    return prefix


def check_object_key(key: str) -> str:
    """Relative, slash-separated segments of safe characters; no `.`/`..` segment, no partial file."""
    segments = key.split("/")
    if (
        len(key) > 512
        or not all(KEY_SEGMENT.fullmatch(segment) for segment in segments)
        or key.endswith(PARTIAL_SUFFIX)
    ):
        raise InvalidObjectKeyError(f"not a valid object key: {key!r}")
    return key


class ExportStorage(ABC):
    """An object store for export files, addressed by keys such as export_object_key() builds."""

    location: str  # for logs and manifests; holds no credentials

    @abstractmethod
    def open_writer(self, key: str) -> contextlib.AbstractContextManager[ObjectWriter]:
        """A sink for a new version of `key`; the object appears (or is replaced) only when the block
        ends without an error, and nothing is left behind when it raises."""

    @abstractmethod
    def open_reader(self, key: str) -> contextlib.AbstractContextManager[ObjectReader]: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Removes the object; deleting one that does not exist is not an error."""

    @abstractmethod
    def download_url(self, key: str, expires_seconds: int, *, filename: str | None = None) -> str | None:
        """A short-lived link to the object (saved as `filename`, by default the key's last part), or None
        where the web application serves it itself."""

    @abstractmethod
    def leftovers_discard(self, key: str) -> int:
        """Removes what writers of `key` that died mid-way left behind (a partial file, an unfinished
        multipart upload); returns how many. Call it only when no other writer of the key can be alive."""

    @abstractmethod
    def delete_everything_under(self, prefix: str) -> int:
        """Removes every object whose key starts with `prefix` (a folder, ending in "/"): every stored
        version and delete marker where the store keeps versions, partial files and unfinished uploads
        too. Returns how many were removed; running it again finds nothing."""

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.open_writer(key) as sink:
            sink.write(data)

    def read(self, key: str) -> bytes:
        with self.open_reader(key) as source:
            return source.read()
