"""The operator console: operator staff only; lists initiatives, onboards one, shows the audit log."""

from __future__ import annotations

import datetime
import json

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from tenants.models import AuditEvent, Initiative, InitiativeState
from tests.second_factor import verified_login

pytestmark = pytest.mark.django_db


def _onboarding_form(**overrides: str) -> dict[str, str]:
    today = timezone.localdate()
    registered = today - datetime.timedelta(days=5)
    form = {
        "slug": "theta",
        "registration_number": f"ECI({registered.year})000777",
        "title": "Theta",
        "subject": "Theta's subject",
        "objectives": "Theta's objectives.",
        "register_url": "https://citizens-initiative.europa.eu/initiatives/details/2026/000777_en",
        "contact_persons": 'Eva Nowak <eva@example.eu>\n"Ørsted, Jens" <jens@example.eu>\n',
        "registered_on": registered.isoformat(),
        "collection_start": today.isoformat(),
        "language": "en",
        "organiser_email": "",
    }
    form.update(overrides)
    return form


def test_anonymous_and_non_staff_users_are_sent_to_the_login(platform_client: Client) -> None:
    assert platform_client.get("/operator/tenants/initiative/").status_code == 302
    user = get_user_model().objects.create_user("citizen", password="a-long-citizen-password")
    verified_login(platform_client, user)
    response = platform_client.get("/operator/tenants/initiative/")
    assert response.status_code == 302 and "/operator/login/" in response["Location"]


def test_operator_sees_initiatives_with_state_and_domain(operator: Client) -> None:
    page = operator.get("/operator/tenants/initiative/").content.decode()
    for slug in ("alpha", "beta"):
        initiative = Initiative.objects.get(slug=slug)
        assert f'<td class="field-primary_domain">{slug}.{settings.PLATFORM_DOMAIN}</td>' in page
        assert f'<td class="field-state">{initiative.state}</td>' in page
        assert f'<td class="field-schema_name">{initiative.schema_name}</td>' in page


def test_operator_onboards_through_a_worker_and_the_audit_log_shows_it(
    operator: Client, django_capture_on_commit_callbacks: pytest.FixtureRequest
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:  # type: ignore[operator]
        response = operator.post("/operator/tenants/initiative/onboard/", _onboarding_form())
    assert response.status_code == 302
    initiative = Initiative.objects.get(slug="theta")
    assert initiative.state == InitiativeState.PROVISIONING
    assert len(callbacks) == 1
    event = AuditEvent.objects.get(initiative=initiative, action="initiative.onboarded")
    assert event.actor == "op" and event.details["provisioning"] == "worker"

    log = operator.get("/operator/tenants/auditevent/").content.decode()
    assert "initiative.onboarded" in log and "theta" in log


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"slug": "alpha"}, "already taken"),
        ({"slug": "no spaces"}, "DNS label"),
        ({"registration_number": "12345"}, "looks like ECI(2026)000001"),
        ({"registered_on": "yesterday"}, "Enter a valid date"),
        ({"collection_start": "2999-01-01"}, "6 months after registration"),
        ({"language": "xx"}, "Select a valid choice"),
    ],
)
def test_bad_onboarding_input_is_a_400_with_the_message_and_creates_nothing(
    operator: Client, overrides: dict[str, str], message: str
) -> None:
    before = (Initiative.objects.count(), AuditEvent.objects.count())
    response = operator.post("/operator/tenants/initiative/onboard/", _onboarding_form(**overrides))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert (Initiative.objects.count(), AuditEvent.objects.count()) == before


def test_audit_log_cannot_be_edited_or_deleted(operator: Client) -> None:
    event = AuditEvent.objects.first()
    assert event is not None
    assert operator.post(f"/operator/tenants/auditevent/{event.pk}/delete/").status_code == 403
    assert operator.get("/operator/tenants/auditevent/add/").status_code == 403


def test_operator_pauses_an_initiative_and_the_change_is_audited(operator: Client) -> None:
    alpha = Initiative.objects.get(slug="alpha")
    response = operator.post(
        "/operator/tenants/initiative/", {"action": "make_paused", "_selected_action": [alpha.pk]}
    )
    assert response.status_code == 302
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.PAUSED
    assert AuditEvent.objects.filter(initiative=alpha, action="initiative.state_changed", actor="op").exists()


def test_operator_edits_are_saved_through_the_audited_service(operator: Client) -> None:
    # Before collection opens, the register data is editable here (afterwards: test_register_data.py).
    Initiative.objects.filter(slug="alpha").update(state=InitiativeState.READY, collection_opened_on=None)
    alpha = Initiative.objects.get(slug="alpha")
    form = {
        "registered_language": "en",
        "languages": "en",
        "title": '{"en": "Renamed"}',
        "subject": json.dumps(alpha.subject),
        "objectives": json.dumps(alpha.objectives),
        "register_url": alpha.register_url,
        "website_url": "https://alpha.example.org/",
        "contact_persons": json.dumps(alpha.contact_persons),
        # The read-only key inlines post empty management forms.
        **{
            f"{prefix}-{field}": "0"
            for prefix in ("keks", "data_keys")
            for field in ("TOTAL_FORMS", "INITIAL_FORMS")
        },
    }
    response = operator.post(f"/operator/tenants/initiative/{alpha.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    alpha.refresh_from_db()
    assert alpha.title == {"en": "Renamed"} and alpha.website_url == "https://alpha.example.org/"
    event = AuditEvent.objects.filter(initiative=alpha, action="initiative.details_updated").latest("id")
    assert event.actor == "op" and event.details["fields"] == ["title", "website_url"]


def test_view_only_staff_cannot_change_the_lifecycle(platform_client: Client) -> None:
    viewer = get_user_model().objects.create_user("viewer", password="a-long-viewer-password", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_initiative"))
    verified_login(platform_client, viewer)
    alpha = Initiative.objects.get(slug="alpha")
    assert platform_client.get("/operator/tenants/initiative/").status_code == 200
    response = platform_client.post(
        "/operator/tenants/initiative/", {"action": "make_paused", "_selected_action": [alpha.pk]}
    )
    assert response.status_code in (200, 302, 403)
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.COLLECTING
    assert not AuditEvent.objects.filter(initiative=alpha, actor="viewer").exists()


def test_the_initiative_page_lists_key_versions_without_key_material(operator: Client) -> None:
    from tenants.models import DataKey

    alpha = Initiative.objects.get(slug="alpha")
    page = operator.get(f"/operator/tenants/initiative/{alpha.pk}/change/").content.decode()
    assert "Data keys" in page or "data key" in page.lower()
    assert page.count("primary") >= 2
    for key in DataKey.objects.filter(initiative=alpha):
        assert bytes(key.wrapped).hex() not in page
