"""The platform audit log: one append-only row per change, who did it and what, with ids and states,
never personal data.

Rows are chained (tenants/audit_chain.py): each carries an HMAC under the key provider's audit key over
its content and the previous row's HMAC. The database refuses UPDATE, DELETE and TRUNCATE on the table
(a trigger, migration 0005); `verify_audit` finds what someone with more rights than the application
changed anyway."""

from __future__ import annotations

import hashlib
import hmac
import json

from django.db import transaction
from django.utils import timezone

from tenants.audit_chain import ChainReport, chain_verify, details_canonical, event_hmac
from tenants.db import connection
from tenants.keyring.providers import key_provider
from tenants.models import AuditEvent, Initiative

# Actors that are not a signed-in person.
SYSTEM_ACTOR = "system"
COMMAND_LINE_ACTOR = "command-line"
ANONYMOUS_ACTOR = "anonymous"

# The transaction-scoped advisory lock that makes appends one line: the next event reads the previous
# one's HMAC only once that one has committed (or rolled back). Any constant unique in the project.
AUDIT_CHAIN_LOCK = 0x4543_4941_5544_4954  # "ECIAUDIT"


def audit_record(
    *, actor: str, action: str, initiative: Initiative | None = None, **details: object
) -> AuditEvent:
    """Append one row to the platform audit log. `details` hold ids and states, never personal data
    (JSON values; no floats, see tenants.audit_chain.details_canonical).

    The append holds the chain's lock until the caller's transaction ends, so audit writes of concurrent
    transactions queue behind each other: record late in long transactions."""
    stored = json.loads(details_canonical(details))  # what jsonb gives back is what the HMAC covers
    key = key_provider().audit_key()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK])
            # The id is inside the HMAC, so it is taken before the insert.
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [AuditEvent._meta.db_table])
            (event_id,) = cursor.fetchone()
        last = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hmac").first()
        sequence, previous = (last[0] + 1, last[1]) if last else (1, "")
        event = AuditEvent(
            id=event_id,
            sequence=sequence,
            occurred_at=timezone.now(),
            actor=actor,
            action=action,
            initiative=initiative,
            initiative_slug=initiative.slug if initiative else "",
            details=stored,
            previous_hmac=previous,
        )
        event.hmac = event_hmac(
            key,
            sequence=sequence,
            event_id=event_id,
            occurred_at=event.occurred_at,
            actor=actor,
            action=action,
            initiative_id=event.initiative_id,
            initiative_slug=event.initiative_slug,
            details=stored,
            previous_hmac=previous,
        )
        event.save(force_insert=True)
    return event


def audit_chain_verify() -> ChainReport:
    """Recompute the whole chain, in sequence order, streamed; the first break if there is one."""
    key = key_provider().audit_key()
    events = (
        AuditEvent.objects.order_by("sequence")
        .only(
            "id",
            "sequence",
            "occurred_at",
            "actor",
            "action",
            "initiative_id",
            "initiative_slug",
            "details",
            "hmac",
            "previous_hmac",
        )
        .iterator(chunk_size=2000)
    )

    def sequence_of_hmac(value: str) -> int | None:
        return AuditEvent.objects.filter(hmac=value).values_list("sequence", flat=True).first()

    return chain_verify(key, events, sequence_of_hmac=sequence_of_hmac)


def audit_pseudonym(kind: str, value: str) -> str:
    """A keyed hash that stands in an event for a value it must not hold (a username typed at a failed
    sign-in): equal values give equal pseudonyms, and without the audit key none can be tested."""
    key = key_provider().audit_key()
    # "pseudonym" and the kind keep these apart from the events' HMACs (whose content is a JSON object).
    return hmac.new(key, f"pseudonym\x1f{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()[:32]
