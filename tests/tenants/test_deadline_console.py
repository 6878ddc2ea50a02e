"""The operator console's deadlines (REQ-18, REQ-19, REQ-25): the initiatives' list shows each one's next
deadlines, its active hold and whether destruction records exist; an initiative's page shows them in
detail with its holds and records; holds are set and lifted from the console through the services (bad
input: 400 with the message, nothing written); holds and destruction records have read-only lists. Only
operator staff get any of it."""

from __future__ import annotations

import html

import pytest
from dateutil.relativedelta import relativedelta
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from tenants.holds import legal_hold_lift, legal_hold_set
from tenants.models import (
    AuditEvent,
    DestructionRecord,
    DestructionScope,
    Initiative,
    InitiativeState,
    LegalHold,
)
from tenants.selectors import initiative_deadlines
from tests.second_factor import verified_login

pytestmark = pytest.mark.django_db

LIST = "/operator/tenants/initiative/"


def _hold_url(initiative: Initiative, lift: bool = False) -> str:
    return f"{LIST}{initiative.pk}/hold/{'lift/' if lift else ''}"


def _text(response: object) -> str:
    return html.unescape(response.content.decode())  # type: ignore[attr-defined]


def _record(initiative: Initiative, scope: str, *, finished: bool = True) -> DestructionRecord:
    now = timezone.now()
    return DestructionRecord.objects.create(
        initiative=initiative,
        initiative_slug=initiative.slug,
        registration_number=initiative.registration_number,
        scope=scope,
        deadline=timezone.localdate(),
        actor="system",
        started_run="run-1",
        finished_run="run-1" if finished else "",
        started_at=now,
        finished_at=now if finished else None,
        rows_deleted={"contact_emails": 3},
    )


def _row(page: str, initiative: Initiative) -> str:
    start = page.index(f">{initiative.slug}</a>")
    return page[start : page.index("</tr>", start)]


# -- the list -----------------------------------------------------------------------------------------------


def test_the_list_shows_each_initiatives_deadlines_hold_and_records(
    operator: Client, alpha: Initiative, beta: Initiative
) -> None:
    legal_hold_set(alpha, reason="Court order", reference="C-77/26", actor="op")
    _record(beta, DestructionScope.EMAILS)
    page = _text(operator.get(LIST))
    for initiative in (alpha, beta):
        deadlines = initiative_deadlines(initiative)
        row = _row(page, initiative)
        assert (
            f'<td class="field-statements_deadline">{deadlines.statements_destruction:%Y-%m-%d}</td>' in row
        )
        assert '<td class="field-submission_deadline">\N{EN DASH}</td>' in row  # still collecting
    assert f'<td class="field-emails_deadline">{initiative_deadlines(alpha).emails_destruction:%Y-%m-%d}' in (
        _row(page, alpha)
    )
    assert '<td class="field-legal_hold">C-77/26</td>' in _row(page, alpha)
    assert '<td class="field-legal_hold">\N{EN DASH}</td>' in _row(page, beta)
    assert 'field-destruction_recorded"><img src="/static/admin/img/icon-no.svg"' in _row(page, alpha)
    assert 'field-destruction_recorded"><img src="/static/admin/img/icon-yes.svg"' in _row(page, beta)
    assert '<td class="field-emails_deadline">destroyed ' in _row(page, beta)


def test_the_list_warns_when_the_submission_deadline_nears(operator: Client, alpha: Initiative) -> None:
    today = timezone.localdate()
    closed_on = today - relativedelta(months=3) + relativedelta(days=5)
    Initiative.objects.filter(pk=alpha.pk).update(state=InitiativeState.CLOSED, closed_on=closed_on)
    row = _row(_text(operator.get(LIST)), alpha)
    due = closed_on + relativedelta(months=3)
    assert f'<strong class="deadline-warning">⚠ {due:%Y-%m-%d} (due soon)</strong>' in row

    Initiative.objects.filter(pk=alpha.pk).update(closed_on=today - relativedelta(months=4))
    assert "(overdue)</strong>" in _row(_text(operator.get(LIST)), alpha)

    # Far from it: the date alone.
    Initiative.objects.filter(pk=alpha.pk).update(closed_on=today)
    row = _row(_text(operator.get(LIST)), alpha)
    assert "deadline-warning" not in row
    assert f'<td class="field-submission_deadline">{today + relativedelta(months=3):%Y-%m-%d}</td>' in row


