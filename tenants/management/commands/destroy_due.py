"""Destroy the statements of support and e-mail addresses whose legal deadline has come (REQ-18,
REQ-19), as the daily task does; `--dry-run` only says what would go."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.destruction import DestructionReport, destroy_due
from tenants.management.commands._output import JsonCommand
from tenants.selectors import initiative_by_slug


class Command(JsonCommand):
    help = "Destroy statements and e-mail addresses that are due (REQ-18, REQ-19), then their keys."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="Say what is due; change nothing.")
        parser.add_argument(
            "--initiative", default="", help="Only this initiative (its slug); by default every one."
        )
        parser.add_argument(
            "--as-of",
            default="",
            metavar="YYYY-MM-DD",
            help="Evaluate the deadlines on this day instead of today (only with DEBUG on: for tests "
            "and demonstrations).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = None
        if options["as_of"]:
            if not settings.DEBUG:
                self.refuse(
                    options,
                    "--as-of is refused in production (DEBUG is off): deadlines are evaluated on today.",
                    {"as_of": ["Only with DEBUG on."]},
                )
            try:
                as_of = datetime.date.fromisoformat(options["as_of"])
            except ValueError:
                self.refuse(
                    options,
                    f"--as-of: {options['as_of']!r} is not a date (YYYY-MM-DD).",
                    {"as_of": ["Not a date."]},
                )
        only = None
        if options["initiative"]:
            only = initiative_by_slug(options["initiative"])
            if only is None:
                self.refuse(
                    options,
                    f"No initiative with the slug {options['initiative']!r}.",
                    {"initiative": ["Unknown."]},
                )
        report = destroy_due(as_of=as_of, dry_run=options["dry_run"], actor=COMMAND_LINE_ACTOR, only=only)
        result = report.as_dict()
        if report.another_run_active:
            result["error"] = "Another destruction run is active; nothing was done."
        elif report.failed:
            result["error"] = f"{len(report.failed)} destruction(s) failed; run again to finish them."
        self.emit(options, result, _human(report))
        if "error" in result:
            raise CommandError(str(result["error"]))


def _human(report: DestructionReport) -> str:
    lines = [f"Destruction run {report.run} as of {report.as_of}{' (dry run)' if report.dry_run else ''}:"]
    for item in report.destroyed:
        lines.append(
            f"  destroyed {item['scope']} of {item['initiative']} (deadline {item['deadline']}): "
            f"rows {item['rows_deleted']}, files {item['files_deleted']}, keys {item['keys_destroyed']}"
        )
    for item in report.would_destroy:
        lines.append(
            f"  would destroy {item['scope']} of {item['initiative']} (deadline {item['deadline']}): "
            f"{item['would_remove']}"
        )
    for item in report.held:
        lines.append(
            f"  held: {item['scope']} of {item['initiative']} (deadline {item['deadline']}, "
            f"hold {item['hold_reference']})"
        )
    for item in report.waiting:
        lines.append(f"  waiting: {item['scope']} of {item['initiative']}: {item['waiting_for']}")
    for item in report.failed:
        lines.append(f"  FAILED: {item['scope']} of {item['initiative']}: {item['error']}")
    if len(lines) == 1:
        lines.append("  nothing is due.")
    return "\n".join(lines)
