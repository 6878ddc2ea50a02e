"""The export XML (regulation/export_format.md): what the streaming writer writes validates against the
project's XSD and carries the right keys and values: the initiative, the country, every kind of statement,
any text exactly or refused, from a generator. The schema itself is tested in test_export_schema.py, the
writer's memory in test_xml_writer_memory.py. No database needed."""

from __future__ import annotations

import datetime
import io
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collection.models import Statement
from exports.xml_signatures import DOCUMENT_PROPERTIES, ExportDataError, SignatureRecord
from exports.xml_writer import (
    EmptyExportError,
    InitiativeExportData,
    annex_revision,
    export_xml_write,
    initiative_export_data,
    signature_record,
)
from regulation.member_states import member_states
from tests.exports.xml_documents import (
    PART_A,
    PART_B,
    SUBMITTED,
    _initiative,
    _properties,
    _record,
    _valid,
    _written,
)

# -- the initiative -----------------------------------------------------------------------------------------


def test_initiative_data_comes_from_the_register_fields_in_the_registered_language() -> None:
    data = initiative_export_data(_initiative())
    assert data == InitiativeExportData(
        registration_number="ECI(2024)000007",
        start=datetime.date(2024, 6, 1),
        end=datetime.date(2025, 5, 31),
        register_url="https://citizens-initiative.europa.eu/initiatives/details/2024/000007_en",
        title="Saubere Luft",
        objectives="Ziele & <Mittel>",
        contact_persons="Eva Nowak eva@example.eu, Jens Ørsted jens@example.eu",
        url="https://clean-air.example.eu/",
    )
    assert initiative_export_data(_initiative(), language="en").title == "Clean air"


def test_the_initiative_part_of_the_file(initiative_data: InitiativeExportData) -> None:
    root = _valid(_written("DE", initiative_data, [_record(PART_A)]))
    assert root.tag == "supportForm"
    assert [child.tag for child in root] == ["forCountry", "initiativeData", "signatures"]
    assert root.findtext("forCountry") == "DE"
    initiative = root.find("initiativeData")
    assert initiative is not None
    assert {child.tag: child.text for child in initiative} == {
        "registrationNumber": "ECI(2024)000007",
        "startOfTheCollectionPeriod": "2024-06-01",
        "endOfTheCollectionPeriod": "2025-05-31",
        "urlOnCommissionRegister": initiative_data.register_url,
        "title": "Saubere Luft",
        "objectives": "Ziele & <Mittel>",
        "registeredContactPersons": "Eva Nowak eva@example.eu, Jens Ørsted jens@example.eu",
        "url": "https://clean-air.example.eu/",
    }


def test_an_initiative_without_a_website_leaves_the_url_out(initiative_data: InitiativeExportData) -> None:
    data = InitiativeExportData(**{**initiative_data.__dict__, "url": ""})
    root = _valid(_written("DE", data, [_record(PART_A)]))
    assert root.find("initiativeData/url") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("registration_number", "ECI(24)7"),
        ("register_url", ""),
        ("register_url", "javascript:alert(1)"),
        ("url", "ftp://example.eu"),
        ("title", " "),
        ("objectives", ""),
        ("contact_persons", ""),
        ("end", datetime.date(2024, 5, 1)),
    ],
)
def test_incomplete_initiative_data_is_refused_before_anything_is_written(
    initiative_data: InitiativeExportData, field: str, value: object
) -> None:
    data = InitiativeExportData(**{**initiative_data.__dict__, field: value})
    sink = io.BytesIO()
    with pytest.raises(ExportDataError):
        export_xml_write(sink, country="DE", initiative_data=data, signatures=[_record(PART_A)])
    assert sink.getvalue() == b""


# -- countries -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["EL", "GR", "el"])
def test_greece_is_written_el(initiative_data: InitiativeExportData, country: str) -> None:
    greek = {**PART_A, "first_names": "Γιώργος", "family_names": "Παπαδόπουλος", "city": "Αθήνα"}
    greek["country_of_residence"] = "GR"
    root = _valid(_written(country, initiative_data, [_record(greek)]))
    assert root.findtext("forCountry") == "EL"
    signature = root.find("signatures/signature")
    assert signature is not None
    # The residence is an ISO 3166 code, as stored: GR.
    assert _properties(signature)["oct.group.address"]["oct.property.country"] == "GR"


@pytest.mark.parametrize("country", ["UK", "XX", "", "B"])
def test_a_country_that_is_no_member_state_is_refused(
    initiative_data: InitiativeExportData, country: str
) -> None:
    with pytest.raises(ExportDataError):
        _written(country, initiative_data, [_record(PART_A)])


# -- statements ----------------------------------------------------------------------------------------------


