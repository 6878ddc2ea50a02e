"""The export format's XSD (exports/schema/): it knows exactly the Member States of the data and the keys
of the format, carries its version, and is strict: it refuses bad values, a document without signatures,
a statement, a key or a group twice, and a namespace. No database needed."""

from __future__ import annotations

import copy
import uuid

import pytest
from lxml import etree

from exports.format import SCHEMA_PATH, export_schema
from exports.xml_signatures import DOCUMENT_PROPERTIES
from exports.xml_writer import InitiativeExportData
from regulation.member_states import member_states
from tests.exports.xml_documents import PART_A, PART_B, _record, _valid, _written


def test_the_schema_knows_exactly_the_member_states_of_the_data() -> None:
    schema = etree.parse(str(SCHEMA_PATH))
    namespace = {"xs": "http://www.w3.org/2001/XMLSchema"}
    codes = schema.xpath(
        "//xs:simpleType[@name='memberStateCode']//xs:enumeration/@value", namespaces=namespace
    )
    assert sorted(codes) == sorted(member_states())
    assert "EL" in codes and "GR" not in codes


def test_the_schema_carries_its_version() -> None:
    schema = etree.parse(str(SCHEMA_PATH))
    namespace = {"xs": "http://www.w3.org/2001/XMLSchema"}
    assert schema.getroot().get("version") == "1"
    assert "version 1" in " ".join(
        schema.xpath("//xs:annotation/xs:documentation/text()", namespaces=namespace)
    )


# -- the schema is strict ------------------------------------------------------------------------------------


@pytest.fixture
def valid_document(initiative_data: InitiativeExportData) -> etree._Element:
    return _valid(_written("DE", initiative_data, [_record(PART_A), _record(PART_B)]))


def _set(document: etree._Element, path: str, text: str) -> etree._Element:
    changed = copy.deepcopy(document)
    element = changed.find(path)
    assert element is not None
    element.text = text
    return changed


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("forCountry", "GR"),
        ("forCountry", "de"),
        ("initiativeData/registrationNumber", "ECI(2024)7"),
        ("initiativeData/startOfTheCollectionPeriod", "2024-06-01Z"),
        ("initiativeData/endOfTheCollectionPeriod", "31.05.2025"),
        ("initiativeData/urlOnCommissionRegister", "not a url"),
        ("initiativeData/title", "   "),
        ("signatures/signature/submissionDate", "2024-02-30"),
        ("signatures/signature/signatureIdentifier", "not-a-uuid"),
        ("signatures/signature/signatureIdentifier", str(uuid.uuid4()).upper()),
        ("signatures/signature/annexRevision", "0"),
        ("signatures/signature/signatoryInfo/groups/group/name", "oct.group.other"),
        ("signatures/signature/signatoryInfo/groups/group/properties/property/key", "oct.property.email"),
        ("signatures/signature/signatoryInfo/groups/group/properties/property/value", ""),
    ],
)
def test_the_schema_refuses_bad_values(valid_document: etree._Element, path: str, text: str) -> None:
    assert not export_schema().validate(_set(valid_document, path, text))


def test_the_schema_needs_at_least_one_signature(valid_document: etree._Element) -> None:
    signatures = valid_document.find("signatures")
    assert signatures is not None
    for signature in list(signatures):
        signatures.remove(signature)
    assert not export_schema().validate(valid_document)


def test_the_schema_refuses_a_statement_twice(valid_document: etree._Element) -> None:
    signatures = valid_document.find("signatures")
    assert signatures is not None
    signatures.append(copy.deepcopy(signatures[0]))
    assert not export_schema().validate(valid_document)


def test_the_schema_refuses_a_key_twice_in_a_group(valid_document: etree._Element) -> None:
    properties = valid_document.find("signatures/signature/signatoryInfo/groups/group/properties")
    assert properties is not None
    properties.append(copy.deepcopy(properties[0]))
    assert not export_schema().validate(valid_document)


def test_the_schema_refuses_a_group_twice(valid_document: etree._Element) -> None:
    groups = valid_document.find("signatures/signature/signatoryInfo/groups")
    assert groups is not None
    groups.append(copy.deepcopy(groups[0]))
    assert not export_schema().validate(valid_document)


def test_the_schema_refuses_a_namespace(valid_document: etree._Element) -> None:
    document = etree.tostring(valid_document).replace(b"<supportForm>", b'<supportForm xmlns="urn:x">', 1)
    assert not export_schema().validate(etree.fromstring(document))


# The keys export_format.md lists, copied here by hand as an independent check of the schema.
KEYS_OF_THE_FORMAT = {
    "oct.property.full.first.names",
    "oct.property.family.names",
    "oct.property.date.of.birth",
    "oct.property.street",
    "oct.property.street.number",
    "oct.property.postal.code",
    "oct.property.city",
    "oct.property.country",
    "oct.property.passport",
    "oct.property.id.card",
    "oct.property.personal.number",
    "oct.property.personal.id",
    "oct.property.national.id.number",
    "oct.property.citizens.card",
    "oct.property.residence.permit",
}


def test_the_schema_and_the_writer_know_exactly_the_keys_of_the_format() -> None:
    schema = etree.parse(str(SCHEMA_PATH))
    namespace = {"xs": "http://www.w3.org/2001/XMLSchema"}
    keys = set(
        schema.xpath("//xs:simpleType[@name='propertyKey']//xs:enumeration/@value", namespaces=namespace)
    )
    assert keys == KEYS_OF_THE_FORMAT
    assert set(DOCUMENT_PROPERTIES.values()) <= keys
