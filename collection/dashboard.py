"""Reads of the organisers' dashboard (/manage/), in the current initiative's schema: the published counts
against the thresholds in force for the initiative, the statements per day, and the initiative's dates.
Aggregates only: no statement's content is read here."""

from __future__ import annotations

import dataclasses
import datetime

from django.core.cache import cache
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from collection.models import Statement
from collection.selectors import counts_published
from regulation.member_states import member_states
from regulation.periods import authorities_submission_deadline
from regulation.thresholds import (
    MEMBER_STATES_REQUIRED,
    SIGNATORIES_REQUIRED,
    ThresholdTable,
    threshold_table,
)
from tenants.models import Initiative, InitiativeState
from tenants.selectors import initiative_deadlines


@dataclasses.dataclass(frozen=True)
class StateProgress:
    """One Member State's published count against its Annex I minimum."""

    code: str
    count: int
    threshold: int

    @property
    def reached(self) -> bool:
        return self.count >= self.threshold

    @property
    def ratio(self) -> float:
        return self.count / self.threshold if self.threshold else 0.0


@dataclasses.dataclass(frozen=True)
class CountsProgress:
    """The published counts (the ones /api/counts.json serves) against REQ-01 and REQ-02."""

    total: int
    counted_at: datetime.datetime | None
    states: list[StateProgress]
    table: ThresholdTable
    signatories_required: int = SIGNATORIES_REQUIRED
    member_states_required: int = MEMBER_STATES_REQUIRED

    @property
    def states_reached(self) -> int:
        return sum(1 for state in self.states if state.reached)

    @property
    def total_ratio(self) -> float:
        return self.total / self.signatories_required


def counts_progress(initiative: Initiative) -> CountsProgress:
    """The last published counts per Member State with the threshold of the Annex I table in force on
    the initiative's registration date; every Member State, zero where nobody signed."""
    published = counts_published() or {}
    by_country: dict[str, int] = published.get("by_country", {})  # type: ignore[assignment]
    counted_at = published.get("counted_at")
    states = [
        StateProgress(
            code=code, count=int(by_country.get(code, 0)), threshold=state.threshold(initiative.registered_on)
        )
        for code, state in member_states().items()
    ]
    return CountsProgress(
        total=int(published.get("total", 0)),  # type: ignore[call-overload]
        counted_at=parse_datetime(counted_at) if isinstance(counted_at, str) else None,
        states=states,
        table=threshold_table(initiative.registered_on),
    )


# The series per published count, in the cache (prefixed with the schema by django-tenants): aggregates.
STATEMENTS_PER_DAY_CACHE_KEY = "statements-per-day"
STATEMENTS_PER_DAY_TTL_SECONDS = 5 * 60


@dataclasses.dataclass(frozen=True)
class DayCount:
    day: datetime.date
    count: int


def statements_per_day(initiative: Initiative, *, until: datetime.datetime | None) -> list[DayCount]:
    """Statements submitted per day (in the platform's time zone) up to `until`, the time of the
    published count, so that the series adds up to the counts shown beside it; every day of collection
    so far, zero where nobody signed. Empty before the first published count."""
    if until is None:
        return []
    # One count per published count: every organiser's page and CSV within that minute share it.
    cache_key = f"{STATEMENTS_PER_DAY_CACHE_KEY}:{until.isoformat()}"
    counted: dict[datetime.date, int] | None = cache.get(cache_key)
    if counted is None:
        counted = _statements_per_day_counted(until)
        cache.set(cache_key, counted, timeout=STATEMENTS_PER_DAY_TTL_SECONDS)
    first = initiative.collection_start
    if counted:
        first = min(first, min(counted))
    last = min(timezone.localdate(until), initiative.closed_on or initiative.collection_end)
    if counted:
        last = max(last, max(counted))
    days = (last - first).days + 1
    return [
        DayCount(day, counted.get(day, 0))
        for day in (first + datetime.timedelta(days=offset) for offset in range(max(days, 0)))
    ]


def _statements_per_day_counted(until: datetime.datetime) -> dict[datetime.date, int]:
    rows = (
        Statement.objects.filter(submitted_at__lte=until)
        .annotate(day=TruncDate("submitted_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(count=Count("id"))
        .order_by("day")
    )
    return {row["day"]: row["count"] for row in rows}


@dataclasses.dataclass(frozen=True)
class TimelineEntry:
    """One date of the initiative's life; `key` names it for the template (which words it), `expected`
    marks a date that an earlier close can still bring forward."""

    key: str
    day: datetime.date
    expected: bool = False


def initiative_timeline(initiative: Initiative) -> list[TimelineEntry]:
    """Registration, collection start and end, the export deadline (REQ-25) and the destruction deadlines
    (REQ-18, REQ-19), in the order of their dates."""
    deadlines = initiative_deadlines(initiative)
    ended_early = initiative.closed_on is not None and initiative.closed_on < initiative.collection_end
    entries = [
        TimelineEntry("registered", initiative.registered_on),
        TimelineEntry("collection_start", initiative.collection_start),
        TimelineEntry("collection_end", initiative.collection_end),
    ]
    if ended_early:
        assert initiative.closed_on is not None
        entries.append(TimelineEntry("closed_early", initiative.closed_on))
    # Before collection ends the export deadline is counted from the period's end: at the latest.
    still_open = initiative.state in (
        InitiativeState.PROVISIONING,
        InitiativeState.READY,
        InitiativeState.COLLECTING,
        InitiativeState.PAUSED,
    )
    exports_by = deadlines.authorities_submission
    if exports_by is None:
        exports_by = authorities_submission_deadline(initiative.closed_on or initiative.collection_end)
    entries.append(TimelineEntry("exports_due", exports_by, expected=still_open))
    entries.append(
        TimelineEntry("statements_destroyed", deadlines.statements_destruction, expected=still_open)
    )
    entries.append(TimelineEntry("emails_destroyed", deadlines.emails_destruction, expected=still_open))
    return sorted(entries, key=lambda entry: entry.day)
