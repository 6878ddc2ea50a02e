"""Export files (eci_crypto/cms/): signed and encrypted CMS written and read as streams: round trips of
any content in writes of any size, the two layers read one by one, a writer refusing writes after it
closed or failed, and memory that stays flat writing and reading. No database needed."""

from __future__ import annotations

import datetime
import hashlib
import io
import random
import time
import tracemalloc
from pathlib import Path

import pytest
from lxml import etree

from eci_crypto.certificates import certificate_fingerprint
from eci_crypto.cms.reader import (
    ExportFileError,
    auth_enveloped_data_decrypt,
    export_file_read,
    signed_data_read,
)
from eci_crypto.cms.writer import ExportFileWriter, ExportSummary
from tests.eci_crypto.parties import XML, Party, export_bytes, export_read


class CountingSink:
    """Discards what it is given, counting it (a stand-in for a pipe or an upload)."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


# Round trips ---------------------------------------------------------------------------------------------


def test_a_small_file_round_trips_with_its_summary(platform: Party, authority: Party) -> None:
    output = io.BytesIO()
    writer = ExportFileWriter(output, platform.identity, authority.certificate)
    assert writer.write(XML) == len(XML)
    summary = writer.close()
    data = output.getvalue()

    assert summary == ExportSummary(
        content_bytes=len(XML),
        content_sha256=hashlib.sha256(XML).hexdigest(),
        file_bytes=len(data),
        file_sha256=hashlib.sha256(data).hexdigest(),
        signing_time=summary.signing_time,
        signer_fingerprint=certificate_fingerprint(platform.certificate),
        recipient_fingerprint=certificate_fingerprint(authority.certificate),
    )
    assert abs(summary.signing_time - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(minutes=1)
    assert writer.close() is summary  # closing twice is harmless

    verified, content = export_read(data, authority, expected_signer=platform)
    assert content == XML
    assert verified.signer_fingerprint == summary.signer_fingerprint
    assert verified.signer_certificate == platform.certificate
    assert verified.signing_time == summary.signing_time
    assert (verified.content_bytes, verified.content_sha256) == (len(XML), summary.content_sha256)


def test_empty_content_round_trips(platform: Party, authority: Party) -> None:
    verified, content = export_read(export_bytes([], platform, authority), authority, platform)
    assert content == b""
    assert verified.content_sha256 == hashlib.sha256(b"").hexdigest()


def test_megabytes_in_chunks_of_every_size_round_trip(platform: Party, authority: Party) -> None:
    randomness = random.Random(788)
    pool = randomness.randbytes(2 * 1024 * 1024)
    pieces: list[bytes] = []
    while sum(map(len, pieces)) < 6 * 1024 * 1024:
        if randomness.random() < 0.01:
            size = randomness.randint(64 * 1024, 2 * 1024 * 1024)  # a few large ones, some over a chunk
        else:
            size = randomness.randint(0, 300)  # mostly small writes, empty ones too
        start = randomness.randint(0, len(pool) - size)
        pieces.append(pool[start : start + size])
    content = b"".join(pieces)

    output = io.BytesIO()
    with ExportFileWriter(output, platform.identity, authority.certificate) as writer:
        for piece in pieces:
            writer.write(memoryview(piece) if len(piece) % 2 else piece)
    data = output.getvalue()
    assert writer.summary is not None
    assert writer.summary.file_sha256 == hashlib.sha256(data).hexdigest()
    assert writer.summary.file_bytes == len(data)

    verified, decrypted = export_read(data, authority, platform)
    assert decrypted == content
    assert verified.content_sha256 == hashlib.sha256(content).hexdigest()


def test_lxml_writes_its_xml_straight_into_the_writer(platform: Party, authority: Party) -> None:
    output = io.BytesIO()
    writer = ExportFileWriter(output, platform.identity, authority.certificate)
    with etree.xmlfile(writer, encoding="UTF-8") as xml:
        xml.write_declaration()
        with xml.element("supportForm"):
            for number in range(3000):
                signature = etree.Element("signature")
                etree.SubElement(signature, "signatureIdentifier").text = f"id-{number}"
                xml.write(signature)
    writer.close()

    _, content = export_read(output.getvalue(), authority, platform)
    document = etree.fromstring(content)
    assert len(document) == 3000
    assert document[2999].findtext("signatureIdentifier") == "id-2999"


def test_the_file_layers_can_be_read_one_by_one(platform: Party, authority: Party) -> None:
    data = export_bytes([XML], platform, authority)
    signed = b"".join(auth_enveloped_data_decrypt(io.BytesIO(data), authority.private_key))
    assert signed.startswith(b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02")  # BER SignedData
    sink = io.BytesIO()
    verified = signed_data_read(io.BytesIO(signed), sink, expected_signer=platform.certificate)
    assert sink.getvalue() == XML
    assert verified.signer_fingerprint == certificate_fingerprint(platform.certificate)


def test_writing_after_close_and_after_a_failure_is_refused(platform: Party, authority: Party) -> None:
    writer = ExportFileWriter(io.BytesIO(), platform.identity, authority.certificate)
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")

    output = io.BytesIO()
    with (
        pytest.raises(RuntimeError),
        ExportFileWriter(output, platform.identity, authority.certificate) as failing,
    ):
        failing.write(XML)
        raise RuntimeError("the database went away")
    assert failing.closed and failing.summary is None
    with pytest.raises(ExportFileError, match="ends too early"):  # an abandoned file never verifies
        export_read(output.getvalue(), authority, platform)


# Memory and speed ----------------------------------------------------------------------------------------


def test_writing_200_megabytes_keeps_memory_flat(platform: Party, authority: Party) -> None:
    identity, recipient = platform.identity, authority.certificate
    record = (XML * 100)[: 16 * 1024]
    total = 200 * 1024 * 1024
    sink = CountingSink()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        with ExportFileWriter(sink, identity, recipient) as writer:
            for _ in range(total // len(record)):
                writer.write(record)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert writer.summary is not None and writer.summary.content_bytes == total
    assert sink.size == writer.summary.file_bytes > total
    assert peak < 20 * 1024 * 1024, f"peak Python allocation {peak / 1e6:.1f} MB"
    assert elapsed < 10


def test_reading_keeps_memory_flat(platform: Party, authority: Party, tmp_path: Path) -> None:
    path = tmp_path / "BE.xml.p7m"
    record = (XML * 100)[:10_000]
    total_records = 5_000  # 50 MB
    with path.open("wb") as output, ExportFileWriter(output, platform.identity, authority.certificate) as w:
        for _ in range(total_records):
            w.write(record)
    recipient_key, expected = authority.private_key, platform.certificate
    sink = CountingSink()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        with path.open("rb") as source:
            verified = export_file_read(source, sink, recipient_key=recipient_key, expected_signer=expected)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert verified.content_bytes == sink.size == total_records * len(record)
    assert peak < 20 * 1024 * 1024, f"peak Python allocation {peak / 1e6:.1f} MB"
