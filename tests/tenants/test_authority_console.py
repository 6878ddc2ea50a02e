"""The competent-authority registry in the operator console: register from a file, confirm by typing the
fingerprint, clear 400s for bad input, and only operators with the permissions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
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


def register(client: Client, certificate: bytes, country: str = "CY") -> Any:
    upload = SimpleUploadedFile("authority.crt", certificate, content_type="application/x-pem-file")
    return client.post(
        "/operator/tenants/competentauthority/register/",
        {"country": country, "name": "Test authority", "certificate": upload},
    )


def test_register_then_confirm_through_the_console(operator: Client, certificate: bytes) -> None:
    CompetentAuthority.objects.filter(country="CY").delete()
    response = register(operator, certificate)
    assert response.status_code == 302
    assert operator.get(response["Location"]).status_code == 200  # shows the fingerprint once registered
    authority = CompetentAuthority.objects.get(country="CY")
    assert authority.confirmed_at is None and authority.registered_by == "op"
    fingerprint = certificate_fingerprint(certificate_load(certificate))

    confirm = f"/operator/tenants/competentauthority/{authority.pk}/confirm/"
    page = operator.get(confirm)
    assert page.status_code == 200 and fingerprint.encode() not in page.content, "typed in, never copied"
    wrong = operator.post(confirm, {"fingerprint": "AB"})
    assert wrong.status_code == 400 and b"does not match" in wrong.content
    right = operator.post(confirm, {"fingerprint": fingerprint.lower()})
    assert right.status_code == 302
    authority.refresh_from_db()
    assert authority.confirmed_by == "op" and authority.confirmed_at is not None
    actions = set(AuditEvent.objects.filter(action__startswith="authority.").values_list("action", flat=True))
    assert {"authority.registered", "authority.confirmed", "authority.confirmation_refused"} <= actions
    listing = operator.get("/operator/tenants/competentauthority/")
    assert listing.status_code == 200 and b"CY" in listing.content


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
