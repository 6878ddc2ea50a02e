"""Signing: the Annex III form of every Member State accepted and stored as typed, duplicates, the collection
window, unknown countries, the pages, the receipt and the counts, the optional e-mail address, and each
initiative on its own schema (REQ-03, 08, 15, 16, 19, 27). The validation of the fields is in
test_signing_validation.py."""

from __future__ import annotations

import datetime

import pytest
from dateutil.relativedelta import relativedelta
from django.test import Client
from django.utils import timezone

from collection.models import Statement
from collection.sealed import personal_data_decode
from collection.services import counts_refresh
from regulation.member_states import member_states
from tenants.keyring.sealing import open_sealed
from tenants.models import Initiative, InitiativeState
from tests.collection.signing import sign, valid_form
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("country", sorted(member_states()))
def test_a_valid_statement_is_accepted_and_opens_to_what_was_typed(alpha: Initiative, country: str) -> None:
    data = valid_form(country)
    response = sign(alpha, country, data)
    assert response.status_code == 303, response.content.decode()[:3000]
    assert response["Location"].startswith("/receipt/")
    with alpha:
        row = Statement.objects.get()
    stored = personal_data_decode(open_sealed(alpha.pk, row.pk, country, bytes(row.sealed_personal_data)))
    assert row.country == country
    assert stored["first_names"] == "Zoë Anne" and stored["family_names"] == "Ó Briain-Łukasik"
    state = member_states()[country]
    if state.is_part_a:
        assert set(stored) == {
            "first_names",
            "family_names",
            "street",
            "street_number",
            "postal_code",
            "city",
            "country_of_residence",
            "date_of_birth",
        }
        assert stored["date_of_birth"] == data["date_of_birth"]
    else:
        assert set(stored) == {"first_names", "family_names", "document_type", "document_number"}
        assert stored["document_type"] == data["document_type"]
    receipt = client_for(alpha).get(response["Location"])
    assert receipt.status_code == 200 and str(row.pk) in receipt.content.decode()


def test_the_same_person_twice_is_a_409_and_one_row(alpha: Initiative) -> None:
    data = valid_form("AT")
    assert sign(alpha, "AT", data).status_code == 303
    variant = {**data, "document_number": data["document_number"].lower()}
    response = sign(alpha, "AT", variant)
    assert response.status_code == 409
    assert "already supported" in response.content.decode()
    with alpha:
        assert Statement.objects.count() == 1


@pytest.mark.parametrize("state", [InitiativeState.PAUSED, InitiativeState.CLOSED, InitiativeState.READY])
def test_outside_collection_the_form_is_a_410(alpha: Initiative, state: str) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(state=state)
    for response in (client_for(alpha).get("/sign/FR/"), sign(alpha, "FR", valid_form("FR"))):
        assert response.status_code == 410
        assert "not collecting" in response.content.decode()
    with alpha:
        assert Statement.objects.count() == 0


def test_after_the_collection_period_the_form_is_a_410_and_the_attempt_logged(
    alpha: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="collection.views")
    # Twelve months from the start (REQ-07): a start twelve months and a day ago has ended yesterday.
    Initiative.objects.filter(pk=alpha.pk).update(
        collection_start=timezone.localdate() - relativedelta(months=12) - datetime.timedelta(days=1)
    )
    response = sign(alpha, "FR", valid_form("FR"))
    assert response.status_code == 410 and "not collecting" in response.content.decode()
    assert "outcome=closed" in caplog.text and "country=FR" in caplog.text
    with alpha:
        assert Statement.objects.count() == 0


def test_before_the_collection_period_the_form_is_a_410(alpha: Initiative) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(
        collection_start=timezone.localdate() + datetime.timedelta(days=2)
    )
    assert sign(alpha, "FR", valid_form("FR")).status_code == 410


@pytest.mark.parametrize("country", ["XX", "fr", "GR", "UK", "%00"])
def test_an_unknown_country_is_a_404(alpha: Initiative, country: str) -> None:
    assert client_for(alpha).get(f"/sign/{country}/").status_code == 404


def test_the_form_shows_the_registered_initiative_and_only_the_countrys_fields(alpha: Initiative) -> None:
    page = client_for(alpha).get("/sign/DE/?lang=en").content.decode()
    assert alpha.registration_number in page and "Privacy notice" in page
    for field in ("first_names", "family_names", "street", "postal_code", "date_of_birth", "declaration"):
        assert f'name="{field}"' in page
    assert 'name="document_number"' not in page
    page = client_for(alpha).get("/sign/AT/?lang=en").content.decode()
    assert 'name="document_number"' in page and 'name="date_of_birth"' not in page


def test_choosing_a_nationality_leads_to_its_form(alpha: Initiative) -> None:
    response = client_for(alpha).get("/sign/?country=el&lang=de")
    assert response.status_code == 302 and response["Location"] == "/sign/EL/?lang=de"
    page = client_for(alpha).get("/sign/?lang=fr").content.decode()
    assert "Allemagne" in page and "Grèce" in page  # country names in the chosen language


