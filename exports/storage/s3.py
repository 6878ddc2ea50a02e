"""Export storage in an S3 bucket (any S3-compatible endpoint), by streamed multipart upload."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from exports.storage.base import (
    BUCKET_NAME,
    PRESIGNED_MAXIMUM_SECONDS,
    S3_DEFAULT_PART_BYTES,
    S3_MAXIMUM_PARTS,
    S3_MINIMUM_PART_BYTES,
    ExportObjectNotFoundError,
    ExportStorage,
    ExportStorageError,
    InvalidObjectKeyError,
    ObjectReader,
    ObjectWriter,
    check_object_key,
    check_object_prefix,
)


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

    def delete_everything_under(self, prefix: str) -> int:
        name = self.object_name(check_object_prefix(prefix)[:-1]) + "/"
        removed = 0
        # Unfinished multipart uploads first: their parts are stored data too, invisible to listings.
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=name
        ):
            for upload in page.get("Uploads", []):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                removed += 1
        # Every version and delete marker (a bucket without versioning lists each object once, "null").
        for page in self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=name
        ):
            entries = [
                {"Key": entry["Key"], "VersionId": entry["VersionId"]}
                for entry in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for start in range(0, len(entries), 1000):  # DeleteObjects takes at most 1000 keys
                batch = entries[start : start + 1000]
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise ExportStorageError(
                        f"S3 did not delete {len(answer['Errors'])} object versions: {first.get('Code')}"
                    )
                removed += len(batch)
        return removed

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


def s3_storage_from_url(
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
