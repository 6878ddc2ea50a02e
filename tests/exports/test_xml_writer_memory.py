"""The export XML writer keeps memory flat: 200,000 statements, far more than memory may hold as a
document, written with a flat Python peak and resident size. No database needed."""

from __future__ import annotations

import hashlib
import re
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

from exports.xml_signatures import SignatureRecord
from exports.xml_writer import InitiativeExportData, export_xml_write
from tests.exports.xml_documents import PART_A, PART_B, SUBMITTED

# -- memory --------------------------------------------------------------------------------------------------


class _DigestSink:
    """Keeps nothing but a digest and a count, like the signing stream that follows the writer."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def _resident_bytes() -> int | None:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) * 1024 if match else None


def test_memory_stays_flat_for_200000_statements(initiative_data: InitiativeExportData) -> None:
    count = 200_000

    def records() -> Iterator[SignatureRecord]:
        for number in range(count):
            data = PART_A if number % 3 else PART_B
            yield SignatureRecord(uuid.UUID(int=number), SUBMITTED, 1, data)

    sink = _DigestSink()
    resident_before = _resident_bytes()
    tracemalloc.start()
    try:
        written = export_xml_write(sink, country="DE", initiative_data=initiative_data, signatures=records())
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    resident_after = _resident_bytes()
    assert written == count
    assert sink.size > 100 * 1024 * 1024  # the document is far larger than what memory may hold
    assert peak < 20 * 1024 * 1024, f"peak {peak} bytes"
    # libxml2's own allocations are not traced: a document kept in memory would show in the RSS.
    if resident_before is not None and resident_after is not None:
        assert resident_after - resident_before < 40 * 1024 * 1024
