"""How a statement's personal data is sealed and what identifies its signatory for the duplicate index."""

from __future__ import annotations

import json

from tenants.keyring.index import identity_part_a, identity_part_b


def personal_data_encode(data: dict[str, str]) -> bytes:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def personal_data_decode(plaintext: bytes) -> dict[str, str]:
    decoded: dict[str, str] = json.loads(plaintext)
    return decoded


def identity_of(data: dict[str, str], country: str) -> bytes:
    """Part B statements carry a document number; Part A ones do not (REQ-12)."""
    if data.get("document_number"):
        return identity_part_b(
            country=country, document_type=data["document_type"], document_number=data["document_number"]
        )
    return identity_part_a(
        country=country,
        first_names=data["first_names"],
        family_names=data["family_names"],
        date_of_birth=data["date_of_birth"],
        postal_code=data["postal_code"],
    )


def statement_identity(plaintext: bytes, country: str) -> bytes:
    return identity_of(personal_data_decode(plaintext), country)
