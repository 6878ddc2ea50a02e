"""One signature (statement) of the export XML (regulation/export_format.md): the record of a statement to
write, the Annex III property keys, and the per-shape templates that write a signature's XML with its
values escaped. Used by exports/xml_writer.py, which writes the frame around the signatures.

A value XML cannot carry (a control character, a lone surrogate) is refused just as lxml refuses it.
Error messages name statement ids and field names only, never personal data.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Mapping
from typing import NamedTuple

from regulation.annex_iii import DOCUMENT_TYPES

GROUP_GENERAL = "oct.group.general"
GROUP_ADDRESS = "oct.group.address"
GROUP_ID = "oct.group.id"

# (personal-data field, property key, required). Optional fields are left out when blank.
GENERAL_PROPERTIES = (
    ("first_names", "oct.property.full.first.names", True),
    ("family_names", "oct.property.family.names", True),
    ("date_of_birth", "oct.property.date.of.birth", False),
)
# Annex III Part A. The country of residence is written as stored: an ISO 3166-1 alpha-2 code (GR for
# Greece), because residence may be any country of the world, for which EU codes do not exist.
ADDRESS_PROPERTIES = (
    ("street", "oct.property.street", True),
    ("street_number", "oct.property.street.number", False),
    ("postal_code", "oct.property.postal.code", False),
    ("city", "oct.property.city", True),
    ("country_of_residence", "oct.property.country", True),
)
# Annex III Part B: the document type of member_states.csv -> the key of that document. The format names
# the key after the type (oct.property.passport for passport, ...), for every type of regulation.annex_iii.
DOCUMENT_PROPERTIES: dict[str, str] = {document: f"oct.property.{document}" for document in DOCUMENT_TYPES}
PART_B_FIELDS = frozenset({"document_type", "document_number"})
KNOWN_FIELDS = frozenset(
    [field for field, _key, _required in GENERAL_PROPERTIES + ADDRESS_PROPERTIES] + list(PART_B_FIELDS)
)


class ExportDataError(ValueError):
    """The data cannot make a valid export file; nothing valid was or will be written."""


class SignatureRecord(NamedTuple):
    """One statement to write. A named tuple: immutable like a frozen dataclass, and made a million times
    per export at a fraction of its cost."""

    statement_id: uuid.UUID | str  # a bulk reader may give the text PostgreSQL printed
    submitted_on: datetime.date
    annex_revision: int
    personal_data: Mapping[str, str]


# A shape: the property keys of the general and address groups (empty: no address group) and the key of
# the id group ("" for none). Statements of one country share one or a few shapes.
Shape = tuple[tuple[str, ...], tuple[str, ...], str]


# What text content may hold as it is: XML 1.0 characters other than the three that need escaping (and
# the carriage return, which a parser would otherwise turn into a line feed).
_PLAIN_TEXT = re.compile("[\t\n\x20-\x25\x27-\x3b\x3d\x3f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
_XML_TEXT = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def _escaped(value: str) -> str:
    if _PLAIN_TEXT.fullmatch(value):
        return value
    if not _XML_TEXT.fullmatch(value):
        raise ValueError("not an XML character")
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


class _SignatureTemplate:
    """The XML of one signature of a given shape, with a %s for each value that changes per statement."""

    __slots__ = ("text",)

    def __init__(self, shape: Shape) -> None:
        general_keys, address_keys, id_key = shape
        groups = []
        for name, keys in (
            (GROUP_GENERAL, general_keys),
            (GROUP_ADDRESS, address_keys),
            (GROUP_ID, (id_key,) if id_key else ()),
        ):
            if keys:
                properties = "".join(
                    f"<property><key>{key}</key><value>%s</value></property>" for key in keys
                )
                groups.append(f"<group><name>{name}</name><properties>{properties}</properties></group>")
        self.text = (
            "<signature><submissionDate>%s</submissionDate><signatureIdentifier>%s</signatureIdentifier>"
            "<annexRevision>%s</annexRevision><signatoryInfo><groups>"
            + "".join(groups)
            + "</groups></signatoryInfo></signature>\n"
        )


_KEY_FIELDS = {key: field for field, key, _required in GENERAL_PROPERTIES + ADDRESS_PROPERTIES}
# Values joined by NUL (which no valid value holds): plain text only, and no value empty or blank.
_PLAIN_VALUES = re.compile("[\x00\t\n\x20-\x25\x27-\x3b\x3d\x3f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
_BLANK_VALUE = re.compile(r"\x00\s*\x00")  # \s is str.isspace(): blank as _group() judges it


class SignatureShapes:
    """Fills the template of each statement's shape. A statement whose fields (and document type) were
    seen before, all present, takes a fast path: the checks of `_properties` hold for it already, and
    its values only need to be plain, non-blank text."""

    def __init__(self) -> None:
        self._templates: dict[Shape, str] = {}
        self._plans: dict[tuple[tuple[str, ...], str | None], tuple[str, tuple[str, ...]]] = {}
        self._revisions: dict[int, str] = {}

    def filled(self, record: SignatureRecord) -> bytes:
        data = record.personal_data
        plan = self._plans.get((tuple(data), data.get("document_type")))
        if plan is not None:
            template, fields = plan
            values = [data[field] for field in fields]
            joined = "\x00".join(values)
            plain = _PLAIN_VALUES.fullmatch(joined) and joined.count("\x00") == len(values) - 1
            if plain and _BLANK_VALUE.search(f"\x00{joined}\x00") is None:
                head = (
                    record.submitted_on.isoformat(),
                    str(record.statement_id),
                    self._revision_text(record),
                )
                return (template % (*head, *values)).encode()
        return self._filled_checked(record)

    def _filled_checked(self, record: SignatureRecord) -> bytes:
        shape, values = _properties(record)
        template = self._templates.get(shape)
        if template is None:
            template = self._templates[shape] = _SignatureTemplate(shape).text
        general_keys, address_keys, id_key = shape
        fields = tuple(_KEY_FIELDS[key] for key in general_keys + address_keys) + (
            ("document_number",) if id_key else ()
        )
        data = record.personal_data
        if len(fields) == len(data) - (1 if id_key else 0):  # every field present: the shape is the plan
            self._plans[(tuple(data), data.get("document_type"))] = (template, fields)
        try:
            text = template % (
                record.submitted_on.isoformat(),
                str(record.statement_id),
                self._revision_text(record),
                *map(_escaped, values),
            )
            return text.encode()
        except (ValueError, UnicodeEncodeError):
            raise ExportDataError(
                f"statement {record.statement_id}: a value holds characters XML cannot carry"
            ) from None

    def _revision_text(self, record: SignatureRecord) -> str:
        text = self._revisions.get(record.annex_revision)
        if text is None:
            if not isinstance(record.annex_revision, int) or record.annex_revision < 1:
                raise ExportDataError(f"statement {record.statement_id}: the annex revision is not positive")
            text = self._revisions[record.annex_revision] = str(record.annex_revision)
        return text


def _properties(record: SignatureRecord) -> tuple[Shape, list[str]]:
    data = record.personal_data
    unknown = data.keys() - KNOWN_FIELDS
    if unknown:
        raise ExportDataError(f"statement {record.statement_id}: unknown fields {sorted(unknown)}")
    values: list[str] = []
    general = _group(record, GENERAL_PROPERTIES, values)
    if "document_type" in data:
        if any(field in data for field, _key, _required in ADDRESS_PROPERTIES):
            raise ExportDataError(f"statement {record.statement_id}: both Part A and Part B data")
        document_type = data["document_type"]
        id_key = DOCUMENT_PROPERTIES.get(document_type)
        if id_key is None:
            raise ExportDataError(f"statement {record.statement_id}: unknown document type {document_type!r}")
        number = data.get("document_number", "")
        if not _present(number):
            raise ExportDataError(f"statement {record.statement_id}: the document number is missing")
        values.append(number)
        return (general, (), id_key), values
    if "document_number" in data:
        raise ExportDataError(f"statement {record.statement_id}: a document number without its type")
    address = _group(record, ADDRESS_PROPERTIES, values)
    return (general, address, ""), values


def _group(
    record: SignatureRecord, properties: tuple[tuple[str, str, bool], ...], values: list[str]
) -> tuple[str, ...]:
    keys: list[str] = []
    data = record.personal_data
    for field, key, required in properties:
        value = data.get(field)
        if value and not value.isspace():  # _present(), inlined: this loop runs for every statement
            keys.append(key)
            values.append(value)
        elif required:
            raise ExportDataError(f"statement {record.statement_id}: {field} is missing")
    return tuple(keys)


def _present(value: str) -> bool:
    return bool(value) and not value.isspace()
