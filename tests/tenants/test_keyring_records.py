"""Sealed records and the duplicate index: round trip, tampering, swaps, unknown and destroyed keys,
normalisation of identities."""

from __future__ import annotations

import uuid

import pytest

from collection.models import Statement
from collection.sealed import personal_data_decode
from collection.services import DuplicateStatementError, statement_record
from tenants.keyring.index import (
    identity_part_a,
    identity_part_b,
    index_digest,
    normalise_document_number,
    normalise_name,
)
from tenants.keyring.keys import KeyUnavailableError, process_key_cache
from tenants.keyring.sealing import SealedRecordError, open_sealed, seal
from tenants.models import DataKey, Initiative, KeyPurpose
from tenants.onboarding import initiative_onboard
from tests.conftest import onboarding_request

pytestmark = pytest.mark.django_db

PLAIN = "Zofia Łukasiewicz, ID AB1234567".encode()


def test_round_trip(alpha: Initiative) -> None:
    record = uuid.uuid4()
    blob = seal(alpha.pk, record, "PL", PLAIN)
    assert PLAIN not in blob
    assert open_sealed(alpha.pk, record, "PL", blob) == PLAIN


def test_two_seals_of_the_same_data_differ(alpha: Initiative) -> None:
    record = uuid.uuid4()
    assert seal(alpha.pk, record, "PL", PLAIN) != seal(alpha.pk, record, "PL", PLAIN)


def test_every_tampered_byte_fails(alpha: Initiative) -> None:
    record = uuid.uuid4()
    blob = seal(alpha.pk, record, "PL", PLAIN)
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises((SealedRecordError, KeyUnavailableError)):
            open_sealed(alpha.pk, record, "PL", bytes(tampered))


def test_truncated_or_foreign_blobs_fail(alpha: Initiative) -> None:
    record = uuid.uuid4()
    blob = seal(alpha.pk, record, "PL", PLAIN)
    for bad in (b"", blob[:10], blob[:-1], b"XXXX" + blob[4:], PLAIN):
        with pytest.raises(SealedRecordError):
            open_sealed(alpha.pk, record, "PL", bad)


def test_a_blob_moved_to_another_row_country_or_initiative_fails(alpha: Initiative, beta: Initiative) -> None:
    record = uuid.uuid4()
    blob = seal(alpha.pk, record, "PL", PLAIN)
    with pytest.raises(SealedRecordError):
        open_sealed(alpha.pk, uuid.uuid4(), "PL", blob)  # another row
    with pytest.raises(SealedRecordError):
        open_sealed(alpha.pk, record, "DE", blob)  # relabelled country
    with pytest.raises(SealedRecordError):
        open_sealed(beta.pk, record, "PL", blob)  # another initiative (its own key, same version number)


def test_an_unknown_version_fails_closed(alpha: Initiative) -> None:
    record = uuid.uuid4()
    blob = bytearray(seal(alpha.pk, record, "PL", PLAIN))
    blob[4:8] = (99).to_bytes(4, "big")
    with pytest.raises(KeyUnavailableError):
        open_sealed(alpha.pk, record, "PL", bytes(blob))


def test_a_destroyed_version_fails_closed(alpha: Initiative) -> None:
    from tenants.keyring.shredding import initiative_keys_destroy

    fresh = initiative_onboard(onboarding_request("destroyed-key", 800001), actor="t", provision="now")
    record = uuid.uuid4()
    blob = seal(fresh.pk, record, "PL", PLAIN)
    initiative_keys_destroy(fresh, actor="t", reason="test")
    with pytest.raises(KeyUnavailableError):
        open_sealed(fresh.pk, record, "PL", blob)
    process_key_cache.clear()
    with pytest.raises(KeyUnavailableError):
        open_sealed(fresh.pk, record, "PL", blob)


def test_wrapped_keys_in_the_database_are_not_the_keys(alpha: Initiative) -> None:
    from tenants.keyring.keys import data_key

    for stored in DataKey.objects.filter(initiative=alpha):
        material = data_key(alpha.pk, stored.purpose, stored.version).material
        assert len(material) == 32 and material not in bytes(stored.wrapped)


def test_unwrapped_keys_never_print_their_material(alpha: Initiative) -> None:
    from tenants.keyring.keys import data_key

    key = data_key(alpha.pk, KeyPurpose.PERSONAL_DATA, 1)
    assert key.material.hex() not in repr(key) and str(key.material) not in repr(key)


