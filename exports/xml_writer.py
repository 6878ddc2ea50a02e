"""The export file of one Member State (regulation/export_format.md), written as a stream.

The writer never holds the document: it writes the frame, the initiative's data (serialised by lxml), and
then each signature from a template made once per shape (which groups and keys a statement has), filled
with the statement's values escaped as XML text (exports/xml_signatures.py). Serialising an element tree
per statement, as lxml's incremental writer does, cost three times as much; a value XML cannot carry (a
control character, a lone surrogate) is refused just as lxml refuses it, and the tests validate every
output against the XSD.
Error messages name statement ids and field names only, never personal data.
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.utils import timezone
from lxml import etree

from exports.xml_signatures import ExportDataError, SignatureRecord, SignatureShapes
from regulation.annex_iii import FORM_REVISION_NUMBERS
from regulation.member_states import member_states

if TYPE_CHECKING:
    from collection.models import Statement
    from tenants.models import Initiative


REGISTRATION_NUMBER = re.compile(r"ECI\([0-9]{4}\)[0-9]{6}")
WEB_ADDRESS = re.compile(r"https?://\S+")
# Downstream (signing, encryption, upload) gets large writes rather than libxml2's 4 KiB buffers.
CHUNK_BYTES = 256 * 1024


class EmptyExportError(ExportDataError):
    """An export file needs at least one signature."""


class BinarySink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class InitiativeExportData:
    registration_number: str
    start: datetime.date
    end: datetime.date
    register_url: str
    title: str
    objectives: str
    contact_persons: str  # "Name email, Name email", as the register publishes them
    url: str  # the initiative's own website; "" when it has none (the element is then left out)


def annex_revision(form_revision: str) -> int:
    try:
        return FORM_REVISION_NUMBERS[form_revision]
    except KeyError:
        raise ExportDataError(
            f"unknown form revision {form_revision!r}: add it to FORM_REVISION_NUMBERS"
        ) from None


def export_country_code(country: str) -> str:
    """The Member State code the file is for, as the EU writes it (EL, not GR, for Greece)."""
    code = country.upper()
    code = "EL" if code == "GR" else code
    if code not in member_states():
        raise ExportDataError(f"{country!r} is not a Member State")
    return code


def contact_persons_text(contact_persons: Iterable[Mapping[str, str]]) -> str:
    people = (
        " ".join(part for part in (p.get("name", ""), p.get("email", "")) if part) for p in contact_persons
    )
    return ", ".join(person for person in people if person)


def initiative_export_data(initiative: Initiative, language: str | None = None) -> InitiativeExportData:
    """What the register says about the initiative, in its registered language unless told otherwise."""
    language = language or initiative.registered_language
    return InitiativeExportData(
        registration_number=initiative.registration_number,
        start=initiative.collection_start,
        end=initiative.collection_end,
        register_url=initiative.register_url,
        title=initiative.text("title", language),
        objectives=initiative.text("objectives", language),
        contact_persons=contact_persons_text(initiative.contact_persons or []),
        url=initiative.website_url,
    )


def signature_record(statement: Statement, personal_data: Mapping[str, str]) -> SignatureRecord:
    """A stored statement and its opened personal data; the submission day is the platform's local day."""
    return SignatureRecord(
        statement_id=statement.id,
        submitted_on=timezone.localdate(statement.submitted_at),
        annex_revision=annex_revision(statement.form_revision),
        personal_data=personal_data,
    )


def export_xml_write(
    sink: BinarySink,
    *,
    country: str,
    initiative_data: InitiativeExportData,
    signatures: Iterable[SignatureRecord],
) -> int:
    """Write the file of `country` to `sink` and return the number of signatures written.

    Refuses before writing anything when the initiative data is incomplete or there is no signature;
    a statement that cannot be written raises mid-stream, and the caller discards the partial output
    (the storage writers publish an object only on success)."""
    code = export_country_code(country)
    initiative_export_data_check(initiative_data)
    try:
        initiative = _initiative_element(initiative_data)
    except ValueError:
        raise ExportDataError("an initiative text holds characters XML cannot carry") from None
    records = iter(signatures)
    first = next(records, None)
    if first is None:
        raise EmptyExportError(f"no signature to export for {code}")

    chunked = _ChunkedSink(sink)
    written = 0
    shapes = SignatureShapes()
    # The frame is lxml's; each signature is a precompiled template filled with escaped values, which
    # writes the same XML at a third of the cost of an element tree per statement (measured).
    chunked.write(b"<?xml version='1.0' encoding='UTF-8'?>\n<supportForm>\n")
    chunked.write(b"<forCountry>" + code.encode() + b"</forCountry>\n")
    chunked.write(etree.tostring(initiative, encoding="UTF-8"))
    chunked.write(b"<signatures>\n")
    filled = shapes.filled
    batch: list[bytes] = []
    for record in itertools.chain((first,), records):
        batch.append(filled(record))
        if len(batch) == 256:  # one join and one write per 256 statements, not one each
            chunked.write(b"".join(batch))
            written += len(batch)
            batch.clear()
    chunked.write(b"".join(batch))
    written += len(batch)
    chunked.write(b"</signatures>\n</supportForm>")
    chunked.flush()
    return written


def initiative_export_data_check(data: InitiativeExportData) -> None:
    """Raise ExportDataError (saying what is missing) unless the initiative's data can make a valid file."""
    if not REGISTRATION_NUMBER.fullmatch(data.registration_number):
        raise ExportDataError("the registration number is not of the form ECI(YYYY)NNNNNN")
    if data.end < data.start:
        raise ExportDataError("the collection period ends before it starts")
    if not WEB_ADDRESS.fullmatch(data.register_url):
        raise ExportDataError("the initiative has no http(s) address on the Commission's register")
    if data.url and not WEB_ADDRESS.fullmatch(data.url):
        raise ExportDataError("the initiative's website is not an http(s) address")
    for field in ("title", "objectives", "contact_persons"):
        if not getattr(data, field).strip():
            raise ExportDataError(f"the initiative has no {field.replace('_', ' ')}")


def _initiative_element(data: InitiativeExportData) -> etree._Element:
    element = etree.Element("initiativeData")
    element.text = "\n"
    fields = [
        ("registrationNumber", data.registration_number),
        ("startOfTheCollectionPeriod", data.start.isoformat()),
        ("endOfTheCollectionPeriod", data.end.isoformat()),
        ("urlOnCommissionRegister", data.register_url),
        ("title", data.title),
        ("objectives", data.objectives),
        ("registeredContactPersons", data.contact_persons),
    ]
    if data.url:
        fields.append(("url", data.url))
    for tag, text in fields:
        child = etree.SubElement(element, tag)
        child.text = text
        child.tail = "\n"
    element.tail = "\n"
    return element


class _ChunkedSink:
    """Gathers the writer's small pieces into chunks of CHUNK_BYTES for the sink."""

    def __init__(self, sink: BinarySink) -> None:
        self._sink = sink
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= CHUNK_BYTES:
            self._sink.write(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._sink.write(bytes(self._buffer))
            self._buffer.clear()
