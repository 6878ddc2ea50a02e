"""Reset someone's second factor: their authenticator app and backup codes are removed and their
sessions end; they set up a new one at their next sign-in (after their password). Audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandParser

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.management.commands._output import JsonCommand
from tenants.second_factor import second_factor_reset


class Command(JsonCommand):
    help = "Reset a user's second factor (TOTP device and backup codes) and end their sessions."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--user", required=True, help="The user name (an organiser's e-mail address).")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["user"].strip()
        user_model = get_user_model()
        # Looked up as the sign-in forms look it up (the user model's natural key).
        user = (
            user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first() if username else None
        )
        if user is None:
            self.refuse(options, "No user with that user name.", {"user": ["Unknown."]})
        result = second_factor_reset(user, actor=COMMAND_LINE_ACTOR)
        payload = {
            "user_id": result.user_id,
            "devices_removed": result.devices,
            "sessions_ended": result.sessions,
        }
        self.emit(
            options,
            payload,
            f"Second factor reset: {result.devices} device(s) removed, {result.sessions} session(s) ended; "
            "a new one is set up at the next sign-in.",
        )
