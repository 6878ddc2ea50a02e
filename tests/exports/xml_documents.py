"""Helpers of the export XML tests: an initiative and two statements (Part A, Part B) as the writer takes
them, a document written from records, checked against the project's XSD, and the properties of one
signature element. The initiative_data fixture (conftest.py) gives the initiative's export data."""

from __future__ import annotations

import datetime
import io
import uuid
from collections.abc import Mapping

from lxml import etree

from exports.format import export_schema
from exports.xml_signatures import SignatureRecord
from exports.xml_writer import InitiativeExportData, export_xml_write
from tenants.models import Initiative

SUBMITTED = datetime.date(2024, 9, 30)

PART_A = {
    "first_names": "Anna Maria",
    "family_names": "Schmidt",
    "date_of_birth": "1980-02-29",
    "street": "Hauptstraße",
    "street_number": "12a",
    "postal_code": "10115",
    "city": "Berlin",
    "country_of_residence": "DE",
}
PART_B = {
    "first_names": "Jan",
    "family_names": "Novák",
    "document_type": "passport",
    "document_number": "P1234567",
}


def _initiative() -> Initiative:
    return Initiative(
        slug="clean-air",
        registration_number="ECI(2024)000007",
        registered_on=datetime.date(2024, 3, 1),
        registered_language="de",
        languages=["de", "en"],
        title={"de": "Saubere Luft", "en": "Clean air"},
        objectives={"de": "Ziele & <Mittel>", "en": "Objectives"},
        register_url="https://citizens-initiative.europa.eu/initiatives/details/2024/000007_en",
        website_url="https://clean-air.example.eu/",
        contact_persons=[
            {"name": "Eva Nowak", "email": "eva@example.eu"},
            {"name": "Jens Ørsted", "email": "jens@example.eu"},
        ],
        collection_start=datetime.date(2024, 6, 1),
    )


def _record(data: Mapping[str, str], statement_id: uuid.UUID | None = None) -> SignatureRecord:
    return SignatureRecord(
        statement_id=statement_id or uuid.uuid4(),
        submitted_on=SUBMITTED,
        annex_revision=1,
        personal_data=dict(data),
    )


def _written(country: str, data: InitiativeExportData, records: list[SignatureRecord]) -> bytes:
    sink = io.BytesIO()
    count = export_xml_write(sink, country=country, initiative_data=data, signatures=records)
    assert count == len(records)
    return sink.getvalue()


def _valid(document: bytes) -> etree._Element:
    root = etree.fromstring(document)
    schema = export_schema()
    assert schema.validate(root), schema.error_log
    return root


def _properties(signature: etree._Element) -> dict[str, dict[str, str]]:
    """{group name: {key: value}} of one signature element."""
    return {
        group.findtext("name"): {
            prop.findtext("key"): prop.findtext("value") for prop in group.iterfind("properties/property")
        }
        for group in signature.iterfind("signatoryInfo/groups/group")
    }
