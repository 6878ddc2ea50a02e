"""Reads in the current initiative's schema."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Iterator

from django.core.cache import cache
from django.db.models import Count, Q

from collection.models import ContactEmail, Statement
from regulation.member_states import member_states
from regulation.retention import statements_destruction_deadline
from regulation.thresholds import MEMBER_STATES_REQUIRED, SIGNATORIES_REQUIRED
from tenants.db import connection
from tenants.keyring.keys import UnwrappedKey, data_key
from tenants.keyring.sealing import open_with, sealed_version
from tenants.models import DestructionRecord, DestructionScope, Initiative, InitiativeState, KeyPurpose

# Written by collection.services.counts_refresh; the key is prefixed with the schema by django-tenants.
COUNTS_CACHE_KEY = "statement-counts"


def statement_counts_by_country() -> dict[str, int]:
    """Statements per country, straight from the table (the slow, exact count)."""
    rows = Statement.objects.values("country").annotate(total=Count("id")).order_by("country")
    return {row["country"]: row["total"] for row in rows}


@dataclasses.dataclass(frozen=True)
class CountAround:
    """A country's statements around a moment: the range a count taken then may honestly have given,
    and the count now."""

    # Submitted well before the moment: committed before any count taken then.
    at_least: int
    # Submitted by shortly after it: as many as a count then could have seen.
    at_most: int
    now: int


def statement_counts_around(
    moment: datetime.datetime, *, slack: datetime.timedelta
) -> dict[str, CountAround]:
    """Statements per country around `moment`, in one pass over the (country, submitted_at) index.
    `slack` covers a signing transaction still open at the moment and the skew of two hosts' clocks:
    submitted_at is taken before the insert commits, and by the web process, not the counting one."""
    rows = (
        Statement.objects.values("country")
        .annotate(
            at_least=Count("id", filter=Q(submitted_at__lt=moment - slack)),
            at_most=Count("id", filter=Q(submitted_at__lte=moment + slack)),
            now=Count("id"),
        )
        .order_by("country")
    )
    return {
        row["country"]: CountAround(at_least=row["at_least"], at_most=row["at_most"], now=row["now"])
        for row in rows
    }


def counts_published() -> dict[str, object] | None:
    """The last published aggregate (see collection.services.counts_refresh), or None before the first.
    Once the statements are destroyed, the counts per Member State kept on the destruction record."""
    cached: dict[str, object] | None = cache.get(COUNTS_CACHE_KEY)
    if cached is None:
        return counts_kept_after_destruction()
    return cached


def counts_published_by_country() -> dict[str, int] | None:
    """The current initiative's published counts per Member State, or None before the first."""
    published = counts_published()
    by_country = published.get("by_country") if published else None
    return dict(by_country) if isinstance(by_country, dict) else None


def statements_submitted_since(moment: datetime.datetime) -> int:
    """How many statements the current initiative received from `moment` on (a count on the index of
    submitted_at)."""
    return Statement.objects.filter(submitted_at__gte=moment).count()


def counts_kept_after_destruction() -> dict[str, object] | None:
    initiative = connection.tenant
    if not isinstance(initiative, Initiative) or initiative.state != InitiativeState.DESTROYED:
        return None
    record = DestructionRecord.objects.filter(
        initiative=initiative, scope=DestructionScope.STATEMENTS, finished_at__isnull=False
    ).first()
    if record is None:
        return None
    counts: dict[str, int] = dict(record.counts_kept)
    return {
        "schema": initiative.schema_name,
        "total": sum(counts.values()),
        "by_country": counts,
        "counted_at": record.started_at.isoformat(),
    }


def statement_exists(statement_id: uuid.UUID) -> bool:
    return Statement.objects.filter(pk=statement_id).exists()


# Rows fetched per round trip when the addresses are streamed.
CONTACT_EMAILS_FETCH = 2000


def contact_emails_count() -> int:
    """The current initiative's optional e-mail addresses (REQ-19), each given with its own consent."""
    return ContactEmail.objects.count()


def contact_emails_opened(initiative_id: int) -> Iterator[str]:
    """The current initiative's e-mail addresses, opened, oldest first (by day given, then id: a stable
    order). Streamed through a server-side cursor: memory stays flat whatever their number. A blob that
    does not open raises (tenants.keyring.sealing.SealedRecordError): never a silent gap."""
    keys: dict[int, UnwrappedKey] = {}
    rows = (
        ContactEmail.objects.order_by("given_on", "id")
        .values_list("id", "scope", "sealed_email")
        .iterator(chunk_size=CONTACT_EMAILS_FETCH)
    )
    for record_id, scope, sealed in rows:
        blob = bytes(sealed)
        version = sealed_version(blob)
        key = keys.get(version)
        if key is None:
            key = keys[version] = data_key(initiative_id, KeyPurpose.PERSONAL_DATA, version)
        yield open_with(key, record_id, scope, blob).decode()


def collection_open(initiative: Initiative, day: datetime.date) -> bool:
    """REQ-08: statements are taken only while collecting, within the collection period."""
    return (
        initiative.state == InitiativeState.COLLECTING
        and initiative.collection_start <= day <= initiative.collection_end
    )


def statements_destroyed_at_the_latest(initiative: Initiative) -> datetime.date:
    """REQ-18: 21 months after the start of collection, or a month after submission or withdrawal if
    that comes first; shown in the privacy notice."""
    return statements_destruction_deadline(
        collection_start=initiative.collection_start,
        submitted_on=initiative.submitted_on,
        withdrawn_on=initiative.withdrawn_on,
    )


@dataclasses.dataclass(frozen=True)
class StateProgress:
    """One Member State's published count against the Annex I minimum in force for the initiative."""

    code: str  # EU code: EL for Greece
    count: int
    threshold: int

    @property
    def reached(self) -> bool:
        return self.count >= self.threshold


@dataclasses.dataclass(frozen=True)
class PublishedProgress:
    """The published counts (what /api/counts.json and the public pages show), with the thresholds of
    the table in force on the initiative's registration date (REQ-02) and the goals of REQ-01."""

    total: int
    counted_at: str | None  # ISO 8601, as the snapshot says; None before the first count
    states: tuple[StateProgress, ...]  # every Member State, by code

    signatories_required: int = SIGNATORIES_REQUIRED
    member_states_required: int = MEMBER_STATES_REQUIRED

    @property
    def states_reached(self) -> int:
        return sum(1 for state in self.states if state.reached)


def progress_published(initiative: Initiative, published: dict[str, object] | None) -> PublishedProgress:
    """`published` as counts_published() returned it (read once by the caller, which may have fetched it
    together with other keys)."""
    published = published or {}
    by_country: dict[str, int] = published.get("by_country", {})  # type: ignore[assignment]
    total = published.get("total", 0)
    counted_at = published.get("counted_at")
    return PublishedProgress(
        total=total if isinstance(total, int) else 0,
        counted_at=counted_at if isinstance(counted_at, str) else None,
        states=tuple(
            StateProgress(
                code=code, count=by_country.get(code, 0), threshold=state.threshold(initiative.registered_on)
            )
            for code, state in member_states().items()
        ),
    )
