"""Where export files and their manifests are kept: a local folder (the default) or an S3 bucket.

The back end is chosen by one URL setting, EXPORT_STORAGE_URL: a folder path or `file:///...`, or
`s3://bucket/prefix` (EXPORT_S3_ENDPOINT_URL for any S3-compatible service; region and credentials
come the usual boto3 way, EXPORT_S3_REGION overrides the region). Both back ends publish an object only
when its writer closes without an error, so a reader never sees half a file, and a re-run that writes
the same key replaces the object.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.open_writer(key) as sink:
            sink.write(data)

    def read(self, key: str) -> bytes:
        with self.open_reader(key) as source:
            return source.read()


class LocalExportStorage(ExportStorage):
    """Files under one root folder. A writer fills a private partial file next to the target and renames
    it into place: the rename is atomic, and each writer has its own partial file, so a second writer of
    the same key (a job whose lease expired while it still ran) cannot mix its bytes into the first's."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.location = self.root.as_uri()

    def path(self, key: str) -> Path:
        path = (self.root / check_object_key(key)).resolve()
        # resolve() follows symbolic links: a link inside the root that points outside is refused too.
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidObjectKeyError(f"object key outside the storage root: {key!r}")
        return path

    @contextlib.contextmanager
    def open_writer(self, key: str) -> Iterator[ObjectWriter]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, partial_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX
        )
        partial = Path(partial_name)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        _fsync_folder(target.parent)

    @contextlib.contextmanager
    def open_reader(self, key: str) -> Iterator[ObjectReader]:
        try:
            handle = self.path(key).open("rb")
        except FileNotFoundError:
            raise ExportObjectNotFoundError(key) from None
        with handle:
            yield handle

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise ExportObjectNotFoundError(key) from None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def download_url(self, key: str, expires_seconds: int, *, filename: str | None = None) -> str | None:
        self.path(key)  # the key is still checked: a caller must not learn to rely on bad keys
        return None

    def leftovers_discard(self, key: str) -> int:
        target = self.path(key)
        if not target.parent.is_dir():
            return 0
        leftovers = list(target.parent.glob(f".{glob.escape(target.name)}.*{PARTIAL_SUFFIX}"))
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        return len(leftovers)


def _fsync_folder(folder: Path) -> None:
    """Makes the rename itself durable, not only the file's bytes."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class S3ExportStorage(ExportStorage):
    """Objects in one bucket under a prefix. Writers stream a multipart upload in parts of `part_bytes`
    (memory stays near one part), completed on success and aborted on error; small objects go up in one
    PUT. Either way S3 shows the object only once it is whole."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", part_bytes: int = S3_DEFAULT_PART_BYTES):
        if part_bytes < S3_MINIMUM_PART_BYTES:
            raise ImproperlyConfigured(f"S3 parts must be at least {S3_MINIMUM_PART_BYTES} bytes.")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_bytes = part_bytes
        self.location = f"s3://{bucket}/{prefix}"

    def object_name(self, key: str) -> str:
        return self.prefix + check_object_key(key)

    @contextlib.contextmanager
    def open_writer(self, key: str) -> Iterator[ObjectWriter]:
        upload = _S3Upload(self.client, self.bucket, self.object_name(key), self.part_bytes)
        try:
            yield upload
            upload.complete()
        except BaseException:
            upload.abort()
            raise

    @contextlib.contextmanager
    def open_reader(self, key: str) -> Iterator[ObjectReader]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_name(key))
        except self.client.exceptions.NoSuchKey:
            raise ExportObjectNotFoundError(key) from None
        body = response["Body"]
        try:
            yield body
        finally:
            body.close()

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.object_name(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise ExportObjectNotFoundError(key)
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_name(key))

    def leftovers_discard(self, key: str) -> int:
        name = self.object_name(key)
        listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=name)
        uploads = [upload for upload in listing.get("Uploads", []) if upload["Key"] == name]
        for upload in uploads:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload["UploadId"])
        return len(uploads)

    def download_url(self, key: str, expires_seconds: int, *, filename: str | None = None) -> str | None:
        if not 0 < expires_seconds <= PRESIGNED_MAXIMUM_SECONDS:
            raise ValueError(f"a download link lives 1 to {PRESIGNED_MAXIMUM_SECONDS} seconds")
        name = self.object_name(key)
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": name,
                "ResponseContentDisposition": f'attachment; filename="{filename or name.rsplit("/", 1)[-1]}"',
            },
            ExpiresIn=expires_seconds,
        )
        return url