# -- normalisation and the index --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Øyvind Ødegård", "oyvind odegard"),
        ("Łukasz  Żółć", "LUKASZ ZOLC"),
        ("Straße", "STRASSE"),
        ("Jean-Pierre", "jean pierre"),
        ("Þórunn Ærø", "thorunn aero"),
        ("José María", "Jose\u0301 Mari\u0301a"),  # precomposed and combining accents
        ("\uff21\uff2e\uff2e\uff21", "anna"),  # full-width letters
    ],
)
def test_spelling_variants_of_a_name_normalise_alike(one: str, other: str) -> None:
    assert normalise_name(one) == normalise_name(other)


@pytest.mark.parametrize("letter", ["Ø", "Ł", "ß", "Þ", "Æ", "Đ", "Ħ", "Ŋ", "Œ"])
def test_no_letter_vanishes(letter: str) -> None:
    assert normalise_name(letter) != ""
    assert normalise_name(f"A{letter}B") != normalise_name("AB")


def test_document_numbers_fold_spacing_and_punctuation() -> None:
    assert normalise_document_number(" ab 12-34.56 ") == normalise_document_number("AB123456")


def test_variants_of_one_identity_collide_and_different_ones_do_not(alpha: Initiative) -> None:
    def digest(identity: bytes) -> bytes:
        return index_digest(alpha.pk, identity)[1]

    person = identity_part_a(
        country="DK",
        first_names="Søren",
        family_names="Kierkegaard",
        date_of_birth="1990-05-05",
        postal_code="2100",
    )
    same = identity_part_a(
        country="dk",
        first_names=" soren ",
        family_names="KIERKEGAARD",
        date_of_birth="1990-05-05",
        postal_code="21 00",
    )
    assert digest(person) == digest(same)
    others = [
        identity_part_a(
            country="DK",
            first_names="Søren",
            family_names="Kierkegaard",
            date_of_birth="1990-05-06",
            postal_code="2100",
        ),
        identity_part_a(
            country="DK",
            first_names="Sören",
            family_names="Kierkegaard",
            date_of_birth="1990-05-05",
            postal_code="2200",
        ),
        identity_part_a(
            country="NO",
            first_names="Søren",
            family_names="Kierkegaard",
            date_of_birth="1990-05-05",
            postal_code="2100",
        ),
        # Field boundaries count: moving a name between fields is another identity.
        identity_part_a(
            country="DK",
            first_names="Søren Kierkegaard",
            family_names="",
            date_of_birth="1990-05-05",
            postal_code="2100",
        ),
    ]
    assert len({digest(identity) for identity in [person, *others]}) == 5

    passport = identity_part_b(country="AT", document_type="passport", document_number="P 123 456")
    assert digest(passport) == digest(
        identity_part_b(country="AT", document_type="passport", document_number="p123456")
    )
    assert digest(passport) != digest(
        identity_part_b(country="AT", document_type="id.card", document_number="P123456")
    )


def test_the_same_identity_has_different_digests_in_two_initiatives(
    alpha: Initiative, beta: Initiative
) -> None:
    identity = identity_part_b(country="AT", document_type="passport", document_number="P123456")
    assert index_digest(alpha.pk, identity)[1] != index_digest(beta.pk, identity)[1]


# -- the statement path ------------------------------------------------------------------------------------

PERSON_B = {
    "first_names": "Ana",
    "family_names": "Horvat",
    "document_type": "personal.number",
    "document_number": "12345678901",
}


def test_a_statement_is_stored_sealed_and_opens_to_what_was_given(alpha: Initiative) -> None:
    with alpha:
        statement = statement_record(country="HR", personal_data=PERSON_B, form_revision="test")
        stored = Statement.objects.get(pk=statement.pk)
    assert b"Horvat" not in bytes(stored.sealed_personal_data)
    opened = open_sealed(alpha.pk, stored.pk, "HR", bytes(stored.sealed_personal_data))
    assert personal_data_decode(opened) == PERSON_B
    assert (stored.key_version, stored.index_key_version) == (1, 1)


def test_a_second_statement_of_the_same_person_is_a_duplicate(alpha: Initiative, beta: Initiative) -> None:
    with alpha:
        statement_record(country="HR", personal_data=PERSON_B, form_revision="test")
        variant = {**PERSON_B, "document_number": "123 456 789 01"}
        with pytest.raises(DuplicateStatementError):
            statement_record(country="HR", personal_data=variant, form_revision="test")
        assert Statement.objects.count() == 1
    with beta:  # another initiative: the same person may support it too
        statement_record(country="HR", personal_data=PERSON_B, form_revision="test")
