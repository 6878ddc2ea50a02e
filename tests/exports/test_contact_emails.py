"""The organisers' download of the consenting signatories' e-mail addresses (REQ-19) at /manage/emails.csv:
the addresses signed with come back as CSV, streamed and not cached; each download is audited with the
count and never an address; only the initiative's own signed-in organisers get it; after the deadline or
once destroyed it is a 410 that says so. The deadline panel on the exports page shows the count, the
deadline and the initiative's own holds and records only.

Time travel: the initiative's dates are moved (a withdrawal months ago) rather than the clock, and the
inclusive boundary is checked on the service, which takes the day."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
from dateutil.relativedelta import relativedelta
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from collection.models import ContactEmail
from exports.contact_emails import contact_emails_csv, contact_emails_status
from tenants.holds import legal_hold_set
from tenants.models import (
    AuditEvent,
    DestructionRecord,
    DestructionScope,
    Initiative,
    InitiativeState,
    OrganiserMembership,
)
from tests.collection.signing import sign, valid_form
from tests.conftest import client_for, host_of
from tests.exports.conftest import PASSWORD
from tests.exports.organisers import EXPORTS, LOGIN, page_text
from tests.second_factor import two_step_sign_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_quick_password_hashing")]

EMAILS = "/manage/emails.csv"
ADDRESSES = ["zoe@example.org", "jurgen.orsted@bücher.example", "=formula@example.org"]


def organiser(*initiatives: Initiative, name: str = "organiser-one") -> User:
    user = get_user_model().objects.create_user(username=name, password=PASSWORD)
    for initiative in initiatives:
        OrganiserMembership.objects.create(user=user, initiative=initiative)
    return user


def signed_in(initiative: Initiative, user: User) -> Client:
    client = client_for(initiative)
    response = two_step_sign_in(client, LOGIN, user, PASSWORD)
    assert response.status_code == 303, response.content.decode()
    return client


def sign_with_emails(initiative: Initiative, addresses: list[str]) -> None:
    # One person per address (the duplicate index would refuse the same person twice), and one without.
    for number, address in enumerate([*addresses, ""]):
        data = valid_form("AT")
        data["document_number"] = f"X{number:07d}"
        if address:
            data.update(email=address, email_consent="on")
        response = sign(initiative, "AT", data)
        assert response.status_code == 303, response.content.decode()[:2000]


def rows_of(response: object) -> list[list[str]]:
    # Read to the end: the test client then closes the response itself.
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    return list(csv.reader(io.StringIO(body)))


def withdrawn_months_ago(initiative: Initiative, months: int) -> None:
    """REQ-19: the addresses are kept a month after a withdrawal."""
    Initiative.objects.filter(pk=initiative.pk).update(
        state=InitiativeState.WITHDRAWN, withdrawn_on=timezone.localdate() - relativedelta(months=months)
    )


@pytest.fixture
def alpha_organiser(alpha: Initiative) -> Iterator[Client]:
    yield signed_in(alpha, organiser(alpha))


# -- the download -------------------------------------------------------------------------------------------


def test_the_addresses_signed_with_come_back_as_csv(alpha: Initiative, alpha_organiser: Client) -> None:
    sign_with_emails(alpha, ADDRESSES)
    response = alpha_organiser.get(EMAILS)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "no-store" in response["Cache-Control"]
    today = timezone.localdate()
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="alpha-email-addresses-{today:%Y-%m-%d}.csv"'
    )
    rows = rows_of(response)
    assert rows[0] == ["email"]
    # A spreadsheet would run "=..." as a formula: it comes with a leading apostrophe.
    expected = {"zoe@example.org", "jurgen.orsted@bücher.example", "'=formula@example.org"}
    assert sorted(row[0] for row in rows[1:]) == sorted(expected) and len(rows) == 4
    # A stable order: the same file twice.
    assert rows_of(alpha_organiser.get(EMAILS)) == rows


def test_a_download_is_audited_with_the_count_and_no_address(
    alpha: Initiative, alpha_organiser: Client
) -> None:
    sign_with_emails(alpha, ADDRESSES)
    rows_of(alpha_organiser.get(EMAILS))
    (event,) = AuditEvent.objects.filter(action="emails.downloaded")
    assert (event.actor, event.initiative_id, event.details) == ("organiser-one", alpha.pk, {"count": 3})
    recorded = json.dumps([event.details, event.actor, event.initiative_slug])
    assert not any(address in recorded or address.split("@")[0] in recorded for address in ADDRESSES)


def test_with_no_addresses_the_file_is_just_the_header(alpha: Initiative, alpha_organiser: Client) -> None:
    sign_with_emails(alpha, [])  # a statement without an address
    response = alpha_organiser.get(EMAILS)
    assert response.status_code == 200
    assert rows_of(response) == [["email"]]
    assert AuditEvent.objects.get(action="emails.downloaded").details == {"count": 0}


def test_after_the_deadline_the_download_is_a_410_that_says_so(
    alpha: Initiative, alpha_organiser: Client
) -> None:
    sign_with_emails(alpha, ADDRESSES[:1])
    withdrawn_months_ago(alpha, 3)
    response = alpha_organiser.get(EMAILS)
    assert response.status_code == 410
    page = page_text(response)
    deadline = timezone.localdate() - relativedelta(months=2)
    assert "due for destruction" in page and f"{deadline:%Y-%m-%d}" in page
    assert "zoe@example.org" not in page
    assert not AuditEvent.objects.filter(action="emails.downloaded").exists()
    # The panel says so too, without a download link.
    panel = page_text(alpha_organiser.get(EXPORTS))
    assert 'id="emails-download"' not in panel and "can no longer be downloaded" in panel


def test_once_destroyed_the_download_is_a_410_that_says_so(
    alpha: Initiative, alpha_organiser: Client
) -> None:
    sign_with_emails(alpha, ADDRESSES[:1])
    now = timezone.now()
    DestructionRecord.objects.create(
        initiative=alpha,
        initiative_slug=alpha.slug,
        registration_number=alpha.registration_number,
        scope=DestructionScope.EMAILS,
        deadline=timezone.localdate(),
        actor="system",
        started_run="run1",
        finished_run="run1",
        started_at=now,
        finished_at=now,
    )
    response = alpha_organiser.get(EMAILS)
    assert response.status_code == 410
    assert "were destroyed on" in page_text(response)
    assert not AuditEvent.objects.filter(action="emails.downloaded").exists()


def test_the_deadline_day_itself_is_still_allowed(alpha: Initiative) -> None:
    withdrawn_months_ago(alpha, 0)
    alpha.refresh_from_db()
    with alpha:
        deadline = contact_emails_status(alpha, today=timezone.localdate()).deadline
        assert deadline == timezone.localdate() + relativedelta(months=1)
        assert contact_emails_status(alpha, today=deadline).available
        assert not contact_emails_status(alpha, today=deadline + relativedelta(days=1)).available


def test_anonymous_visitors_are_sent_to_the_sign_in(alpha: Initiative) -> None:
    response = client_for(alpha).get(EMAILS)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next=/manage/emails.csv"
    assert not AuditEvent.objects.filter(action="emails.downloaded").exists()


def test_another_initiatives_organiser_cannot_download(alpha: Initiative, beta: Initiative) -> None:
    sign_with_emails(alpha, ADDRESSES[:1])
    beta_organiser = organiser(beta, name="organiser-of-beta")
    # Beta's organiser cannot sign in on alpha's site...
    response = client_for(alpha).post(LOGIN, {"username": beta_organiser.username, "password": PASSWORD})
    assert response.status_code == 400
    # ...and beta's session, taken to alpha's host, is refused.
    client = signed_in(beta, beta_organiser)
    response = client.get(EMAILS, HTTP_HOST=host_of(alpha))
    assert response.status_code == 403
    assert "zoe@example.org" not in response.content.decode()
    assert not AuditEvent.objects.filter(action="emails.downloaded").exists()
    # On beta's own site, only beta's (no) addresses.
    assert rows_of(client.get(EMAILS)) == [["email"]]


def test_the_csv_writer_quotes_and_defuses(alpha: Initiative) -> None:
    text = "".join(contact_emails_csv(['"quoted"@example.org', "+plus@example.org", "plain@example.org"]))
    assert text == 'email\r\n"""quoted""@example.org"\r\n\'+plus@example.org\r\nplain@example.org\r\n'


