"""Shared by the management commands: `--json` prints exactly one JSON object on stdout."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class JsonCommand(BaseCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")

    def emit(self, options: dict[str, Any], result: dict[str, Any], human: str) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(result, default=str, sort_keys=True))
        else:
            self.stdout.write(human)