def test_a_part_a_statement(initiative_data: InitiativeExportData) -> None:
    statement_id = uuid.uuid4()
    root = _valid(_written("DE", initiative_data, [_record(PART_A, statement_id)]))
    signature = root.find("signatures/signature")
    assert signature is not None
    assert signature.findtext("submissionDate") == "2024-09-30"
    assert signature.findtext("signatureIdentifier") == str(statement_id)
    assert signature.findtext("annexRevision") == "1"
    assert _properties(signature) == {
        "oct.group.general": {
            "oct.property.full.first.names": "Anna Maria",
            "oct.property.family.names": "Schmidt",
            "oct.property.date.of.birth": "1980-02-29",
        },
        "oct.group.address": {
            "oct.property.street": "Hauptstraße",
            "oct.property.street.number": "12a",
            "oct.property.postal.code": "10115",
            "oct.property.city": "Berlin",
            "oct.property.country": "DE",
        },
    }


def test_a_part_b_statement(initiative_data: InitiativeExportData) -> None:
    root = _valid(_written("CZ", initiative_data, [_record(PART_B)]))
    signature = root.find("signatures/signature")
    assert signature is not None
    assert _properties(signature) == {
        "oct.group.general": {"oct.property.full.first.names": "Jan", "oct.property.family.names": "Novák"},
        "oct.group.id": {"oct.property.passport": "P1234567"},
    }


DOCUMENTS_OF_THE_DATA = sorted(
    {(state.code, document) for state in member_states().values() for document in state.accepted_documents}
)


@pytest.mark.parametrize(("country", "document_type"), DOCUMENTS_OF_THE_DATA)
def test_every_document_type_of_the_data_is_written_under_its_own_key(
    initiative_data: InitiativeExportData, country: str, document_type: str
) -> None:
    data = {**PART_B, "document_type": document_type, "document_number": "X12345"}
    root = _valid(_written(country, initiative_data, [_record(data)]))
    signature = root.find("signatures/signature")
    assert signature is not None
    # The key names the document itself (never one key for all of them).
    assert _properties(signature)["oct.group.id"] == {f"oct.property.{document_type}": "X12345"}


def test_the_residence_permit_a_deployment_may_allow_has_its_key(
    initiative_data: InitiativeExportData,
) -> None:
    data = {**PART_B, "document_type": "residence.permit", "document_number": "R998877"}
    root = _valid(_written("MT", initiative_data, [_record(data)]))
    signature = root.find("signatures/signature")
    assert signature is not None
    assert _properties(signature)["oct.group.id"] == {"oct.property.residence.permit": "R998877"}
    assert set(DOCUMENT_PROPERTIES) >= {document for _country, document in DOCUMENTS_OF_THE_DATA}


@pytest.mark.parametrize("document_type", ["driving.licence", "PASSPORT", "", "personal.id "])
def test_an_unknown_document_type_is_refused(
    initiative_data: InitiativeExportData, document_type: str
) -> None:
    data = {**PART_B, "document_type": document_type}
    with pytest.raises(ExportDataError, match="unknown document type"):
        _written("AT", initiative_data, [_record(data)])


@pytest.mark.parametrize(
    "data",
    [
        {key: value for key, value in PART_A.items() if key != "city"},
        {**PART_A, "family_names": "  "},
        {key: value for key, value in PART_B.items() if key != "document_number"},
        {key: value for key, value in PART_B.items() if key != "document_type"},
        {**PART_B, "street": "Hauptstraße"},
        {**PART_A, "nationality": "DE"},
    ],
    ids=["no-city", "blank-name", "no-number", "number-without-type", "both-parts", "unknown-field"],
)
def test_incomplete_or_mixed_personal_data_is_refused(
    initiative_data: InitiativeExportData, data: dict[str, str]
) -> None:
    with pytest.raises(ExportDataError):
        _written("DE", initiative_data, [_record(data)])


def test_optional_blank_address_parts_are_left_out(initiative_data: InitiativeExportData) -> None:
    data = {**PART_A, "postal_code": "", "street_number": " "}
    data.pop("date_of_birth")
    root = _valid(_written("IE", initiative_data, [_record(data)]))
    signature = root.find("signatures/signature")
    assert signature is not None
    properties = _properties(signature)
    assert "oct.property.date.of.birth" not in properties["oct.group.general"]
    assert set(properties["oct.group.address"]) == {
        "oct.property.street",
        "oct.property.city",
        "oct.property.country",
    }


def test_statements_of_different_shapes_keep_their_own_values(initiative_data: InitiativeExportData) -> None:
    """The writer refills one element tree per shape: nothing of one signatory may reach the next."""
    first = {**PART_A, "first_names": "Erste", "street_number": "1"}
    second = {**PART_A, "first_names": "Zweite", "street_number": ""}
    third = {**PART_B, "first_names": "Dritte"}
    fourth = {**PART_A, "first_names": "Vierte", "date_of_birth": "1990-01-01", "street_number": "4"}
    records = [_record(data) for data in (first, second, third, fourth, first)]
    root = _valid(_written("DE", initiative_data, records))
    signatures = root.findall("signatures/signature")
    assert [s.findtext("signatureIdentifier") for s in signatures] == [str(r.statement_id) for r in records]
    for signature, data in zip(signatures, (first, second, third, fourth, first), strict=True):
        properties = _properties(signature)
        written = {value for group in properties.values() for value in group.values()}
        expected = {value for key, value in data.items() if value.strip() and key != "document_type"}
        assert written == expected


