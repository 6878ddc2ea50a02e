"""Onboard an initiative from the command line: rows, schema and domain in one transaction."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import CommandParser

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.management.commands._output import JsonCommand
from tenants.onboarding import OnboardingError, OnboardingRequest, initiative_onboard
from tenants.register import contact_person_parse
from tenants.urls import initiative_site_url


def _date(value: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


# Each field of the onboarding request by the option that gives it, so a refusal names the option.
OPTIONS = {
    "slug": "--slug",
    "registration_number": "--registration-number",
    "title": "--title",
    "subject": "--subject",
    "objectives": "--objectives",
    "register_url": "--register-url",
    "contact_persons": "--contact",
    "registered_on": "--registered-on",
    "collection_start": "--collection-start",
    "language": "--language",
    "organiser_email": "--organiser-email",
}


class Command(JsonCommand):
    help = "Onboard a registered initiative: its schema, domain and first organiser."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--slug", required=True, help="Subdomain of the initiative's site.")
        parser.add_argument("--registration-number", required=True, help="e.g. ECI(2026)000001")
        parser.add_argument("--title", required=True, help="In the registered language.")
        parser.add_argument("--subject", required=True, help="In the registered language.")
        parser.add_argument("--objectives", required=True, help="In the registered language.")
        parser.add_argument(
            "--register-url", required=True, help="The initiative's page on the Commission's register."
        )
        parser.add_argument(
            "--contact",
            required=True,
            action="append",
            dest="contacts",
            metavar='"NAME <EMAIL>"',
            help="A contact person as on the register; at least two: the representative, the substitute.",
        )
        parser.add_argument("--registered-on", required=True, help="YYYY-MM-DD")
        parser.add_argument("--collection-start", required=True, help="YYYY-MM-DD")
        parser.add_argument("--language", default="en", help="The registered language (default en).")
        parser.add_argument(
            "--organiser-email",
            default="",
            help="Invite the first organiser: a single-use link to set a password and a second factor.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dates = {field: _date(options[field]) for field in ("registered_on", "collection_start")}
        malformed = {
            field: [f"{OPTIONS[field]}: '{options[field]}' is not a date in the form YYYY-MM-DD."]
            for field, value in dates.items()
            if value is None
        }
        if malformed:
            self.refuse(
                options, "Onboarding refused. " + " ".join(m[0] for m in malformed.values()), malformed
            )
        contacts, contact_errors = [], []
        for position, text in enumerate(options["contacts"], start=1):
            try:
                contacts.append(contact_person_parse(text))
            except ValueError as error:  # the message names the position, never echoes the input
                contact_errors.append(f"--contact number {position}: {error}")
        if contact_errors:
            self.refuse(
                options,
                "Onboarding refused. " + " ".join(contact_errors),
                {"contact_persons": contact_errors},
            )
        registered_on, collection_start = dates["registered_on"], dates["collection_start"]
        assert registered_on is not None and collection_start is not None
        request = OnboardingRequest(
            slug=options["slug"].strip().lower(),
            registration_number=options["registration_number"].strip(),
            title=options["title"],
            subject=options["subject"],
            objectives=options["objectives"],
            register_url=options["register_url"].strip(),
            contact_persons=tuple(contacts),
            registered_on=registered_on,
            collection_start=collection_start,
            language=options["language"],
            organiser_email=options["organiser_email"].strip(),
        )
        try:
            initiative = initiative_onboard(request, actor=COMMAND_LINE_ACTOR, provision="now")
        except OnboardingError as error:
            problems = " ".join(
                f"{OPTIONS.get(field, field)}: {' '.join(messages)}"
                for field, messages in error.errors.items()
            )
            self.refuse(options, f"Onboarding refused. {problems}", error.errors)
        domain = initiative.get_primary_domain()
        result = {
            "slug": initiative.slug,
            "schema": initiative.schema_name,
            "domain": domain.domain if domain else None,
            "url": initiative_site_url(initiative),
            "state": initiative.state,
        }
        self.emit(options, result, f"Onboarded {initiative.slug} ({initiative.state}) at {result['url']}")
