"""Change an initiative's state from the command line: pause or resume collection, close it (early, too),
withdraw it or mark it submitted. The lifecycle's one service decides (tenants.services)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.management.commands._output import JsonCommand
from tenants.models import InitiativeState
from tenants.selectors import initiative_by_slug
from tenants.services import TransitionError, initiative_transition

# What an operator may ask for here; provisioning and destruction have their own paths.
STATES_ON_REQUEST = (
    InitiativeState.PAUSED,
    InitiativeState.COLLECTING,
    InitiativeState.CLOSED,
    InitiativeState.WITHDRAWN,
    InitiativeState.SUBMITTED,
)
REASON_MAX_LENGTH = 500


class Command(JsonCommand):
    help = "Change an initiative's state: paused, collecting, closed, withdrawn or submitted."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--initiative", required=True, help="The initiative's slug.")
        parser.add_argument("--to", required=True, help=f"The new state: {', '.join(STATES_ON_REQUEST)}.")
        parser.add_argument(
            "--reason", default="", help="Why, for the audit log (no personal data; at most 500 characters)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug, reason = options["initiative"], options["reason"].strip()
        to_state = options["to"].strip().lower()
        if to_state not in STATES_ON_REQUEST:
            self.refuse(
                options,
                f"{options['to']!r} is not a state to change to; use one of {', '.join(STATES_ON_REQUEST)}.",
                {"to": ["Unknown state."]},
            )
        if len(reason) > REASON_MAX_LENGTH:
            self.refuse(
                options,
                f"The reason may be at most {REASON_MAX_LENGTH} characters long.",
                {"reason": ["Too long."]},
            )
        initiative = initiative_by_slug(slug)
        if initiative is None:
            self.refuse(options, f"No initiative with the slug {slug!r}.", {"initiative": ["Unknown."]})
        from_state = str(initiative.state)
        try:
            initiative_transition(initiative, to_state, actor=COMMAND_LINE_ACTOR, reason=reason)
        except TransitionError as error:
            self.refuse(options, str(error), {"to": [str(error)]})
        result = {
            "initiative": initiative.slug,
            "from": from_state,
            "to": str(initiative.state),
            "reason": reason,
            "changed_at": initiative.state_changed_at,
        }
        self.emit(options, result, f"{initiative.slug}: {from_state} -> {initiative.state}.")
