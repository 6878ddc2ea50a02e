"""Recompute the audit log's chain and name the first broken, missing or reordered event. Exits non-zero
on a break; when the chain holds, prints the number of events and the head (sequence and HMAC), which is
worth keeping elsewhere: a chain alone cannot show that events were cut off its end."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError

from tenants.audit import audit_chain_verify
from tenants.keyring.providers import KeyProviderError
from tenants.management.commands._output import JsonCommand


class Command(JsonCommand):
    help = "Verify the audit log's HMAC chain; name the first broken, missing or reordered event."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = audit_chain_verify()
        except KeyProviderError as error:
            self.refuse(options, f"The audit key is not available: {error}", {"key": [str(error)]})
        if report.broken is not None:
            broken = report.broken
            if options["json"]:
                self.stdout.write(
                    json.dumps(
                        {
                            "intact": False,
                            "error": broken.message,
                            "errors": {"chain": [broken.kind]},
                            "broken": {
                                "kind": broken.kind,
                                "sequence": broken.sequence,
                                "event_id": broken.event_id,
                            },
                        },
                        sort_keys=True,
                    )
                )
            raise CommandError(broken.message)
        result = {
            "intact": True,
            "events": report.events,
            "head_sequence": report.head_sequence,
            "head_hmac": report.head_hmac,
        }
        head = f" Head: sequence {report.head_sequence}, HMAC {report.head_hmac}." if report.events else ""
        self.emit(options, result, f"The audit log's chain is intact: {report.events} events.{head}")
