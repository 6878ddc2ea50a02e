"""Record the number of valid statements a Member State's competent authority certified (REQ-26), with
the authority's document if there is one; then say whether the certified counts make the initiative
valid (REQ-01). A second record for the same country replaces the first (the audit keeps it)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from tenants.audit import COMMAND_LINE_ACTOR
from tenants.certification import DOCUMENT_MAX_BYTES, CertificationError, certified_count_record
from tenants.management.commands._output import JsonCommand
from tenants.selectors import initiative_by_slug
from tenants.submission import initiative_certified_validity

WHOLE_NUMBER = re.compile(r"-?[0-9]{1,12}")


class Command(JsonCommand):
    help = "Record a Member State's certified count of valid statements (REQ-26)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--initiative", required=True, help="The initiative's slug.")
        parser.add_argument("--country", required=True, help="The Member State's EU code (EL for Greece).")
        parser.add_argument("--valid", required=True, help="The number of valid statements certified.")
        parser.add_argument("--certified-on", required=True, help="The certificate's date, YYYY-MM-DD.")
        parser.add_argument(
            "--document",
            help=f"The authority's certificate as a file (a PDF, say; at most {DOCUMENT_MAX_BYTES:,} bytes).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        raw_valid = options["valid"].strip()
        if not WHOLE_NUMBER.fullmatch(raw_valid):
            self.refuse(
                options, "--valid must be a whole number, such as 125000.", {"valid": ["Not a number."]}
            )
        try:
            certified_on = datetime.date.fromisoformat(options["certified_on"].strip())
        except ValueError:
            self.refuse(
                options, "--certified-on must be a date as YYYY-MM-DD.", {"certified_on": ["Not a date."]}
            )
        document, document_name = self._document(options)
        slug = options["initiative"]
        initiative = initiative_by_slug(slug)
        if initiative is None:
            self.refuse(options, f"No initiative with the slug {slug!r}.", {"initiative": ["Unknown."]})
        try:
            recorded = certified_count_record(
                initiative,
                country=options["country"],
                valid_statements=int(raw_valid),
                certified_on=certified_on,
                document=document,
                document_name=document_name,
                actor=COMMAND_LINE_ACTOR,
            )
        except CertificationError as error:
            self.refuse(options, str(error), {error.field: [str(error)]})
        count = recorded.count
        validity = initiative_certified_validity(initiative)
        result = {
            "initiative": initiative.slug,
            "country": count.country,
            "valid_statements": count.valid_statements,
            "certified_on": count.certified_on,
            "document_name": count.document_name,
            "document_sha256": count.document_sha256,
            "replaced": recorded.previous,
            "validity": validity.summary(),
        }
        replaced = (
            f" (replacing {recorded.previous['valid_statements']:,} of {recorded.previous['certified_on']})"
            if recorded.previous
            else ""
        )
        verdict = (
            "valid (REQ-01)."
            if validity.valid
            else "not valid yet: " + "; ".join(validity.shortfalls()) + "."
        )
        self.emit(
            options,
            result,
            f"{initiative.slug}: {count.country} certified {count.valid_statements:,} valid statements on "
            f"{count.certified_on.isoformat()}{replaced}. Certified in all: {validity.total:,}; {verdict}",
        )

    def _document(self, options: dict[str, Any]) -> tuple[bytes | None, str]:
        if not options["document"]:
            return None, ""
        path = Path(options["document"])
        try:
            size = path.stat().st_size
            if not path.is_file():
                self.refuse(options, "--document must be a file.", {"document": ["Not a file."]})
            # Checked before reading: a wrong file (a disk image, say) is not read into memory.
            if size > DOCUMENT_MAX_BYTES:
                self.refuse(
                    options,
                    f"The document is {size:,} bytes; at most {DOCUMENT_MAX_BYTES:,} bytes are accepted.",
                    {"document": ["Too large."]},
                )
            return path.read_bytes(), path.name
        except OSError as error:
            self.refuse(
                options,
                f"The document cannot be read: {error.strerror or 'unreadable'}.",
                {"document": ["Unreadable."]},
            )
