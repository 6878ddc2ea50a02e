"""Register a Member State's competent-authority certificate, or confirm the one registered.

Two steps on purpose: `--certificate PEM` registers (unconfirmed: no export uses it yet) and prints its
SHA-256 fingerprint; `--confirm FINGERPRINT` confirms it with the fingerprint the authority gave through
another channel (telephone, signed letter). `--list` shows the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.authorities import AuthorityError, authority_confirm, authority_problem, authority_register
from tenants.management.commands._output import JsonCommand
from tenants.models import CompetentAuthority


def authority_summary(authority: CompetentAuthority) -> dict[str, Any]:
    return {
        "country": authority.country,
        "name": authority.name,
        "fingerprint_sha256": authority.fingerprint_sha256,
        "subject": authority.subject,
        "not_before": authority.not_before.isoformat(),
        "not_after": authority.not_after.isoformat(),
        "registered_by": authority.registered_by,
        "confirmed_by": authority.confirmed_by,
        "confirmed_at": authority.confirmed_at.isoformat() if authority.confirmed_at else None,
        "usable": not authority_problem(authority, authority.country, at=timezone.now()),
    }


class Command(JsonCommand):
    help = "Register (--certificate) or confirm (--confirm) a competent authority's certificate."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--country", help="The Member State's code (EL for Greece).")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--certificate", help="PEM or DER file of the authority's X.509 certificate.")
        action.add_argument("--confirm", metavar="FINGERPRINT", help="SHA-256 fingerprint to confirm.")
        action.add_argument("--list", action="store_true", help="Show every registered authority.")
        parser.add_argument("--name", default="", help="The authority's name (with --certificate).")
        parser.add_argument("--by", default=COMMAND_LINE_ACTOR, help="Who does this, for the audit log.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            authorities = [authority_summary(a) for a in CompetentAuthority.objects.order_by("country")]
            human = "\n".join(
                f"{a['country']}  {'usable' if a['usable'] else 'NOT usable'}  {a['fingerprint_sha256']}"
                for a in authorities
            )
            self.emit(options, {"authorities": authorities}, human or "No authority is registered.")
            return
        if not options["country"]:
            self.refuse(options, "--country is required with --certificate or --confirm.")
        actor = options["by"][:150] or COMMAND_LINE_ACTOR
        try:
            if options["certificate"]:
                try:
                    certificate = Path(options["certificate"]).read_bytes()
                except OSError as error:
                    self.refuse(options, f"Cannot read the certificate file: {error.strerror}.")
                authority = authority_register(
                    country=options["country"], certificate_pem=certificate, name=options["name"], actor=actor
                )
                human = (
                    f"Registered the certificate of {authority.country}, valid until "
                    f"{authority.not_after:%Y-%m-%d}. SHA-256 fingerprint:\n{authority.fingerprint_sha256}\n"
                    "Exports use it once confirmed: compare this fingerprint with the one the authority "
                    "gave you through another channel, then run set_authority --country "
                    f"{authority.country} --confirm <fingerprint>."
                )
            else:
                authority = authority_confirm(
                    country=options["country"], fingerprint=options["confirm"], actor=actor
                )
                human = f"Confirmed the certificate of {authority.country}: exports to it may now be made."
        except AuthorityError as error:
            self.refuse(options, str(error))
        self.emit(options, authority_summary(authority), human)
