"""Register a Member State's competent-authority certificate, or confirm the one registered.

Two steps on purpose: `--certificate PEM` registers (unconfirmed: no export uses it yet); `--confirm
FINGERPRINT --as USERNAME` confirms it with the fingerprint the authority gave through another channel
(telephone, signed letter). The fingerprint is not printed before it is confirmed: the confirming operator
types in what the authority said, and must not be the one who registered the certificate. `--list` shows
the registry."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandParser
from django.utils import timezone

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.authorities import (
    AuthorityError,
    SameOperatorError,
    authority_confirm,
    authority_problem,
    authority_register,
    fingerprint_shown,
)
from tenants.management.commands._output import JsonCommand
from tenants.models import CompetentAuthority

AS_HELP = (
    "The operator account (username) on whose behalf you act: an active staff account with the "
    "permission to register (with --certificate; optional, else the registrant is recorded as "
    f"'{COMMAND_LINE_ACTOR}') or to confirm (with --confirm; required, and not the account that "
    "registered the certificate). The command line has no sign-in of its own, so who runs it is "
    "otherwise anonymous: --as is what the audit log, the four-eyes check and the security contact's "
    "e-mail record. Anyone with shell access to the server can name any account; prefer the operator "
    "console, where each operator signs in."
)


def authority_summary(authority: CompetentAuthority) -> dict[str, Any]:
    return {
        "country": authority.country,
        "name": authority.name,
        # None until confirmed: the confirming operator types it in, never copies it.
        "fingerprint_sha256": fingerprint_shown(authority),
        "subject": authority.subject,
        "not_before": authority.not_before.isoformat(),
        "not_after": authority.not_after.isoformat(),
        "registered_by": authority.registered_by,
        "confirmed_by": authority.confirmed_by,
        "confirmed_at": authority.confirmed_at.isoformat() if authority.confirmed_at else None,
        "usable": not authority_problem(authority, authority.country, at=timezone.now()),
    }


class Command(JsonCommand):
    help = (
        "Register (--certificate) or confirm (--confirm FINGERPRINT --as USERNAME) a competent "
        "authority's certificate; a second operator confirms what the first registered."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--country", help="The Member State's code (EL for Greece).")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--certificate", help="PEM or DER file of the authority's X.509 certificate.")
        action.add_argument(
            "--confirm",
            metavar="FINGERPRINT",
            help="The SHA-256 fingerprint the authority gave you through another channel (needs --as).",
        )
        action.add_argument("--list", action="store_true", help="Show every registered authority.")
        parser.add_argument("--name", default="", help="The authority's name (with --certificate).")
        parser.add_argument("--as", dest="as_user", metavar="USERNAME", help=AS_HELP)

    def _operator(self, options: dict[str, Any], permission: str) -> str:
        """The username --as names, once it is an active staff account with `permission`."""
        # Django stores usernames NFKC-normalised; look the typed name up the same way.
        username = unicodedata.normalize("NFKC", options["as_user"] or "").strip()
        user = get_user_model()._default_manager.filter(username=username).first() if username else None
        if user is None or not user.is_active or not user.is_staff or not user.has_perm(permission):
            self.refuse(
                options,
                "--as must name an active operator (staff) account allowed to do this; "
                f"{options['as_user']!r} is not one.",
                {"as": ["Not an active operator account with the permission."]},
            )
        return str(user.get_username())

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            authorities = [authority_summary(a) for a in CompetentAuthority.objects.order_by("country")]
            human = "\n".join(
                f"{a['country']}  {'usable' if a['usable'] else 'NOT usable'}  "
                f"{a['fingerprint_sha256'] or 'fingerprint not confirmed'}"
                for a in authorities
            )
            self.emit(options, {"authorities": authorities}, human or "No authority is registered.")
            return
        if not options["country"]:
            self.refuse(options, "--country is required with --certificate or --confirm.")
        try:
            if options["certificate"]:
                actor = COMMAND_LINE_ACTOR
                if options["as_user"] is not None:
                    actor = self._operator(options, "tenants.add_competentauthority")
                try:
                    certificate = Path(options["certificate"]).read_bytes()
                except OSError as error:
                    self.refuse(options, f"Cannot read the certificate file: {error.strerror}.")
                authority = authority_register(
                    country=options["country"], certificate_pem=certificate, name=options["name"], actor=actor
                )
                human = (
                    f"Registered the certificate of {authority.country}, valid until "
                    f"{authority.not_after:%Y-%m-%d}. No export uses it until another operator confirms "
                    "it with the fingerprint the authority gives through another channel: set_authority "
                    f"--country {authority.country} --confirm <fingerprint> --as <their username>."
                )
            else:
                # Without --as the service still sees the attempt: it refuses the anonymous actor and
                # audits the refusal.
                actor = COMMAND_LINE_ACTOR
                if options["as_user"] is not None:
                    actor = self._operator(options, "tenants.change_competentauthority")
                try:
                    authority = authority_confirm(
                        country=options["country"], fingerprint=options["confirm"], actor=actor
                    )
                except SameOperatorError as error:
                    if actor != COMMAND_LINE_ACTOR:
                        raise
                    self.refuse(
                        options,
                        f"{error} --confirm needs --as USERNAME: the operator account that confirms, "
                        "other than the one that registered the certificate (see --help).",
                        {"as": ["Required with --confirm."]},
                    )
                human = (
                    f"Confirmed the certificate of {authority.country} (SHA-256 "
                    f"{authority.fingerprint_sha256}): exports to it may now be made."
                )
        except AuthorityError as error:
            self.refuse(options, str(error))
        self.emit(options, authority_summary(authority), human)