# -- the change page ----------------------------------------------------------------------------------------


def test_the_change_page_shows_the_panel_holds_and_records(operator: Client, alpha: Initiative) -> None:
    hold = legal_hold_set(alpha, reason="Court order", reference="C-1", actor="op")
    _record(alpha, DestructionScope.EMAILS, finished=False)
    page = _text(operator.get(f"{LIST}{alpha.pk}/change/"))
    deadlines = initiative_deadlines(alpha)
    assert f"{deadlines.statements_destruction:%Y-%m-%d}, postponed by the legal hold" in page
    assert f"{deadlines.emails_destruction:%Y-%m-%d}" in page
    assert "active: reference C-1, set by op" in page and f'href="{_hold_url(alpha, lift=True)}"' in page
    assert "e-mail addresses (REQ-19): started" in page and "not finished" in page
    # The holds and records in detail, lifted holds too.
    legal_hold_lift(alpha, actor="op2", reason="appeal dismissed")
    page = _text(operator.get(f"{LIST}{alpha.pk}/change/"))
    assert f"<td>{hold.reference}</td><td>Court order</td><td>op</td>" in page
    assert "<td>op2</td>" in page and "<td>appeal dismissed</td>" in page
    assert "<td>contact_emails: 3</td>" in page and "<td>not finished</td>" in page
    assert f'none — <a href="{_hold_url(alpha)}">set a legal hold</a>' in page


def test_the_change_page_offers_to_set_a_hold_when_none_is_active(
    operator: Client, alpha: Initiative
) -> None:
    page = _text(operator.get(f"{LIST}{alpha.pk}/change/"))
    assert f'none — <a href="{_hold_url(alpha)}">set a legal hold</a>' in page


# -- setting and lifting a hold -----------------------------------------------------------------------------


def test_an_operator_sets_and_lifts_a_hold_from_the_console(operator: Client, alpha: Initiative) -> None:
    assert operator.get(_hold_url(alpha)).status_code == 200
    response = operator.post(_hold_url(alpha), {"reference": "C-9/26", "reason": "Criminal investigation"})
    assert (response.status_code, response["Location"]) == (302, f"{LIST}{alpha.pk}/change/")
    hold = LegalHold.objects.get(initiative=alpha)
    assert (hold.reference, hold.reason, hold.set_by, hold.is_active) == (
        "C-9/26",
        "Criminal investigation",
        "op",
        True,
    )
    assert AuditEvent.objects.get(action="legal_hold.set").details["hold"] == hold.pk

    assert "reference C-9/26" in _text(operator.get(_hold_url(alpha, lift=True)))
    response = operator.post(_hold_url(alpha, lift=True), {"reason": ""})
    assert response.status_code == 302
    hold.refresh_from_db()
    assert not hold.is_active and hold.lifted_by == "op" and hold.lift_reason == ""
    assert AuditEvent.objects.get(action="legal_hold.lifted").details["hold"] == hold.pk


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "This field is required."),
        ({"reference": "C-1", "reason": ""}, "This field is required."),
        ({"reference": "", "reason": "Court order"}, "This field is required."),
        ({"reference": "   ", "reason": "   "}, "This field is required."),
        ({"reference": "x" * 201, "reason": "Court order"}, "at most 200 characters"),
        ({"reference": "C-1", "reason": "x" * 1001}, "at most 1000 characters"),
    ],
)
def test_bad_input_on_the_set_form_is_a_400_and_writes_nothing(
    operator: Client, alpha: Initiative, data: dict[str, str], message: str
) -> None:
    response = operator.post(_hold_url(alpha), data)
    assert response.status_code == 400
    assert message in _text(response)
    assert not LegalHold.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="legal_hold").exists()


