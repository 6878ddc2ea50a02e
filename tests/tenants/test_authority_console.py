"""The competent-authority registry in the operator console: register from a file, confirm by typing the
fingerprint (another operator than the registrant: four eyes), clear 400s for bad input, and only
operators with the permissions."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from eci_crypto.certificates import certificate_fingerprint, certificate_load, self_signed_certificate_create
from tenants.models import AuditEvent, CompetentAuthority, Initiative
from tests.conftest import client_for
from tests.second_factor import verified_login

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def certificate() -> bytes:
    return self_signed_certificate_create("Console test authority")[1]


@pytest.fixture
def second_operator() -> Client:
    """Another operator than `operator` ("op"), signed in on a client of their own."""
    user = get_user_model().objects.create_user(
        "op2", password="another-long-operator-password", is_staff=True, is_superuser=True
    )
    return verified_login(Client(HTTP_HOST=settings.PLATFORM_DOMAIN), user)


def register(client: Client, certificate: bytes, country: str = "CY", **extra: Any) -> Any:
    upload = SimpleUploadedFile("authority.crt", certificate, content_type="application/x-pem-file")
    return client.post(
        "/operator/tenants/competentauthority/register/",
        {"country": country, "name": "Test authority", "certificate": upload},
        **extra,
    )


def shows(content: bytes, fingerprint: str) -> bool:
    """Whether a page holds the fingerprint in any spelling (colons or not, any case)."""
    text = content.decode().upper()
    return fingerprint in text or fingerprint.replace(":", "") in text


def test_register_then_another_operator_confirms_through_the_console(
    operator: Client, second_operator: Client, certificate: bytes
) -> None:
    CompetentAuthority.objects.filter(country="CY").delete()
    fingerprint = certificate_fingerprint(certificate_load(certificate))
    answer = register(operator, certificate, follow=True)
    assert answer.status_code == 200 and b"Registered the certificate of CY" in answer.content
    assert not shows(answer.content, fingerprint), "the register answer never shows the fingerprint"
    authority = CompetentAuthority.objects.get(country="CY")
    assert authority.confirmed_at is None and authority.registered_by == "op"
    change = operator.get(f"/operator/tenants/competentauthority/{authority.pk}/change/")
    assert change.status_code == 200 and not shows(change.content, fingerprint)
    assert b"BEGIN CERTIFICATE" not in change.content, "nor the certificate it is computed from"
    listing = operator.get("/operator/tenants/competentauthority/")
    assert listing.status_code == 200 and b"CY" in listing.content
    assert not shows(listing.content, fingerprint) and b"shown once confirmed" in listing.content
    audit = operator.get("/operator/tenants/auditevent/")
    assert audit.status_code == 200 and not shows(audit.content, fingerprint)

    confirm = f"/operator/tenants/competentauthority/{authority.pk}/confirm/"
    page = second_operator.get(confirm)
    assert page.status_code == 200 and not shows(page.content, fingerprint), "typed in, never copied"
    wrong = second_operator.post(confirm, {"fingerprint": "AB"})
    assert wrong.status_code == 400 and b"does not match" in wrong.content
    right = second_operator.post(confirm, {"fingerprint": fingerprint.lower()})
    assert right.status_code == 302
    authority.refresh_from_db()
    assert authority.confirmed_by == "op2" and authority.confirmed_at is not None
    actions = set(AuditEvent.objects.filter(action__startswith="authority.").values_list("action", flat=True))
    assert {"authority.registered", "authority.confirmed", "authority.confirmation_refused"} <= actions
    listing = operator.get("/operator/tenants/competentauthority/")
    assert shows(listing.content, fingerprint), "shown once confirmed"


def test_the_registrant_cannot_confirm_in_the_console(
    operator: Client, second_operator: Client, certificate: bytes
) -> None:
    CompetentAuthority.objects.filter(country="CY").delete()
    fingerprint = certificate_fingerprint(certificate_load(certificate))
    register(operator, certificate)
    authority = CompetentAuthority.objects.get(country="CY")
    change = operator.get(f"/operator/tenants/competentauthority/{authority.pk}/change/")
    assert b"Another operator confirms this certificate" in change.content
    confirm = f"/operator/tenants/competentauthority/{authority.pk}/confirm/"
    assert b"another operator must confirm it" in operator.get(confirm).content
    before = AuditEvent.objects.filter(action="authority.confirmation_refused").count()

    refused = operator.post(confirm, {"fingerprint": fingerprint})
    assert refused.status_code == 403 and b"another operator must confirm it (four eyes)" in refused.content
    authority.refresh_from_db()
    assert authority.confirmed_at is None and authority.confirmed_by == ""
    event = AuditEvent.objects.filter(action="authority.confirmation_refused").latest("pk")
    assert AuditEvent.objects.filter(action="authority.confirmation_refused").count() == before + 1
    assert event.actor == "op" and event.details == {"country": "CY", "reason": "same_operator"}
    # The newest registration counts: once the other operator registers it anew, "op" may confirm.
    register(second_operator, certificate)
    assert operator.post(confirm, {"fingerprint": fingerprint}).status_code == 302


def test_the_security_contact_hears_of_each_registration_and_confirmation(
    operator: Client, second_operator: Client, certificate: bytes
) -> None:
    CompetentAuthority.objects.filter(country="CY").delete()
    fingerprint = certificate_fingerprint(certificate_load(certificate))
    mail.outbox.clear()
    register(operator, certificate)
    (registered,) = mail.outbox
    assert registered.to == [settings.SECURITY_CONTACT_EMAIL]
    assert registered.from_email == settings.DEFAULT_FROM_EMAIL
    assert "registered for CY" in registered.subject and "by op." in registered.body
    assert not shows(registered.body.encode(), fingerprint), "not before confirmation"

    authority = CompetentAuthority.objects.get(country="CY")
    confirm = f"/operator/tenants/competentauthority/{authority.pk}/confirm/"
    second_operator.post(confirm, {"fingerprint": "AB"})
    assert len(mail.outbox) == 1, "a mistyped fingerprint confirms nothing and mails nothing"
    second_operator.post(confirm, {"fingerprint": fingerprint})
    confirmed = mail.outbox[1]
    assert confirmed.to == [settings.SECURITY_CONTACT_EMAIL] and "confirmed for CY" in confirmed.subject
    assert "registered by op, was confirmed by op2" in confirmed.body and fingerprint in confirmed.body


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"not a certificate at all", b"certificate"), (b"", b"empty"), (b"x" * 70000, b"too large")],
)
def test_bad_certificates_are_a_400_with_a_message_and_nothing_stored(
    operator: Client, data: bytes, message: bytes
) -> None:
    CompetentAuthority.objects.filter(country="CY").delete()
    response = register(operator, data)
    assert response.status_code == 400
    assert message in response.content.lower()
    assert not CompetentAuthority.objects.filter(country="CY").exists()


def test_an_unknown_country_is_a_400(operator: Client, certificate: bytes) -> None:
    before = CompetentAuthority.objects.count()
    response = register(operator, certificate, country="GR")
    assert response.status_code == 400
    assert CompetentAuthority.objects.count() == before


def test_staff_without_the_permissions_cannot_register(platform_client: Client, certificate: bytes) -> None:
    CompetentAuthority.objects.filter(country="CY").delete()
    viewer = get_user_model().objects.create_user("viewer", password="p" * 16, is_staff=True)
    verified_login(platform_client, viewer)
    assert register(platform_client, certificate).status_code == 403
    assert not CompetentAuthority.objects.filter(country="CY").exists()


def test_an_initiative_site_has_no_registry(alpha: Initiative) -> None:
    assert client_for(alpha).get("/operator/tenants/competentauthority/").status_code == 404