def test_a_receipt_of_another_initiative_is_not_found(alpha: Initiative, beta: Initiative) -> None:
    location = sign(alpha, "AT", valid_form("AT"))["Location"]
    assert client_for(alpha).get(location).status_code == 200
    assert client_for(beta).get(location).status_code == 404


def test_counts_api_gives_counts_and_thresholds(alpha: Initiative) -> None:
    sign(alpha, "AT", valid_form("AT"))
    sign(alpha, "FR", valid_form("FR"))
    with alpha:
        counts_refresh()
    body = client_for(alpha).get("/api/counts.json").json()
    assert body["total"] == 2 and body["counted_at"]
    assert body["countries"]["AT"] == {"count": 1, "threshold": 14400}
    assert body["countries"]["DE"] == {"count": 0, "threshold": 69120}
    assert len(body["countries"]) == 27


def test_signing_pages_are_not_cached(alpha: Initiative) -> None:
    response = client_for(alpha).get("/sign/FR/")
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_no_personal_data_in_the_log(alpha: Initiative, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    data = valid_form("PL")
    sign(alpha, "PL", data)
    sign(alpha, "PL", data)
    assert "outcome=accepted" in caplog.text and "outcome=duplicate" in caplog.text
    for secret in (data["first_names"], data["family_names"], data["document_number"]):
        assert secret not in caplog.text


def test_a_client_for_the_platform_domain_cannot_sign(platform_client: Client) -> None:
    assert platform_client.get("/sign/FR/").status_code == 404


def test_public_pages_carry_the_security_headers(alpha: Initiative) -> None:
    for path in ("/", "/sign/", "/sign/FR/"):
        response = client_for(alpha).get(path)
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
    page = client_for(alpha).get("/sign/FR/").content.decode()
    assert "<script>" not in page and '<script type="module">' not in page  # no inline script at all


# -- the optional e-mail address (REQ-19) -------------------------------------------------------------------


def test_an_email_given_with_consent_is_stored_apart_and_sealed(alpha: Initiative) -> None:
    from collection.models import ContactEmail

    data = {**valid_form("AT"), "email": "zoe@example.org", "email_consent": "on"}
    assert sign(alpha, "AT", data).status_code == 303
    with alpha:
        statement = Statement.objects.get()
        contact = ContactEmail.objects.get()
    assert b"zoe@example.org" not in bytes(contact.sealed_email)
    assert open_sealed(alpha.pk, contact.pk, "EU", bytes(contact.sealed_email)) == b"zoe@example.org"
    stored = personal_data_decode(
        open_sealed(alpha.pk, statement.pk, "AT", bytes(statement.sealed_personal_data))
    )
    assert "email" not in stored and "email_consent" not in stored  # not part of the statement


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"email": "zoe@example.org"}, "Tick this box"),
        ({"email_consent": "on"}, "Enter the e-mail address"),
        ({"email": "not an address", "email_consent": "on"}, "Enter a valid value."),
    ],
)
def test_an_email_needs_its_consent_and_a_valid_address(
    alpha: Initiative, extra: dict[str, str], message: str
) -> None:
    from collection.models import ContactEmail

    response = sign(alpha, "AT", {**valid_form("AT"), **extra})
    assert response.status_code == 400 and message in response.content.decode()
    with alpha:
        assert Statement.objects.count() == 0 and ContactEmail.objects.count() == 0


def test_no_email_is_kept_for_a_duplicate(alpha: Initiative) -> None:
    from collection.models import ContactEmail

    assert sign(alpha, "AT", valid_form("AT")).status_code == 303
    data = {**valid_form("AT"), "email": "again@example.org", "email_consent": "on"}
    assert sign(alpha, "AT", data).status_code == 409
    with alpha:
        assert ContactEmail.objects.count() == 0


def test_requests_in_turn_to_two_initiatives_each_run_on_their_own_schema(
    alpha: Initiative, beta: Initiative, platform_client: Client
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    location = sign(alpha, "AT", valid_form("AT"))["Location"]
    for client, status in [(alpha, 200), (beta, 404), (alpha, 200), (None, 404), (beta, 404), (alpha, 200)]:
        answered = platform_client.get(location) if client is None else client_for(client).get(location)
        assert answered.status_code == status
    # A second request on the same schema keeps the search_path the first one set.
    with CaptureQueriesContext(connection) as queries:
        assert client_for(alpha).get(location).status_code == 200
    assert not [query for query in queries.captured_queries if "search_path" in query["sql"]]
    with CaptureQueriesContext(connection) as queries:
        assert client_for(beta).get(location).status_code == 404
    assert [query for query in queries.captured_queries if "search_path" in query["sql"]]
