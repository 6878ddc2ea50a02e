"""change_state: the command line's way through the lifecycle's one service. A change is audited with
the command line as actor and the reason given; every refusal names the current state and the allowed
ones (or what else is wrong), prints one JSON object with --json, and changes nothing."""

from __future__ import annotations

import datetime
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tenants.models import AuditEvent, Initiative, InitiativeState
from tests.tenants.certificates import certify_valid

pytestmark = pytest.mark.django_db


def _state(initiative: Initiative, state: str) -> None:
    Initiative.objects.filter(pk=initiative.pk).update(state=state)


def _change(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("change_state", *args, "--json", stdout=out)
    (line,) = out.getvalue().strip().splitlines()
    result: dict[str, Any] = json.loads(line)
    return result


def _refused(*args: str, match: str) -> dict[str, Any]:
    out = StringIO()
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError, match=match):
        call_command("change_state", *args, "--json", stdout=out)
    assert AuditEvent.objects.count() == events, "a refusal records nothing"
    (line,) = out.getvalue().strip().splitlines()
    refusal: dict[str, Any] = json.loads(line)
    assert refusal["error"]
    return refusal


def test_pausing_resuming_and_closing_early_are_audited_with_the_reason(alpha: Initiative) -> None:
    _state(alpha, InitiativeState.COLLECTING)
    paused = _change("--initiative", "alpha", "--to", "paused", "--reason", "maintenance of the register")
    assert (paused["from"], paused["to"], paused["initiative"]) == ("collecting", "paused", "alpha")
    event = AuditEvent.objects.latest("id")
    assert (event.actor, event.action, event.details["reason"]) == (
        "command-line",
        "initiative.state_changed",
        "maintenance of the register",
    )
    assert _change("--initiative", "alpha", "--to", "collecting")["to"] == "collecting"
    closed = _change("--initiative", "alpha", "--to", "CLOSED", "--reason", "  enough collected  ")
    assert closed["to"] == "closed" and closed["reason"] == "enough collected"
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.CLOSED


def test_submitted_and_withdrawn_record_their_day(alpha: Initiative, beta: Initiative) -> None:
    _state(alpha, InitiativeState.CLOSED)
    certify_valid(alpha)  # REQ-01: only a valid initiative is submitted
    _change("--initiative", "alpha", "--to", "submitted")
    _change("--initiative", "beta", "--to", "withdrawn", "--reason", "the organisers withdrew")
    alpha.refresh_from_db()
    beta.refresh_from_db()
    assert (alpha.state, alpha.submitted_on) == (InitiativeState.SUBMITTED, timezone.localdate())
    assert (beta.state, beta.withdrawn_on) == (InitiativeState.WITHDRAWN, timezone.localdate())


def test_a_change_the_lifecycle_does_not_allow_names_the_current_and_the_allowed_states(
    alpha: Initiative,
) -> None:
    _state(alpha, InitiativeState.COLLECTING)
    refusal = _refused("--initiative", "alpha", "--to", "submitted", match="collecting")
    assert "closed, paused, withdrawn" in refusal["error"]
    _state(alpha, InitiativeState.SUBMITTED)
    refusal = _refused("--initiative", "alpha", "--to", "withdrawn", match="submitted")
    assert "destroyed" in refusal["error"]
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.SUBMITTED


def test_resuming_outside_the_collection_period_is_refused(alpha: Initiative) -> None:
    _state(alpha, InitiativeState.PAUSED)
    Initiative.objects.filter(pk=alpha.pk).update(
        collection_start=timezone.localdate() - datetime.timedelta(days=400)
    )
    _refused("--initiative", "alpha", "--to", "collecting", match="collection period")
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.PAUSED


@pytest.mark.parametrize("state", ["destroyed", "provisioning", "ready", "bogus", ""])
def test_states_that_are_not_asked_for_here_are_refused_naming_the_ones_that_are(
    alpha: Initiative, state: str
) -> None:
    _state(alpha, InitiativeState.CLOSED)
    refusal = _refused("--initiative", "alpha", "--to", state, match="not a state to change to")
    assert "paused, collecting, closed, withdrawn, submitted" in refusal["error"]
    assert refusal["errors"] == {"to": ["Unknown state."]}
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.CLOSED


def test_an_unknown_initiative_and_an_overlong_reason_are_refused(alpha: Initiative) -> None:
    assert _refused("--initiative", "nobody", "--to", "closed", match="No initiative")["errors"] == {
        "initiative": ["Unknown."]
    }
    _state(alpha, InitiativeState.COLLECTING)
    _refused("--initiative", "alpha", "--to", "closed", "--reason", "x" * 501, match="at most 500")
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.COLLECTING


def test_one_initiatives_change_leaves_the_other_alone(alpha: Initiative, beta: Initiative) -> None:
    _state(alpha, InitiativeState.COLLECTING)
    _state(beta, InitiativeState.COLLECTING)
    _change("--initiative", "alpha", "--to", "paused")
    beta.refresh_from_db()
    assert beta.state == InitiativeState.COLLECTING
    assert not AuditEvent.objects.filter(
        initiative=beta, action="initiative.state_changed", actor="command-line"
    ).exists()


def test_without_json_it_says_what_changed(alpha: Initiative) -> None:
    _state(alpha, InitiativeState.COLLECTING)
    out = StringIO()
    call_command("change_state", "--initiative", "alpha", "--to", "paused", stdout=out)
    assert out.getvalue().strip() == "alpha: collecting -> paused."