@pytest.mark.parametrize(
    "text",
    [
        "O'Brien <b>&amp; Söhne</b>",
        "x ]]> y",
        "Ø Ł ß Æ œ Ğ",
        "Ελληνικά Παπαδόπουλος",
        "Кирилица Иванов",
        "emoji 😀 and 中文",
        "\"quoted\" & 'apostrophes'",
    ],
)
def test_values_round_trip_whatever_characters_they_hold(
    initiative_data: InitiativeExportData, text: str
) -> None:
    data = {**PART_A, "first_names": text, "street": text, "city": text}
    document = _written("DE", initiative_data, [_record(data)])
    signature = _valid(document).find("signatures/signature")
    assert signature is not None
    properties = _properties(signature)
    assert properties["oct.group.general"]["oct.property.full.first.names"] == text
    assert properties["oct.group.address"]["oct.property.street"] == text
    assert properties["oct.group.address"]["oct.property.city"] == text
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_characters_xml_cannot_carry_are_refused_without_showing_the_value(
    initiative_data: InitiativeExportData,
) -> None:
    data = {**PART_A, "family_names": "Secret\x00Name"}
    statement_id = uuid.uuid4()
    with pytest.raises(ExportDataError) as refused:
        _written("DE", initiative_data, [_record(PART_A), _record(data, statement_id)])
    assert str(statement_id) in str(refused.value)
    assert "Secret" not in str(refused.value)


def test_no_signature_is_refused_before_anything_is_written(initiative_data: InitiativeExportData) -> None:
    sink = io.BytesIO()
    with pytest.raises(EmptyExportError):
        export_xml_write(sink, country="DE", initiative_data=initiative_data, signatures=iter([]))
    assert sink.getvalue() == b""


def test_the_writer_streams_from_a_generator(initiative_data: InitiativeExportData) -> None:
    def records() -> Iterator[SignatureRecord]:
        for number in range(1000):
            yield _record({**PART_A, "street_number": str(number + 1)})

    sink = io.BytesIO()
    assert export_xml_write(sink, country="DE", initiative_data=initiative_data, signatures=records()) == 1000
    root = _valid(sink.getvalue())
    numbers = [
        _properties(signature)["oct.group.address"]["oct.property.street.number"]
        for signature in root.iterfind("signatures/signature")
    ]
    assert numbers == [str(number) for number in range(1, 1001)]


# -- annex revision and stored statements -------------------------------------------------------------------


def test_the_form_revision_the_signing_view_stores_has_an_annex_revision() -> None:
    from regulation.annex_iii import FORM_REVISION

    assert annex_revision(FORM_REVISION) == 1
    with pytest.raises(ExportDataError, match="unknown form revision"):
        annex_revision("2011/211-annex-iii")


def test_a_record_from_a_stored_statement_uses_the_local_day() -> None:
    statement = Statement(
        id=uuid.uuid4(),
        country="BE",
        form_revision="2019/788-annex-iii",
        # 23:30 UTC is already the next day in Brussels (summer time).
        submitted_at=datetime.datetime(2024, 9, 30, 23, 30, tzinfo=datetime.UTC),
    )
    record = signature_record(statement, PART_B)
    assert record == SignatureRecord(statement.id, datetime.date(2024, 10, 1), 1, PART_B)


@pytest.mark.parametrize("revision", [0, -1])
def test_an_annex_revision_below_one_is_refused(initiative_data: InitiativeExportData, revision: int) -> None:
    record = SignatureRecord(uuid.uuid4(), SUBMITTED, revision, PART_A)
    with pytest.raises(ExportDataError):
        _written("DE", initiative_data, [record])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=40))
@example(text="\xa0")
@example(text="\u3000 ")
@example(text="a\x00b")
@example(text="]]>&<\r\n'\"")
@example(text="\ud800")
def test_any_text_is_written_exactly_or_refused(initiative_data: InitiativeExportData, text: str) -> None:
    """The escaping of the signature templates: whatever a value holds, the file either carries it back
    exactly or the writer refuses it, and the fast path (a statement whose shape came before) decides as
    the full checks do; it never writes a file that does not parse and validate."""
    data = {**PART_A, "city": text}

    def outcome(records: list[SignatureRecord]) -> list[str] | None:
        try:
            document = _written("DE", initiative_data, records)
        except ExportDataError:
            return None
        signatures = _valid(document).findall("signatures/signature")
        return [_properties(s)["oct.group.address"]["oct.property.city"] for s in signatures]

    checked_in_full = outcome([_record(data)])
    after_the_same_shape = outcome([_record(PART_A), _record(data)])
    carried = all(
        c in "\t\n\r" or " " <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000" for c in text
    )
    if carried and text.strip():
        assert checked_in_full == [text] and after_the_same_shape == [PART_A["city"], text]
    else:
        assert checked_in_full is None and after_the_same_shape is None
