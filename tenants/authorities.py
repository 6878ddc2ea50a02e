"""The competent-authority registry (public schema): per Member State the certificate its exports are
encrypted to, registered by one step and confirmed by another that types in the fingerprint the authority
gave through a second channel.

Four eyes: the operator who confirms must not be the one who registered, and the fingerprint is never
shown before it is confirmed (a confirmer who could copy it would compare nothing). Every registration
and confirmation is in the audit log and e-mailed to the operator's security contact
(SECURITY_CONTACT_EMAIL), so that a certificate slipped in by one person is seen by another."""

from __future__ import annotations

import datetime
import logging
import smtplib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from eci_crypto.certificates import (
    CertificateError,
    certificate_fingerprint,
    certificate_load,
    fingerprint_normalised,
)
from regulation.member_states import member_state
from tenants.audit import COMMAND_LINE_ACTOR, SYSTEM_ACTOR, audit_record
from tenants.models import CompetentAuthority

logger = logging.getLogger(__name__)

# Actors that name no person: nobody can tell whether they are the registrant, so they cannot confirm.
ANONYMOUS_ACTORS = frozenset({"", COMMAND_LINE_ACTOR, SYSTEM_ACTOR})


class AuthorityError(Exception):
    """A registration, confirmation or use the registry refuses; the message says why, for people."""


class SameOperatorError(AuthorityError):
    """A confirmation by the operator who registered the certificate (or by nobody in particular)."""


class NotificationError(AuthorityError):
    """The security contact could not be told; the registration or confirmation was undone."""


def fingerprint_shown(authority: CompetentAuthority) -> str | None:
    """The fingerprint as pages, commands and their JSON may show it: only once it is confirmed."""
    return authority.fingerprint_sha256 if authority.confirmed_at else None


def _security_contact_notify(subject: str, lines: list[str]) -> None:
    """E-mail the operator's security contact. Names only countries, operator accounts, dates and
    certificate serials: no personal data of signatories and, before confirmation, no fingerprint."""
    send_mail(
        f"[ECI platform] {subject}",
        "\n".join([*lines, "", "If you did not expect this, check the operator audit log now."]),
        settings.DEFAULT_FROM_EMAIL,
        [settings.SECURITY_CONTACT_EMAIL],
        fail_silently=False,
    )


def _notify_or_undo(subject: str, lines: list[str]) -> None:
    """Inside the writing transaction: a change the security contact does not hear of is not made."""
    try:
        _security_contact_notify(subject, lines)
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("authority registry: security contact not reachable (%s)", type(error).__name__)
        raise NotificationError(
            "The security contact could not be e-mailed, so nothing was changed: check the e-mail "
            "settings (EMAIL_URL, SECURITY_CONTACT_EMAIL) and try again."
        ) from None


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
    serial = format(certificate.serial_number, "x")
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
        # The serial identifies the certificate for the record; the fingerprint waits for confirmation.
        audit_record(actor=actor, action="authority.registered", country=code, serial=serial)
        _notify_or_undo(
            f"certificate registered for {code}",
            [
                f"A competent-authority certificate for {code} was registered by {actor}.",
                f"Serial number: {serial}; valid {authority.not_before:%Y-%m-%d} to "
                f"{authority.not_after:%Y-%m-%d}.",
                "No export uses it until another operator confirms its fingerprint.",
            ],
        )
    return authority


def authority_confirm(*, country: str, fingerprint: str, actor: str) -> CompetentAuthority:
    """Confirm a registered certificate by its SHA-256 fingerprint (colons and case do not matter).
    `actor` must name a person other than the one who registered it (four eyes)."""
    code = _country_checked(country)
    refusal: AuthorityError | None = None
    reason = ""
    with transaction.atomic():
        authority = CompetentAuthority.objects.select_for_update().filter(country=code).first()
        if authority is None:
            raise AuthorityError(f"No certificate is registered for {code}.")
        if actor in ANONYMOUS_ACTORS or actor == authority.registered_by:
            # Checked before the fingerprint: the registrant learns nothing here.
            refusal = SameOperatorError(
                f"The certificate of {code} was registered by {authority.registered_by or 'nobody named'}"
                + (
                    ": another operator must confirm it (four eyes)."
                    if actor not in ANONYMOUS_ACTORS
                    else "; a confirmation must name the operator who makes it (four eyes)."
                )
            )
            reason = "same_operator" if actor not in ANONYMOUS_ACTORS else "no_operator_named"
        elif fingerprint_normalised(fingerprint) != authority.fingerprint_sha256:
            # The registered fingerprint is not repeated: confirming means comparing, not copying.
            refusal = AuthorityError(
                f"The fingerprint does not match the certificate registered for {code}: check it with the "
                "authority, or register the certificate it really uses."
            )
            reason = "fingerprint_mismatch"
        else:
            authority.confirmed_by = actor
            authority.confirmed_at = timezone.now()
            authority.save(update_fields=["confirmed_by", "confirmed_at"])
            audit_record(
                actor=actor,
                action="authority.confirmed",
                country=code,
                fingerprint=authority.fingerprint_sha256,
                registered_by=authority.registered_by,
            )
            _notify_or_undo(
                f"certificate confirmed for {code}",
                [
                    f"The competent-authority certificate for {code}, registered by "
                    f"{authority.registered_by}, was confirmed by {actor}.",
                    f"SHA-256 fingerprint: {authority.fingerprint_sha256}",
                    "Exports to this Member State are now encrypted to it.",
                ],
            )
    if refusal is not None:
        # Outside the transaction: the refusal itself is kept in the audit log, and nothing else changed.
        audit_record(actor=actor, action="authority.confirmation_refused", country=code, reason=reason)
        if reason == "same_operator":
            _refusal_notify(code, actor)
        raise refusal
    return authority


def _refusal_notify(code: str, actor: str) -> None:
    """A registrant confirming their own certificate is worth a look; the refusal stands even if the
    mail cannot go out (it is in the audit log)."""
    try:
        _security_contact_notify(
            f"self-confirmation refused for {code}",
            [f"{actor} tried to confirm the certificate for {code} that they registered; it was refused."],
        )
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("authority registry: security contact not reachable (%s)", type(error).__name__)


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
