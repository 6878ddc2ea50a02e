"""The operator console's platform overview and per-initiative counts (tenants/overview.py): the right
aggregates, and only for verified operators."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from dateutil.relativedelta import relativedelta
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from collection.services import counts_refresh
from exports.models import ExportJob, ExportJobState
from regulation.member_states import member_states
from tenants.models import (
    Initiative,
    InitiativeState,
    KeyPurpose,
    OrganiserMembership,
    ReencryptionJob,
    ReencryptionJobState,
)
from tenants.selectors import initiative_deadlines
from tests.collection.test_counts import make_statement
from tests.second_factor import verified_login

pytestmark = pytest.mark.django_db

OVERVIEW = "/operator/overview/"


def figure(page: str, label: str) -> int:
    found = re.search(rf"<th scope=\"row\">{re.escape(label)}</th><td>(\d+)</td>", page)
    assert found, label
    return int(found.group(1))


def test_the_overview_counts_every_initiative(alpha: Initiative, beta: Initiative, operator: Client) -> None:
    with alpha:
        make_statement("DE")
        make_statement("FR")
        make_statement("FR", submitted_ago=datetime.timedelta(days=2))  # not today
        ExportJob.objects.create(country="DE", state=ExportJobState.RUNNING, requested_by="t")
        ExportJob.objects.create(country="FR", state=ExportJobState.DONE, requested_by="t")
    with beta:
        make_statement("PL")
        ExportJob.objects.create(country="PL", state=ExportJobState.RUNNING, requested_by="t")
        ExportJob.objects.create(country="AT", state=ExportJobState.QUEUED, requested_by="t")
    for sweep_state in (
        ReencryptionJobState.RUNNING,
        ReencryptionJobState.QUEUED,
        ReencryptionJobState.FINISHED,
    ):
        ReencryptionJob.objects.create(
            initiative=alpha,
            purpose=KeyPurpose.PERSONAL_DATA,
            target_version=2,
            state=sweep_state,
            requested_by="t",
            not_before=timezone.now(),
        )
    # Alpha was submitted a month ago: its statements are due for destruction this month (REQ-18).
    today = timezone.localdate()
    Initiative.objects.filter(pk=alpha.pk).update(submitted_on=today - relativedelta(months=1))
    alpha.refresh_from_db()
    due = initiative_deadlines(alpha).statements_destruction
    assert due.month == today.month

    response = operator.get(OVERVIEW)
    assert response.status_code == 200
    page = response.content.decode()
    assert figure(page, "statements of support received today") == 3
    assert figure(page, "exports running") == 2
    assert figure(page, "exports queued") == 1
    assert figure(page, "re-encryption sweeps running") == 1
    assert figure(page, "re-encryption sweeps queued") == 1
    for state in InitiativeState:
        expected = Initiative.objects.filter(state=state).count()
        assert f'<td class="overview-{state.value}">{expected}</td>' in page
    assert (
        f'{due:%Y-%m-%d}</td><td><a href="/operator/tenants/initiative/{alpha.pk}/change/">alpha</a></td>'
        in page
    )
    assert "destroy the statements (REQ-18)" in page
    # Nothing of a person: no document number, name or address of the statements.
    assert "@" not in re.sub(r"<header.*?</header>", "", page, flags=re.S).replace("mailto:", "")


def test_the_console_shows_each_initiatives_published_counts(alpha: Initiative, operator: Client) -> None:
    with alpha:
        for _ in range(3):
            make_statement("MT")
        counts_refresh()
    listing = html.unescape(operator.get("/operator/tenants/initiative/").content.decode())
    row = re.search(r"<tr[^>]*>.*?>alpha<.*?</tr>", listing, re.S)
    assert row and ">3<" in row.group(0) and ">0 of 7<" in row.group(0)
    change = html.unescape(operator.get(f"/operator/tenants/initiative/{alpha.pk}/change/").content.decode())
    malta = member_states()["MT"]
    assert (
        f"<td>Malta (MT)</td><td>3</td><td>{malta.threshold(alpha.registered_on)}</td><td>no</td>" in change
    )
    assert "3 of 1000000 statements of support; 0 of 7 Member States" in change


def test_the_overview_is_for_verified_operators_only(alpha: Initiative, platform_client: Client) -> None:
    organiser = get_user_model().objects.create_user("organiser@example.org", password="a-long-password-1")
    OrganiserMembership.objects.create(user=organiser, initiative=alpha)
    as_organiser = verified_login(Client(HTTP_HOST=platform_client.defaults["HTTP_HOST"]), organiser)
    response = as_organiser.get(OVERVIEW)
    assert response.status_code == 302 and "/operator/login/" in response["Location"]
    # A staff account signed in with its password only (no second factor) is sent to sign in too.
    staff = get_user_model().objects.create_user("half", password="a-long-password-2", is_staff=True)
    platform_client.force_login(staff)
    response = platform_client.get(OVERVIEW)
    assert response.status_code == 302 and "/operator/login/" in response["Location"]
    assert "statements of support received today" not in response.content.decode()
