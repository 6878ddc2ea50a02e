"""The platform audit log: one append-only row per change, who did it and what, with ids and states,
never personal data."""

from __future__ import annotations

from tenants.models import AuditEvent, Initiative

# Actors that are not a signed-in person.
SYSTEM_ACTOR = "system"
COMMAND_LINE_ACTOR = "command-line"


def audit_record(
    *, actor: str, action: str, initiative: Initiative | None = None, **details: object
) -> AuditEvent:
    """Append one row to the platform audit log. `details` hold ids and states, never personal data."""
    return AuditEvent.objects.create(
        actor=actor,
        action=action,
        initiative=initiative,
        initiative_slug=initiative.slug if initiative else "",
        details=details,
    )
