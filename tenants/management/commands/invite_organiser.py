"""Invite an organiser of an initiative by e-mail: a single-use link on the initiative's site to set a
password (tenants.organisers.organiser_invite). The link's token goes only into the message, never to
this command's output: the operator needs nothing but the confirmation that it was sent."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.management.commands._output import JsonCommand
from tenants.organisers import OrganiserError, organiser_invite
from tenants.selectors import initiative_by_slug


class Command(JsonCommand):
    help = (
        "Invite an organiser of an initiative: e-mail a single-use link on the initiative's site to set a "
        "password. The link is only in the message; the output says that it was sent, nothing more."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--initiative", required=True, help="The initiative's slug.")
        parser.add_argument("--email", required=True, help="The address to invite (never an operator's).")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["initiative"]
        initiative = initiative_by_slug(slug)
        if initiative is None:
            self.refuse(options, f"No initiative with the slug {slug!r}.", {"initiative": ["Unknown."]})
        try:
            invitation = organiser_invite(initiative, email=options["email"], actor=COMMAND_LINE_ACTOR)
        except OrganiserError as error:
            self.refuse(options, str(error), {error.field or "initiative": error.messages})
        result = {
            "initiative": initiative.slug,
            "invitation": invitation.pk,
            "sent": True,
            "expires_at": invitation.expires_at,
        }
        self.emit(
            options,
            result,
            f"{initiative.slug}: invitation {invitation.pk} sent to {invitation.email}; the link works once, "
            f"until {invitation.expires_at:%Y-%m-%d %H:%M %Z}.",
        )
