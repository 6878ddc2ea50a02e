"""The Annex VII pages (REQ-28): funding sources entered by the organisers on /manage/funding/, and the
submission on /manage/submission/ (printable) and /manage/submission.json, also on the operator console.
Bad input is a 400 with the form and its messages and writes nothing; another initiative's organisers
cannot see or change any of it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from tenants.certification import FundingSourcesError, certified_count_record, initiative_funding_sources_set
from tenants.models import AuditEvent, Initiative, InitiativeState, OrganiserMembership
from tenants.services import initiative_transition
from tests.conftest import client_for
from tests.exports.organisers import page_text, signed_in
from tests.second_factor import verified_login
from tests.tenants.certificates import VALID_COUNTS, certify_valid

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_quick_password_hashing")]

FUNDING = "/manage/funding/"
SUBMISSION = "/manage/submission/"
SUBMISSION_JSON = "/manage/submission.json"
PASSWORD = "a long organiser passphrase 42"  # as tests/exports/conftest.py


def organiser_of(*initiatives: Initiative) -> User:
    user = get_user_model().objects.create_user(
        username=f"organiser-{uuid.uuid4().hex[:8]}@example.org", password=PASSWORD
    )
    for initiative in initiatives:
        OrganiserMembership.objects.create(user=user, initiative=initiative)
    return user


def rows(*entries: tuple[str, str], initial: int = 0, delete: tuple[int, ...] = ()) -> dict[str, str]:
    """The funding formset as the page posts it."""
    data = {
        "form-TOTAL_FORMS": str(len(entries)),
        "form-INITIAL_FORMS": str(initial),
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "200",
    }
    for number, (source, amount) in enumerate(entries):
        data[f"form-{number}-source"] = source
        data[f"form-{number}-amount_eur"] = amount
        if number in delete:
            data[f"form-{number}-DELETE"] = "on"
    return data


def funding_of(initiative: Initiative) -> list[dict[str, str]]:
    initiative.refresh_from_db()
    return list(initiative.funding_sources)


@pytest.fixture
def alpha_closed(alpha: Initiative) -> Initiative:
    Initiative.objects.filter(pk=alpha.pk).update(
        state=InitiativeState.CLOSED,
        closed_on=timezone.localdate(),
        contact_persons=[
            {"name": "Zoë Ørsted", "email": "zoe@example.org"},
            {"name": "Jan Nowak", "email": "jan@example.org"},
        ],
    )
    alpha.refresh_from_db()
    return alpha


# -- funding sources -----------------------------------------------------------------------------------------


def test_organisers_add_edit_and_remove_funding_sources(alpha: Initiative) -> None:
    client = signed_in(alpha, organiser_of(alpha))
    page = page_text(client.get(FUNDING))
    assert "Sources of support and funding" in page and "Entered so far: 0 sources" in page

    response = client.post(FUNDING, rows(("Foundation Europa", "12000"), ("", ""), ("Volunteers' work", "0")))
    assert (response.status_code, response["Location"]) == (303, FUNDING)
    assert funding_of(alpha) == [
        {"source": "Foundation Europa", "amount_eur": "12000.00"},
        {"source": "Volunteers' work", "amount_eur": "0.00"},
    ]
    page = page_text(client.get(FUNDING))
    assert "Funding sources saved: 2, in all 12000.00 euros." in page
    assert 'value="Foundation Europa"' in page and "Entered so far: 2 sources, 12000.00 euros" in page

    # Edit the first, remove the second, add one.
    edited = rows(
        ("Foundation Europa", "12500.50"),
        ("Volunteers' work", "0"),
        ("Crowdfunding", "830.25"),
        initial=2,
        delete=(1,),
    )
    assert client.post(FUNDING, edited).status_code == 303
    assert funding_of(alpha) == [
        {"source": "Foundation Europa", "amount_eur": "12500.50"},
        {"source": "Crowdfunding", "amount_eur": "830.25"},
    ]
    first, second = AuditEvent.objects.filter(
        initiative=alpha, action="initiative.funding_sources_set"
    ).order_by("id")
    assert first.details == {
        "sources": 2,
        "total_eur": "12000.00",
        "previous_sources": 0,
        "previous_total_eur": "0.00",
    }
    assert second.details["total_eur"] == "13330.75"
    assert "Foundation" not in str(second.details), "funders may be people: no names in the audit"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (rows(("Foundation", "-1")), "The amount cannot be negative."),
        (rows(("Foundation", "12,50")), "The amount must be a number of euros"),
        (rows(("Foundation", "1.001")), "at most two decimals"),
        (rows(("Foundation", "1e400")), "at most 999,999,999.99 euros"),
        (rows(("Foundation", "")), "Give the amount in euros"),
        (rows(("", "100")), "Name the source"),
        (rows(("x" * 201, "100")), "at most 200 characters"),
        (rows(("Foundation", "1"), ("foundation", "2")), "listed twice"),
        ({"form-0-source": "Foundation", "form-0-amount_eur": "1"}, "ManagementForm data is missing"),
        (rows(*[(f"Source {n}", "1") for n in range(201)]), "Please submit at most 200 forms."),
    ],
)
def test_bad_funding_input_is_a_400_with_the_form_and_writes_nothing(
    alpha: Initiative, data: dict[str, str], message: str
) -> None:
    initiative_funding_sources_set(alpha, [{"source": "Kept", "amount_eur": "5"}], actor="tester")
    client = signed_in(alpha, organiser_of(alpha))
    events = AuditEvent.objects.count()  # after the account and sign-in events
    response = client.post(FUNDING, data)
    assert response.status_code == 400
    page = page_text(response)
    assert "The funding sources were not saved" in page and message in page
    assert "<title>Error: Funding sources" in page
    assert funding_of(alpha) == [{"source": "Kept", "amount_eur": "5.00"}]
    assert AuditEvent.objects.count() == events


def test_funding_sources_are_fixed_once_submitted(alpha_closed: Initiative) -> None:
    certify_valid(alpha_closed)
    Initiative.objects.filter(pk=alpha_closed.pk).update(state=InitiativeState.SUBMITTED)
    client = signed_in(alpha_closed, organiser_of(alpha_closed))
    assert "can no longer change" in page_text(client.get(FUNDING))
    response = client.post(FUNDING, rows(("Foundation", "1")))
    assert response.status_code == 400
    assert "The initiative is submitted: its funding sources can change only while" in page_text(response)
    assert funding_of(alpha_closed) == []


def test_the_service_refuses_what_a_form_would_not_send(alpha: Initiative) -> None:
    bad: list[dict[str, Any]] = [
        {"source": "A", "amount_eur": "NaN"},
        {"source": "B\x00", "amount_eur": 1},
        {"source": "C", "amount_eur": True},
        {"amount_eur": Decimal("1")},
    ]
    with pytest.raises(FundingSourcesError) as refusal:
        initiative_funding_sources_set(alpha, bad, actor="tester")
    assert refusal.value.messages == [
        "Row 1: the amount must be a number of euros, such as 1500 or 1500.50.",
        "Row 2: the source contains control characters.",
        "Row 3: the amount must be a number of euros, such as 1500 or 1500.50.",
        "Row 4: name the source.",
    ]
    assert funding_of(alpha) == []


# -- the submission ------------------------------------------------------------------------------------------


def test_the_submission_as_json_has_every_annex_vii_field(alpha_closed: Initiative) -> None:
    certify_valid(alpha_closed)
    initiative_funding_sources_set(
        alpha_closed, [{"source": "Foundation Europa", "amount_eur": "12000"}], actor="tester"
    )
    client = signed_in(alpha_closed, organiser_of(alpha_closed))
    response = client.get(SUBMISSION_JSON)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    data = response.json()
    today = timezone.localdate().isoformat()
    assert data["title"] == "Initiative alpha" and data["registered_language"] == "en"
    assert data["registration_number"] == alpha_closed.registration_number
    assert data["registered_on"] == alpha_closed.registered_on.isoformat()
    assert data["collection_period"] == {"start": alpha_closed.collection_start.isoformat(), "end": today}
    assert data["total_valid"] == 1_000_000
    assert [state["code"] for state in data["member_states"]] == sorted(VALID_COUNTS)
    netherlands = next(state for state in data["member_states"] if state["code"] == "NL")
    assert netherlands == {
        "code": "NL",
        "name": "Netherlands",
        "certified": 22320,
        "certified_on": today,
        "threshold": 22320,
        "reached": True,
        "document_sha256": "",
    }
    assert data["validity"]["valid"] is True and data["validity"]["shortfalls"] == []
    assert data["contact_persons"] == [
        {"name": "Zoë Ørsted", "email": "zoe@example.org"},
        {"name": "Jan Nowak", "email": "jan@example.org"},
    ]
    assert data["funding_sources"] == [{"source": "Foundation Europa", "amount_eur": "12000.00"}]
    assert data["funding_total_eur"] == "12000.00"
    assert data["submitted_on"] is None

    initiative_transition(alpha_closed, InitiativeState.SUBMITTED, actor="tester")
    assert client.get(SUBMISSION_JSON).json()["submitted_on"] == today


def test_the_printable_page_shows_the_same_and_what_is_short(alpha_closed: Initiative) -> None:
    client = signed_in(alpha_closed, organiser_of(alpha_closed))
    page = page_text(client.get(SUBMISSION))
    assert "Not yet valid" in page and "1,000,000 certified statements short of 1,000,000" in page
    assert "No certificate of a competent authority has been recorded yet." in page

    certify_valid(alpha_closed)
    certified_count_record(
        alpha_closed,
        country="BE",
        valid_statements=100,
        certified_on=timezone.localdate(),
        document=None,
        document_name="",
        actor="tester",
    )
    initiative_funding_sources_set(
        alpha_closed, [{"source": "Crowdfunding", "amount_eur": "830.25"}], actor="t"
    )
    response = client.get(SUBMISSION)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = page_text(response)
    assert "meet the conditions of Article 3(1)" in page
    assert '<dd lang="en" id="title">Initiative alpha</dd>' in page
    assert f'<dd id="registration-number">{alpha_closed.registration_number}</dd>' in page
    assert '<strong id="total-valid">1,000,100</strong>' in page
    assert '<th scope="row">Belgium (BE)</th>' in page and "<td>15,840</td>" in page and "<td>no</td>" in page
    assert '<th scope="row">Netherlands (NL)</th>' in page and "<td>yes</td>" in page
    assert "Zoë Ørsted <zoe@example.org>" in page
    assert "<td>Crowdfunding</td><td>830.25</td>" in page and '<td id="funding-total">830.25</td>' in page
    assert "not yet submitted" in page


# -- another initiative's organisers -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [FUNDING, SUBMISSION, SUBMISSION_JSON])
def test_betas_organisers_cannot_see_alphas_pages(
    alpha_closed: Initiative, beta: Initiative, path: str
) -> None:
    initiative_funding_sources_set(alpha_closed, [{"source": "Secret sponsor", "amount_eur": "1"}], actor="t")
    on_beta = signed_in(beta, organiser_of(beta))
    on_alpha = client_for(alpha_closed)  # with beta's session, brought to alpha's site
    on_alpha.cookies[settings.SESSION_COOKIE_NAME] = on_beta.cookies[settings.SESSION_COOKIE_NAME].value

    response = on_alpha.get(path)
    assert response.status_code == 403
    assert "Secret sponsor" not in page_text(response) and "zoe@example.org" not in page_text(response)
    assert on_alpha.post(FUNDING, rows(("Hijack", "1"))).status_code == 403
    assert funding_of(alpha_closed) == [{"source": "Secret sponsor", "amount_eur": "1.00"}]
    # On its own site beta's organiser sees beta's submission, never alpha's.
    own = on_beta.get(SUBMISSION_JSON).json()
    assert own["registration_number"] == beta.registration_number and own["funding_sources"] == []


def test_an_organiser_of_beta_signing_in_on_alphas_site_is_refused(
    alpha: Initiative, beta: Initiative
) -> None:
    client = client_for(alpha)
    outsider = organiser_of(beta)
    response = client.post("/manage/login/", {"username": outsider.username, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get(SUBMISSION_JSON).status_code == 302  # to the sign-in page


def test_anonymous_visitors_are_sent_to_sign_in(alpha: Initiative) -> None:
    for path in (FUNDING, SUBMISSION, SUBMISSION_JSON):
        response = client_for(alpha).get(path)
        assert response.status_code == 302 and "/manage/login/" in response["Location"]


# -- the operator console ------------------------------------------------------------------------------------


def test_operators_see_the_submission_from_the_initiatives_page(
    operator: Client, alpha_closed: Initiative
) -> None:
    certify_valid(alpha_closed)
    change = page_text(operator.get(f"/operator/tenants/initiative/{alpha_closed.pk}/change/"))
    assert f'href="/operator/tenants/initiative/{alpha_closed.pk}/submission/"' in change

    page = page_text(operator.get(f"/operator/tenants/initiative/{alpha_closed.pk}/submission/"))
    assert '<strong id="total-valid">1,000,000</strong>' in page and "Zoë Ørsted" in page
    data = operator.get(f"/operator/tenants/initiative/{alpha_closed.pk}/submission.json").json()
    assert data["registration_number"] == alpha_closed.registration_number and data["validity"]["valid"]
    assert operator.get("/operator/tenants/initiative/999999/submission.json").status_code == 404
    assert operator.get("/operator/tenants/initiative/x/submission/").status_code == 404


def test_only_operator_staff_reach_the_console_submission(platform_client: Client, alpha: Initiative) -> None:
    url = f"/operator/tenants/initiative/{alpha.pk}/submission.json"
    assert platform_client.get(url).status_code == 302
    verified_login(platform_client, organiser_of(alpha))  # an organiser is not operator staff
    response = platform_client.get(url)
    assert response.status_code == 302 and "/operator/login/" in response["Location"]
    staff = get_user_model().objects.create_user("op-plain", password="a-long-password-x", is_staff=True)
    verified_login(platform_client, staff)  # staff without the view permission
    assert platform_client.get(url).status_code == 404
