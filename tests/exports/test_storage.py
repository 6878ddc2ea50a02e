"""Export storage: the local folder back end and the S3 one against an S3 endpoint these tests start
(moto's server over HTTP on loopback). No database needed."""

from __future__ import annotations

import hashlib
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from exports.storage import export_storage, export_storage_for
from exports.storage.base import (
    S3_DEFAULT_PART_BYTES,
    ExportObjectNotFoundError,
    ExportStorage,
    InvalidObjectKeyError,
    check_object_key,
    export_object_key,
)
from exports.storage.local import LocalExportStorage
from exports.storage.s3 import S3ExportStorage

KEY = "exports/i_abc123/BE/42.p7m"
MiB = 1024 * 1024


class Boom(Exception):
    pass


def _chunks(total: int, size: int = MiB) -> Iterator[bytes]:
    """Deterministic, incompressible-looking bytes, so parts and digests really differ."""
    counter = 0
    while total > 0:
        length = min(size, total)
        block = hashlib.sha256(counter.to_bytes(8, "big")).digest() * (length // 32 + 1)
        yield block[:length]
        total -= length
        counter += 1


# -- object keys ---------------------------------------------------------------------------------------------


def test_object_keys_are_built_from_schema_country_and_job() -> None:
    job = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert export_object_key("i_abc123", "BE", 42, ".p7m") == KEY
    assert export_object_key("i_abc123", "EL", job, ".manifest.json") == (
        "exports/i_abc123/EL/12345678-1234-5678-1234-567812345678.manifest.json"
    )


@pytest.mark.parametrize(
    ("schema", "country", "job_id", "suffix"),
    [
        ("../public", "BE", 1, ".p7m"),
        ("i_abc/..", "BE", 1, ".p7m"),
        ("I_ABC", "BE", 1, ".p7m"),
        ("", "BE", 1, ".p7m"),
        ("i_abc", "be", 1, ".p7m"),
        ("i_abc", "B/", 1, ".p7m"),
        ("i_abc", "..", 1, ".p7m"),
        ("i_abc", "BE", "../../etc/passwd", ".p7m"),
        ("i_abc", "BE", "1/2", ".p7m"),
        ("i_abc", "BE", -1, ".p7m"),
        ("i_abc", "BE", True, ".p7m"),
        ("i_abc", "BE", 1, "p7m"),
        ("i_abc", "BE", 1, "/../x"),
        ("i_abc", "BE", 1, ".partial"),
    ],
)
def test_object_key_parts_that_could_escape_are_refused(
    schema: str, country: str, job_id: Any, suffix: str
) -> None:
    with pytest.raises(InvalidObjectKeyError):
        export_object_key(schema, country, job_id, suffix)


@pytest.mark.parametrize(
    "key",
    ["../x", "/etc/passwd", "a//b", "a/./b", "a/../b", "a/", "", "a\\b", "x.p7m.partial", ".hidden", "a b"],
)
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidObjectKeyError):
        check_object_key(key)


# -- local back end ------------------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalExportStorage:
    return LocalExportStorage(tmp_path / "exports-root")


def _files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_local_round_trip(local: LocalExportStorage) -> None:
    assert not local.exists(KEY)
    with local.open_writer(KEY) as sink:
        for chunk in _chunks(3 * MiB):
            sink.write(chunk)
    expected = b"".join(_chunks(3 * MiB))
    assert local.exists(KEY)
    assert local.size(KEY) == len(expected)
    assert local.read(KEY) == expected
    with local.open_reader(KEY) as source:
        assert source.read(10) == expected[:10]
    assert _files(local.root) == [KEY]
    assert (local.root / KEY).stat().st_mode & 0o077 == 0  # readable by the platform's user only
    assert local.download_url(KEY, 300) is None
    local.delete(KEY)
    local.delete(KEY)  # twice is fine
    assert not local.exists(KEY)
    with pytest.raises(ExportObjectNotFoundError):
        local.read(KEY)
    with pytest.raises(FileNotFoundError):  # the not-found error is also the standard one
        local.size(KEY)


def test_local_object_appears_only_when_the_writer_succeeds(local: LocalExportStorage) -> None:
    with local.open_writer(KEY) as sink:
        sink.write(b"first half")
        assert not local.exists(KEY)
        assert all(name.endswith(".partial") for name in _files(local.root))
    assert local.read(KEY) == b"first half"


