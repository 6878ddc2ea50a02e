"""Shared by the management commands: `--json` prints exactly one JSON object on stdout, on success
and on refusal alike (then with "error" and, per field, "errors"; the exit status is non-zero)."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser


class JsonCommand(BaseCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")

    def emit(self, options: dict[str, Any], result: dict[str, Any], human: str) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(result, default=str, sort_keys=True))
        else:
            self.stdout.write(human)

    def refuse(
        self, options: dict[str, Any], message: str, errors: dict[str, list[str]] | None = None
    ) -> NoReturn:
        if options.get("json"):
            self.stdout.write(json.dumps({"error": message, "errors": errors or {}}, sort_keys=True))
        raise CommandError(message)