class _S3Upload:
    """The sink of one S3 writer. The multipart upload starts with the first full part, so an object
    smaller than a part costs one PUT and leaves no upload to abort."""

    def __init__(self, client: Any, bucket: str, name: str, part_bytes: int) -> None:
        self._client = client
        self._bucket = bucket
        self._name = name
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._written = 0
        self._finished = False

    def write(self, data: bytes, /) -> int:
        if self._finished:
            raise ValueError("write to a finished upload")
        self._buffer += data
        self._written += len(data)
        while len(self._buffer) >= self._part_bytes:
            part = bytes(self._buffer[: self._part_bytes])
            del self._buffer[: self._part_bytes]
            self._upload_part(part)
        return len(data)

    def tell(self) -> int:
        return self._written

    @property
    def pending_bytes(self) -> int:
        """What waits in memory for the next part: always less than one part."""
        return len(self._buffer)

    def flush(self) -> None:
        """Parts go up as they fill; there is nothing to flush early (S3 parts have a minimum size)."""

    def _upload_part(self, body: bytes) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._name)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        if number > S3_MAXIMUM_PARTS:
            raise ExportStorageError("the object needs more than 10,000 parts: raise the part size")
        response = self._client.upload_part(
            Bucket=self._bucket, Key=self._name, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        # Checksums the client added to the part are repeated on completion, as S3 then requires.
        checksums = {name: value for name, value in response.items() if name.startswith("Checksum")}
        self._parts.append({"PartNumber": number, "ETag": response["ETag"], **checksums})

    def complete(self) -> None:
        if self._upload_id is None:
            self._client.put_object(Bucket=self._bucket, Key=self._name, Body=bytes(self._buffer))
        else:
            if self._buffer:
                self._upload_part(bytes(self._buffer))
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._name,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer = bytearray()
        self._finished = True

    def abort(self) -> None:
        self._buffer = bytearray()
        self._finished = True
        if self._upload_id is not None:
            # The original error matters more than a failed clean-up; a bucket lifecycle rule for
            # incomplete multipart uploads catches what is left.
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._name, UploadId=self._upload_id
                )


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
        return _s3_storage(parts.netloc, parts.path, s3_endpoint_url, s3_region, s3_part_bytes)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ImproperlyConfigured(f"EXPORT_STORAGE_URL: a file URL names an absolute path: {url!r}")
        return LocalExportStorage(Path(parts.path))
    if parts.scheme:
        raise ImproperlyConfigured(f"EXPORT_STORAGE_URL: unknown storage scheme {parts.scheme!r}")
    folder = Path(url).expanduser()
    return LocalExportStorage(folder if folder.is_absolute() else Path(settings.BASE_DIR) / folder)


def _s3_storage(
    bucket: str, path: str, endpoint_url: str | None, region: str | None, part_bytes: int
) -> S3ExportStorage:
    import boto3
    from botocore.config import Config

    if not BUCKET_NAME.fullmatch(bucket):
        raise ImproperlyConfigured(f"EXPORT_STORAGE_URL: not an S3 bucket name: {bucket!r}")
    prefix = path.strip("/")
    if prefix:
        try:
            check_object_key(prefix)
        except InvalidObjectKeyError:
            raise ImproperlyConfigured(f"EXPORT_STORAGE_URL: not a valid prefix: {prefix!r}") from None
        prefix += "/"
    config = Config(
        signature_version="s3v4",
        # Services other than AWS are reached by path: virtual hosts would need wildcard DNS for them.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        retries={"mode": "standard", "max_attempts": 5},
    )
    client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    return S3ExportStorage(client, bucket, prefix, part_bytes)