def test_a_failing_local_writer_leaves_neither_object_nor_partial(local: LocalExportStorage) -> None:
    with pytest.raises(Boom), local.open_writer(KEY) as sink:
        sink.write(b"x" * MiB)
        raise Boom
    assert not local.exists(KEY)
    assert _files(local.root) == []


def test_a_failing_rewrite_keeps_the_previous_object(local: LocalExportStorage) -> None:
    local.put_bytes(KEY, b"complete")
    with pytest.raises(Boom), local.open_writer(KEY) as sink:
        sink.write(b"half of a new")
        raise Boom
    assert local.read(KEY) == b"complete"
    assert _files(local.root) == [KEY]


def test_a_local_rewrite_replaces_the_object(local: LocalExportStorage) -> None:
    local.put_bytes(KEY, b"first run, longer content")
    local.put_bytes(KEY, b"second run")
    assert local.read(KEY) == b"second run"
    assert _files(local.root) == [KEY]


def test_local_keys_cannot_leave_the_root(local: LocalExportStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    local.root.mkdir(parents=True)
    (local.root / "exports").symlink_to(outside)
    with pytest.raises(InvalidObjectKeyError):
        local.put_bytes(KEY, b"escaped")
    with pytest.raises(InvalidObjectKeyError):
        local.read("../outside/x")
    assert list(outside.iterdir()) == []


# -- configuration -------------------------------------------------------------------------------------------


def test_the_storage_follows_the_url_setting(tmp_path: Path) -> None:
    with override_settings(EXPORT_STORAGE_URL=str(tmp_path / "a")):
        storage = export_storage()
        assert isinstance(storage, LocalExportStorage)
        assert storage.root == (tmp_path / "a").resolve()
        assert export_storage() is storage  # built once per configuration
    with override_settings(EXPORT_STORAGE_URL=(tmp_path / "b").as_uri()):
        storage = export_storage()
        assert isinstance(storage, LocalExportStorage)
        assert storage.root == (tmp_path / "b").resolve()
    with override_settings(EXPORT_STORAGE_URL="relative/exports"):
        from django.conf import settings

        storage = export_storage()
        assert isinstance(storage, LocalExportStorage)
        assert storage.root == (Path(settings.BASE_DIR) / "relative" / "exports").resolve()


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "file://otherhost/x", "s3://Bad_Bucket/x", "s3://bucket/../x", "s3:///x"]
)
def test_bad_storage_urls_are_refused(url: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        export_storage_for(url, s3_endpoint_url="http://127.0.0.1:1", s3_region="eu-west-1")


# -- S3 back end ---------------------------------------------------------------------------------------------


def _object_names(storage: S3ExportStorage) -> list[str]:
    listing = storage.client.list_objects_v2(Bucket=storage.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _open_uploads(storage: S3ExportStorage) -> list[dict[str, Any]]:
    uploads: list[dict[str, Any]] = storage.client.list_multipart_uploads(Bucket=storage.bucket).get(
        "Uploads", []
    )
    return uploads


def test_s3_round_trip_of_a_small_object(s3: S3ExportStorage) -> None:
    manifest = b'{"count": 3}'
    s3.put_bytes(KEY, manifest)
    assert _object_names(s3) == [f"platform/eu/{KEY}"]  # under the prefix of the URL
    assert s3.exists(KEY)
    assert s3.size(KEY) == len(manifest)
    assert s3.read(KEY) == manifest
    assert _open_uploads(s3) == []
    s3.delete(KEY)
    s3.delete(KEY)
    assert not s3.exists(KEY)
    with pytest.raises(ExportObjectNotFoundError):
        s3.read(KEY)
    with pytest.raises(ExportObjectNotFoundError):
        s3.size(KEY)


def test_s3_streams_a_large_object_in_parts(s3: S3ExportStorage) -> None:
    total = 17 * MiB + 12345
    expected = hashlib.sha256()
    with s3.open_writer(KEY) as sink:
        for chunk in _chunks(total, size=MiB // 2 + 7):  # sizes that do not divide the part size
            sink.write(chunk)
            expected.update(chunk)
            # Memory stays bounded by one part, whatever the object's size.
            assert sink.pending_bytes < S3_DEFAULT_PART_BYTES  # type: ignore[attr-defined]
        assert len(_open_uploads(s3)) == 1  # parts went up while writing
        assert not s3.exists(KEY)  # but nothing is visible before the end
    assert _open_uploads(s3) == []
    assert s3.size(KEY) == total
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"platform/eu/{KEY}")
    assert head["ETag"].strip('"').endswith("-3")  # 8 MiB + 8 MiB + the rest
    received = hashlib.sha256()
    with s3.open_reader(KEY) as source:
        while block := source.read(MiB):
            received.update(block)
    assert received.hexdigest() == expected.hexdigest()


def test_a_failing_s3_writer_leaves_nothing(s3: S3ExportStorage) -> None:
    with pytest.raises(Boom), s3.open_writer(KEY) as sink:
        for chunk in _chunks(20 * MiB):
            sink.write(chunk)
        assert len(_open_uploads(s3)) == 1
        raise Boom
    assert not s3.exists(KEY)
    assert _object_names(s3) == []
    assert _open_uploads(s3) == []


def test_a_failing_small_s3_writer_leaves_nothing(s3: S3ExportStorage) -> None:
    with pytest.raises(Boom), s3.open_writer(KEY) as sink:
        sink.write(b"small")
        raise Boom
    assert _object_names(s3) == []


def test_an_s3_rewrite_replaces_the_object(s3: S3ExportStorage) -> None:
    with s3.open_writer(KEY) as sink:
        for chunk in _chunks(9 * MiB):
            sink.write(chunk)
    s3.put_bytes(KEY, b"second run")
    assert s3.read(KEY) == b"second run"
    assert _object_names(s3) == [f"platform/eu/{KEY}"]


def test_s3_download_links_are_presigned_and_short_lived(s3: S3ExportStorage) -> None:
    s3.put_bytes(KEY, b"signed and encrypted export")
    url = s3.download_url(KEY, 300)
    assert url is not None
    assert "X-Amz-Expires=300" in url and "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (our own test endpoint)
        assert response.read() == b"signed and encrypted export"
        assert response.headers["Content-Disposition"] == 'attachment; filename="42.p7m"'
    for expires in (0, -5, 8 * 24 * 3600):
        with pytest.raises(ValueError):
            s3.download_url(KEY, expires)


def test_s3_refuses_malformed_keys(s3: S3ExportStorage) -> None:
    for key in ("../x", "/abs", "a//b"):
        with pytest.raises(InvalidObjectKeyError):
            s3.put_bytes(key, b"x")
    assert _object_names(s3) == []


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_both_back_ends_offer_the_same_interface(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    storage: ExportStorage = (
        request.getfixturevalue("s3") if backend == "s3" else LocalExportStorage(tmp_path / "root")
    )
    key = export_object_key("i_x", "EL", 7, ".manifest.json")
    storage.put_bytes(key, "Ελλάδα".encode())
    assert storage.read(key).decode() == "Ελλάδα"
    assert storage.size(key) == len("Ελλάδα".encode())
    assert os.path.basename(key) == "7.manifest.json"


def test_everything_under_a_folder_goes_partial_files_too(local: LocalExportStorage) -> None:
    local.put_bytes("exports/i_one/BE/1.p7m", b"file")
    local.put_bytes("exports/i_one/BE/1.manifest.json", b"manifest")
    local.put_bytes("exports/i_one/DE/2.p7m", b"file")
    local.put_bytes("exports/i_two/BE/3.p7m", b"another initiative's")
    (local.root / "exports/i_one/DE/.2.p7m.abc.partial").write_bytes(b"a writer died here")
    assert local.delete_everything_under("exports/i_one/") == 4
    assert _files(local.root) == ["exports/i_two/BE/3.p7m"]
    assert local.delete_everything_under("exports/i_one/") == 0  # again: nothing left
    with pytest.raises(InvalidObjectKeyError):
        local.delete_everything_under("exports/../")
    with pytest.raises(InvalidObjectKeyError):
        local.delete_everything_under("exports/i_two")  # not a folder: refused, nothing removed
    assert _files(local.root) == ["exports/i_two/BE/3.p7m"]
