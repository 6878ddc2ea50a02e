"""Helpers of the signing tests: a valid form for each Member State (valid national numbers and postal
codes where the form checks them) and a signing POST with a solved proof of work."""

from __future__ import annotations

from typing import Any

from dateutil.relativedelta import relativedelta
from django.utils import timezone

from regulation.member_states import iso_code, member_states
from tenants.models import Initiative
from tests.conftest import client_for, solved_proof

# Valid numbers (their check digits hold) for the national numbers python-stdnum checks.
VALID_NUMBERS = {
    ("BE", "national.id.number"): "85.07.30-033.28",
    ("BG", "personal.number"): "9001011238",
    ("EE", "personal.number"): "36805280109",
    ("HR", "personal.id"): "33392005961",
    ("LT", "personal.number"): "33309240064",
    ("LV", "personal.number"): "161175-19997",
    ("PL", "personal.number"): "44051401359",
    ("RO", "personal.number"): "1630615123457",
    ("SE", "personal.number"): "880320-0016",
    ("SI", "personal.number"): "0101006500006",
    ("ES", "id.card"): "54362315K",
    ("PT", "citizens.card"): "00000000 0 ZZ4",
    ("RO", "id.card"): "AB123456",
    ("MT", "id.card"): "123456M",
    ("HU", "personal.number"): "12345678901",
}
POSTAL_CODES = {
    "DE": "10115",
    "DK": "2100",
    "EL": "104 31",
    "FI": "00100",
    "FR": "75001",
    "IE": "D02 X285",
    "LU": "L-1234",
    "NL": "1012 AB",
    "SK": "811 01",
}


def valid_form(country: str) -> dict[str, str]:
    state = member_states()[country]
    form = {"first_names": "Zoë Anne", "family_names": "Ó Briain-Łukasik", "declaration": "on"}
    if state.is_part_a:
        birth = timezone.localdate() - relativedelta(years=state.minimum_age + 20)
        form.update(
            street="Rue de la Loi",
            street_number="200",
            postal_code=POSTAL_CODES[country],
            city="Bruxelles",
            country_of_residence=iso_code(country),
            date_of_birth=birth.isoformat(),
        )
    else:
        document = state.accepted_documents[0]
        form.update(
            document_type=document, document_number=VALID_NUMBERS.get((country, document), "X1234567")
        )
    return form


def sign(initiative: Initiative, country: str, data: dict[str, str], **headers: Any) -> Any:
    client = client_for(initiative)
    proof = {"altcha": solved_proof(client)} if "altcha" not in data else {}
    return client.post(f"/sign/{country}/?lang=en", {**data, **proof}, **headers)
