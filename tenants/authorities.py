"""The competent-authority registry (public schema): per Member State the certificate its exports are
encrypted to, registered by one step and confirmed by another that types in the fingerprint the authority
gave through a second channel. Every change is in the audit log."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.db import transaction
from django.utils import timezone

from eci_crypto.certificates import (
    CertificateError,
    certificate_fingerprint,
    certificate_load,
    fingerprint_normalised,
)
from regulation.member_states import member_state
from tenants.audit import audit_record
from tenants.models import CompetentAuthority


class AuthorityError(Exception):
    """A registration, confirmation or use the registry refuses; the message says why, for people."""


def _country_checked(country: str) -> str:
    code = country.strip().upper()
    if member_state(code) is None:
        raise AuthorityError(f"{country!r} is not a Member State's code (use EL for Greece).")
    return code


def authority_register(
    *, country: str, certificate_pem: bytes, name: str = "", actor: str
) -> CompetentAuthority:
    """Register (or replace) a Member State's authority certificate. It starts unconfirmed: no export uses
    it until `authority_confirm`."""
    code = _country_checked(country)
    try:
        certificate = certificate_load(certificate_pem)
    except CertificateError as error:
        raise AuthorityError(str(error)) from None
    if certificate.not_valid_after_utc <= timezone.now():
        raise AuthorityError(f"The certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}.")
    fingerprint = certificate_fingerprint(certificate)
    values = {
        "name": name[:200],
        "certificate_pem": certificate.public_bytes(Encoding.PEM).decode(),
        "fingerprint_sha256": fingerprint,
        "subject": certificate.subject.rfc4514_string()[:500],
        "not_before": certificate.not_valid_before_utc,
        "not_after": certificate.not_valid_after_utc,
        "registered_by": actor,
        "registered_at": timezone.now(),
        "confirmed_by": "",
        "confirmed_at": None,
    }
    with transaction.atomic():
        authority, _created = CompetentAuthority.objects.update_or_create(country=code, defaults=values)
        audit_record(actor=actor, action="authority.registered", country=code, fingerprint=fingerprint)
    return authority


def authority_confirm(*, country: str, fingerprint: str, actor: str) -> CompetentAuthority:
    """Confirm a registered certificate by its SHA-256 fingerprint (colons and case do not matter)."""
    code = _country_checked(country)
    with transaction.atomic():
        authority = CompetentAuthority.objects.select_for_update().filter(country=code).first()
        if authority is None:
            raise AuthorityError(f"No certificate is registered for {code}.")
        matches = fingerprint_normalised(fingerprint) == authority.fingerprint_sha256
        if matches:
            authority.confirmed_by = actor
            authority.confirmed_at = timezone.now()
            authority.save(update_fields=["confirmed_by", "confirmed_at"])
            audit_record(
                actor=actor,
                action="authority.confirmed",
                country=code,
                fingerprint=authority.fingerprint_sha256,
            )
    if not matches:
        # Outside the transaction: the refusal itself is kept in the audit log.
        audit_record(actor=actor, action="authority.confirmation_refused", country=code)
        # The registered fingerprint is not repeated: confirming means comparing, not copying.
        raise AuthorityError(
            f"The fingerprint does not match the certificate registered for {code}: check it with the "
            "authority, or register the certificate it really uses."
        )
    return authority


def authority_problem(authority: CompetentAuthority | None, country: str, *, at: datetime.datetime) -> str:
    """Why exports to `country` cannot go to this authority now, or "" when they can."""
    if authority is None:
        return f"{country}: no competent-authority certificate is registered."
    if authority.confirmed_at is None:
        return f"{country}: the authority's certificate is registered but its fingerprint is not confirmed."
    if authority.not_after <= at:
        return f"{country}: the competent authority's certificate expired on {authority.not_after:%Y-%m-%d}."
    if authority.not_before > at:
        return f"{country}: the authority's certificate is valid only from {authority.not_before:%Y-%m-%d}."
    return ""


def authorities_for_export(countries: list[str]) -> tuple[dict[str, CompetentAuthority], list[str]]:
    """The usable authority of each country, and one message per country that has none."""
    now = timezone.now()
    found = {
        authority.country: authority for authority in CompetentAuthority.objects.filter(country__in=countries)
    }
    problems = [
        problem for code in countries if (problem := authority_problem(found.get(code), code, at=now))
    ]
    usable = {
        code: found[code]
        for code in countries
        if code in found and not authority_problem(found[code], code, at=now)
    }
    return usable, problems


def authority_certificate(authority: CompetentAuthority) -> x509.Certificate:
    return certificate_load(authority.certificate_pem.encode())
