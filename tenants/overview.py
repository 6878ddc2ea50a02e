"""The operator console's platform overview and each initiative's published counts: aggregates only,
never a statement, a name or an address.

The tenant apps hold the statements and the export jobs in each initiative's schema; this shared app
cannot import them, so they register here (in their AppConfig.ready()) how to count theirs, as they
register their erasure steps (tenants/destruction.py)."""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Count

from regulation.member_states import member_states
from regulation.thresholds import MEMBER_STATES_REQUIRED, SIGNATORIES_REQUIRED
from tenants.models import Initiative, InitiativeState, ReencryptionJob, ReencryptionJobState
from tenants.selectors import initiative_deadlines, initiatives_with_schema

# name -> how many of something an initiative has now; called in the initiative's schema with the
# start of the day (statements today) and the initiative.
ActivityCounter = Callable[[Initiative, datetime.datetime], int]
ACTIVITY_COUNTERS: dict[str, ActivityCounter] = {}
# The published counts per Member State (EU codes), as the public pages show them; called in the
# initiative's schema. None before the first count.
_published_counts: list[Callable[[], dict[str, int] | None]] = []


def register_activity_counter(name: str, counter: ActivityCounter) -> None:
    ACTIVITY_COUNTERS[name] = counter


def register_published_counts(reader: Callable[[], dict[str, int] | None]) -> None:
    _published_counts[:] = [reader]


@dataclass(frozen=True)
class StateCount:
    code: str
    name: str
    count: int
    threshold: int  # in force on the initiative's registration date (REQ-02)

    @property
    def reached(self) -> bool:
        return self.count >= self.threshold


@dataclass(frozen=True)
class PublishedCounts:
    """An initiative's published counts against the goals of REQ-01."""

    total: int
    states: tuple[StateCount, ...]  # every Member State, by code
    signatories_required: int = SIGNATORIES_REQUIRED
    member_states_required: int = MEMBER_STATES_REQUIRED

    @property
    def states_reached(self) -> int:
        return sum(1 for state in self.states if state.reached)


def initiative_published_counts(initiative: Initiative) -> PublishedCounts | None:
    """None where there is nothing to count: no schema (provisioning, destroyed) or no counter."""
    if not _published_counts or initiative.state in (InitiativeState.PROVISIONING, InitiativeState.DESTROYED):
        return None
    with initiative:
        by_country = _published_counts[0]() or {}
    states = tuple(
        StateCount(code, state.name, by_country.get(code, 0), state.threshold(initiative.registered_on))
        for code, state in member_states().items()
    )
    return PublishedCounts(total=sum(state.count for state in states), states=states)


@dataclass(frozen=True)
class DueDeadline:
    initiative: Initiative
    what: str
    due_on: datetime.date


@dataclass(frozen=True)
class PlatformOverview:
    today: datetime.date
    initiatives_by_state: list[tuple[str, int]]  # every state, in lifecycle order
    activity: dict[str, int]  # the registered counters, summed over the initiatives
    sweeps_running: int
    sweeps_queued: int
    deadlines_this_month: list[DueDeadline]  # by date


def _month_of(day: datetime.date) -> tuple[datetime.date, datetime.date]:
    return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])


def platform_overview(*, today: datetime.date, day_start: datetime.datetime) -> PlatformOverview:
    """`day_start`: the moment today began in the platform's time zone (statements "today")."""
    counted = dict(Initiative.objects.values_list("state").annotate(number=Count("id")).order_by())
    by_state = [(state.value, counted.get(state.value, 0)) for state in InitiativeState]
    activity = dict.fromkeys(ACTIVITY_COUNTERS, 0)
    for initiative in initiatives_with_schema():
        with initiative:
            for name, counter in ACTIVITY_COUNTERS.items():
                activity[name] += counter(initiative, day_start)
    sweeps = dict(
        ReencryptionJob.objects.filter(state__in=[ReencryptionJobState.QUEUED, ReencryptionJobState.RUNNING])
        .values_list("state")
        .annotate(number=Count("id"))
        .order_by()
    )
    first, last = _month_of(today)
    due: list[DueDeadline] = []
    for initiative in Initiative.objects.exclude(state=InitiativeState.PROVISIONING).order_by("slug"):
        deadlines = initiative_deadlines(initiative)
        candidates = [
            ("send the statements to the authorities (REQ-25)", deadlines.authorities_submission, False),
            (
                "destroy the statements (REQ-18)",
                deadlines.statements_destruction,
                deadlines.statements_destroyed is not None,
            ),
            (
                "destroy the e-mail addresses (REQ-19)",
                deadlines.emails_destruction,
                deadlines.emails_destroyed is not None,
            ),
        ]
        due.extend(
            DueDeadline(initiative, what, when)
            for what, when, done in candidates
            if when is not None and not done and first <= when <= last
        )
    return PlatformOverview(
        today=today,
        initiatives_by_state=by_state,
        activity=activity,
        sweeps_running=sweeps.get(ReencryptionJobState.RUNNING.value, 0),
        sweeps_queued=sweeps.get(ReencryptionJobState.QUEUED.value, 0),
        deadlines_this_month=sorted(due, key=lambda deadline: (deadline.due_on, deadline.initiative.slug)),
    )