# -- the deadline panel on the organisers' page -------------------------------------------------------------


def test_the_panel_shows_the_count_the_deadline_and_the_link(
    alpha: Initiative, alpha_organiser: Client
) -> None:
    sign_with_emails(alpha, ADDRESSES[:2])
    page = page_text(alpha_organiser.get(EXPORTS))
    with alpha:
        status = contact_emails_status(alpha, today=timezone.localdate())
        assert ContactEmail.objects.count() == 2
    assert "2 supporters gave an e-mail address" in page
    assert f'href="{EMAILS}"' in page and "(CSV, 2 addresses)" in page
    assert f"{status.deadline:%Y-%m-%d}" in page
    assert "Statements of support destroyed by (REQ-18)" in page
    assert 'id="legal-hold">none' in page


def test_alphas_organisers_see_only_alphas_hold_and_records(
    alpha: Initiative, beta: Initiative, alpha_organiser: Client
) -> None:
    legal_hold_set(beta, reason="Beta's proceedings", reference="BETA-REF-1", actor="op")
    legal_hold_set(alpha, reason="Alpha's confidential reason", reference="ALPHA-REF-1", actor="op")
    now = timezone.now()
    DestructionRecord.objects.create(
        initiative=beta,
        initiative_slug=beta.slug,
        registration_number=beta.registration_number,
        scope=DestructionScope.EMAILS,
        deadline=timezone.localdate(),
        actor="system",
        started_run="beta-run",
        started_at=now,
        rows_deleted={"contact_emails_of_beta": 7},
    )
    page = page_text(alpha_organiser.get(EXPORTS))
    assert "ALPHA-REF-1" in page and "postponed by a legal hold" in page
    assert "Alpha's confidential reason" not in page  # the reference only
    assert "BETA-REF-1" not in page and "contact_emails_of_beta" not in page
    assert "Nothing has been destroyed yet." in page


def test_the_panel_warns_as_the_submission_deadline_nears(alpha: Initiative, alpha_organiser: Client) -> None:
    page = page_text(alpha_organiser.get(EXPORTS))
    assert 'id="submission-warning"' not in page and "3 months after collection closes" in page
    # Closed nearly 3 months ago: the REQ-25 deadline is within the warning period.
    closed_on = timezone.localdate() - relativedelta(months=3) + relativedelta(days=10)
    Initiative.objects.filter(pk=alpha.pk).update(state=InitiativeState.CLOSED, closed_on=closed_on)
    page = page_text(alpha_organiser.get(EXPORTS))
    assert 'id="submission-warning"' in page and "Soon due:" in page
    assert f"{closed_on + relativedelta(months=3):%Y-%m-%d}" in page