def test_a_second_hold_and_a_lift_without_a_hold_are_400s(operator: Client, alpha: Initiative) -> None:
    response = operator.post(_hold_url(alpha, lift=True), {"reason": "no hold"})
    assert response.status_code == 400 and "alpha has no active legal hold to lift." in _text(response)
    assert not AuditEvent.objects.filter(action__startswith="legal_hold").exists()

    legal_hold_set(alpha, reason="Court order", reference="C-1", actor="op")
    response = operator.post(_hold_url(alpha), {"reference": "C-2", "reason": "Another"})
    assert response.status_code == 400 and "already has an active legal hold (reference C-1" in _text(
        response
    )
    assert list(LegalHold.objects.values_list("reference", flat=True)) == ["C-1"]

    response = operator.post(_hold_url(alpha, lift=True), {"reason": "x" * 1001})
    assert response.status_code == 400 and "at most 1000 characters" in _text(response)
    assert LegalHold.objects.get().is_active


def test_a_destroyed_initiative_cannot_be_held_from_the_console(operator: Client, alpha: Initiative) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(state=InitiativeState.DESTROYED)
    response = operator.post(_hold_url(alpha), {"reference": "C-1", "reason": "Court order"})
    assert response.status_code == 400 and "alpha is destroyed" in _text(response)
    assert not LegalHold.objects.exists()


def test_an_unknown_initiative_is_a_404(operator: Client) -> None:
    assert operator.get(f"{LIST}999999/hold/").status_code == 404
    assert operator.post(f"{LIST}999999/hold/lift/", {}).status_code == 404


# -- who may -----------------------------------------------------------------------------------------------


def test_anonymous_and_non_staff_users_get_nothing(platform_client: Client, alpha: Initiative) -> None:
    urls = [_hold_url(alpha), _hold_url(alpha, lift=True), "/operator/tenants/legalhold/"]
    urls.append("/operator/tenants/destructionrecord/")
    for url in urls:
        response = platform_client.get(url)
        assert response.status_code == 302 and "/operator/login/" in response["Location"]
    user = get_user_model().objects.create_user("citizen", password="a-long-citizen-password")
    verified_login(platform_client, user)
    for url in urls:
        response = platform_client.get(url)
        assert response.status_code == 302 and "/operator/login/" in response["Location"]
    response = platform_client.post(_hold_url(alpha), {"reference": "C-1", "reason": "Court order"})
    assert response.status_code == 302
    assert not LegalHold.objects.exists()


def test_staff_without_the_hold_permissions_cannot_set_or_lift(
    platform_client: Client, alpha: Initiative
) -> None:
    user = get_user_model().objects.create_user("viewer", password="a-long-viewer-password", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_initiative"))
    verified_login(platform_client, user)
    assert platform_client.post(_hold_url(alpha), {"reference": "C-1", "reason": "R"}).status_code == 403
    assert not LegalHold.objects.exists()
    legal_hold_set(alpha, reason="Court order", reference="C-1", actor="op")
    assert platform_client.post(_hold_url(alpha, lift=True), {}).status_code == 403
    assert LegalHold.objects.get().is_active

    user.user_permissions.add(Permission.objects.get(codename="change_legalhold"))
    user = get_user_model().objects.get(pk=user.pk)  # permissions are cached on the instance
    verified_login(platform_client, user)
    assert platform_client.post(_hold_url(alpha, lift=True), {}).status_code == 302
    assert not LegalHold.objects.get().is_active


# -- the read-only lists ------------------------------------------------------------------------------------


def test_holds_and_destruction_records_are_listed_read_only(operator: Client, alpha: Initiative) -> None:
    hold = legal_hold_set(alpha, reason="Court order", reference="C-5", actor="op")
    record = _record(alpha, DestructionScope.STATEMENTS)
    holds = _text(operator.get("/operator/tenants/legalhold/"))
    assert "C-5" in holds and "Add legal hold" not in holds
    records = _text(operator.get("/operator/tenants/destructionrecord/"))
    assert "statements of support (REQ-18)" in records and "Add destruction record" not in records
    # Viewable, never changeable: a POST to the change page is refused.
    assert operator.get(f"/operator/tenants/legalhold/{hold.pk}/change/").status_code == 200
    response = operator.post(f"/operator/tenants/legalhold/{hold.pk}/change/", {"reference": "changed"})
    assert response.status_code == 403
    assert (
        operator.post(f"/operator/tenants/destructionrecord/{record.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    hold.refresh_from_db()
    assert hold.reference == "C-5" and DestructionRecord.objects.filter(pk=record.pk).exists()
