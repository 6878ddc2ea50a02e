"""The lifecycle: allowed transitions are enforced in one place, and each change is audited."""

from __future__ import annotations

import datetime
import itertools

import pytest
from django.utils import timezone

from tenants.models import AuditEvent, Initiative, InitiativeState
from tenants.services import (
    ALLOWED_TRANSITIONS,
    TransitionError,
    initiative_transition,
    initiatives_follow_calendar,
)
from tests.tenants.certificates import certify_valid

pytestmark = pytest.mark.django_db

STATES = [state.value for state in InitiativeState]

# Written out here, not read from the code under test: the law's lifecycle as we understand it.
EXPECTED_ALLOWED = {
    ("provisioning", "ready"),
    ("ready", "collecting"),
    ("ready", "closed"),
    ("ready", "withdrawn"),
    ("collecting", "paused"),
    ("collecting", "closed"),
    ("collecting", "withdrawn"),
    ("paused", "collecting"),
    ("paused", "closed"),
    ("paused", "withdrawn"),
    ("closed", "submitted"),
    ("closed", "withdrawn"),
    ("closed", "destroyed"),
    ("submitted", "destroyed"),
    ("withdrawn", "destroyed"),
}


def test_the_transition_table_is_the_expected_one() -> None:
    actual = {(source, target) for source, targets in ALLOWED_TRANSITIONS.items() for target in targets}
    assert actual == EXPECTED_ALLOWED


def _force_state(initiative: Initiative, state: str) -> Initiative:
    Initiative.objects.filter(pk=initiative.pk).update(state=state)
    initiative.refresh_from_db()
    return initiative


@pytest.mark.parametrize(("from_state", "to_state"), list(itertools.product(STATES, STATES)))
def test_every_transition_is_allowed_or_refused_as_the_table_says(
    alpha: Initiative, from_state: str, to_state: str
) -> None:
    _force_state(alpha, from_state)
    if from_state == InitiativeState.CLOSED:
        certify_valid(alpha)  # REQ-01: submitting needs valid certified counts
    events = AuditEvent.objects.count()
    if (from_state, to_state) in EXPECTED_ALLOWED:
        initiative_transition(alpha, to_state, actor="tester")
        alpha.refresh_from_db()
        assert alpha.state == to_state
        event = AuditEvent.objects.latest("id")
        assert (event.action, event.actor, event.details["from_state"], event.details["to_state"]) == (
            "initiative.state_changed",
            "tester",
            from_state,
            to_state,
        )
    else:
        with pytest.raises(TransitionError):
            initiative_transition(alpha, to_state, actor="tester")
        alpha.refresh_from_db()
        assert alpha.state == from_state
        assert AuditEvent.objects.count() == events


def test_destroyed_is_final_and_withdrawal_is_always_possible_before_submission() -> None:
    assert ALLOWED_TRANSITIONS[InitiativeState.DESTROYED] == frozenset()
    for state in (
        InitiativeState.READY,
        InitiativeState.COLLECTING,
        InitiativeState.PAUSED,
        InitiativeState.CLOSED,
    ):
        assert InitiativeState.WITHDRAWN in ALLOWED_TRANSITIONS[state]


def test_collecting_is_refused_outside_the_collection_period(alpha: Initiative) -> None:
    _force_state(alpha, InitiativeState.READY)
    Initiative.objects.filter(pk=alpha.pk).update(
        collection_start=timezone.localdate() + datetime.timedelta(days=3)
    )
    alpha.refresh_from_db()
    with pytest.raises(TransitionError, match="collection period"):
        initiative_transition(alpha, InitiativeState.COLLECTING, actor="tester")


def test_submission_and_withdrawal_dates_are_recorded(alpha: Initiative, beta: Initiative) -> None:
    _force_state(alpha, InitiativeState.CLOSED)
    certify_valid(alpha)
    initiative_transition(alpha, InitiativeState.SUBMITTED, actor="tester")
    initiative_transition(beta, InitiativeState.WITHDRAWN, actor="tester")
    alpha.refresh_from_db()
    beta.refresh_from_db()
    assert alpha.submitted_on == timezone.localdate()
    assert beta.withdrawn_on == timezone.localdate()


def test_calendar_opens_due_initiatives_and_closes_ended_ones(alpha: Initiative, beta: Initiative) -> None:
    today = timezone.localdate()
    _force_state(alpha, InitiativeState.READY)
    Initiative.objects.filter(pk=beta.pk).update(collection_start=today - datetime.timedelta(days=400))

    assert initiatives_follow_calendar(today=today) == {"opened": 1, "closed": 1, "blocked": 0}
    alpha.refresh_from_db()
    beta.refresh_from_db()
    assert (alpha.state, beta.state) == (InitiativeState.COLLECTING, InitiativeState.CLOSED)
    assert initiatives_follow_calendar(today=today) == {"opened": 0, "closed": 0, "blocked": 0}


def test_collection_period_is_twelve_months(alpha: Initiative) -> None:
    alpha.collection_start = datetime.date(2026, 3, 1)
    assert alpha.collection_end == datetime.date(2027, 2, 28)


def test_calendar_closes_a_ready_initiative_whose_period_passed_unopened(alpha: Initiative) -> None:
    today = timezone.localdate()
    Initiative.objects.filter(pk=alpha.pk).update(
        state=InitiativeState.READY, collection_start=today - datetime.timedelta(days=400)
    )
    assert initiatives_follow_calendar(today=today) == {"opened": 0, "closed": 1, "blocked": 0}
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.CLOSED
